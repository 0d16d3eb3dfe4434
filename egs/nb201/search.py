"""Searches on NAS-Bench-201 (Dong & Yang, ICLR 2020): EGS and DARTS on one supernet, one protocol.

Both methods train the same supernet (:class:`egs.nb201.supernet.NB201Supernet`: the benchmark's skeleton, every
op on every edge, one code shared by all cells) on the same CIFAR-10 data with the same optimisers and epochs;
only the relaxation differs (``relaxation``):

* ``egs``: each step samples a binary code per edge with ensemble Gumbel-softmax (M draws, Definition 1) and
  runs only its ops (straight-through gradients to alpha); at M = 1 this is the hard Gumbel-softmax estimator
  that GDAS uses (Dong & Yang, CVPR 2019).
* ``darts``: DARTS's dense mixed op, every op weighted by softmax(alpha) (Liu et al., ICLR 2019), first order.

The cell is derived with the ``argmax`` rule (each edge's most probable op of p, "none" included, ties to the
first in op order), as the benchmark's own DARTS derives it, so it is always a cell of the benchmark. A search
never reads the benchmark's accuracies: the notebook looks the derived cells up afterwards
(:mod:`egs.nb201.benchmark`). The data is the 50/50 split of the CIFAR-10 training set that the benchmark's
searches use ("cifar10-valid": search-train and search-val halves), subsampled at the ``cpu`` profile.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from egs.conv.search import Search, build_data
from egs.engine import distributed
from egs.engine.memory import allocate_network
from egs.engine.search import ArchitectureSearch
from egs.method.diagnostics import normalised_entropy
from egs.nb201.supernet import NB201Supernet
from egs.nb201.settings import NB201SearchSettings


class NB201Search(Search):
    """One NAS-Bench-201 search run (EGS or DARTS, :attr:`NB201SearchSettings.relaxation`) in a run directory.

    The CIFAR-10 data, batches, loss and shared-weight scores are the conv search's (:class:`egs.conv.search.Search`);
    the supernet, the optimiser (Nesterov), the warm-up and the summary are its own."""

    label, settings_type, experiment = "nb201 search", NB201SearchSettings, "nb201_search"
    score_name = "search-val accuracy"
    rules = ("argmax",)
    cfg: NB201SearchSettings
    model: NB201Supernet

    def __init__(self, cfg: NB201SearchSettings, run_dir: str | Path, resume: bool = False, data_root=None,
                 progress: bool = True) -> None:
        ArchitectureSearch.__init__(self, cfg, run_dir, resume, progress)  # not the conv supernet's set-up
        ctx = self.dist
        self.train, self.val, self.arch, self.select_val = build_data(cfg, self.device, data_root, (ctx.rank, ctx.world))
        m = allocate_network(lambda: self.supernet_from(cfg), self.device, cfg, "NAS-Bench-201 search network",
                             fix="lower C or cells (--set C=..., --set cells=...)",
                             key=("nb201 search", cfg.C, cfg.cells, cfg.relaxation))
        lr, lr_min = (distributed.scaled_lr(v, cfg.batch_size, cfg.lr_reference_batch) for v in (cfg.lr, cfg.lr_min))
        w_opt = torch.optim.SGD(m.weight_parameters(), lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                nesterov=cfg.nesterov)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, cfg.epochs, eta_min=lr_min)
        forward = distributed.wrap(m, ctx, self.device, sparse=cfg.relaxation == "egs")
        self.start_search(m, w_opt, {"sched": self.sched}, forward)

    @classmethod
    def supernet_from(cls, cfg: NB201SearchSettings, state=None) -> NB201Supernet:
        torch.manual_seed(cfg.seed)
        model = NB201Supernet(cfg.C, cfg.cells, 10, M=cfg.M, lam=cfg.lam, tau=cfg.tau_start,
                              dense=cfg.relaxation == "darts", effectiveness=cfg.effectiveness)
        if state is not None:
            model.load_state_dict(state)
        return model

    def arch_frozen(self) -> bool:
        return self.epoch < self.cfg.arch_warmup

    def finish(self) -> dict[str, Any]:
        genotype, record = self.derive(self.epoch)
        epochs = [r for r in self.log.read() if r["type"] == "epoch"]
        return self.write_results(genotype, record, self.cost() | {
            "relaxation": self.cfg.relaxation, "final_val_acc": epochs[-1]["val_acc"] if epochs else float("nan"),
            "entropy_h": normalised_entropy(self.model),
            "params_supernet": sum(p.numel() for p in self.model.weight_parameters())})


def nb201_search(cfg: NB201SearchSettings, run_dir: str | Path, resume: bool = False, data_root=None,
                 progress: bool = True) -> dict[str, Any]:
    """Run (or ``resume``) a NAS-Bench-201 search with settings ``cfg`` in ``run_dir``; return its summary."""
    return NB201Search(cfg, run_dir, resume=resume, data_root=data_root, progress=progress).run()
