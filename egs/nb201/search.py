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

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch

from egs.conv.search import Search, build_data
from egs.engine import distributed
from egs.engine.search import ArchitectureSearch
from egs.method.diagnostics import normalised_entropy
from egs.nb201.supernet import NB201Supernet
from egs.profiles.experiments import ArchSettings, Settings


@dataclasses.dataclass(frozen=True)
class NB201SearchSettings(ArchSettings):
    """A search on NAS-Bench-201's space. ``paper``: the benchmark authors' DARTS configuration for every method
    (AutoDL-Projects ``configs/nas-benchmark/algos/DARTS.config`` and ``scripts-search/algos/DARTS-V1.sh``:
    C = 16, N = 5 cells per stage, 50 epochs, batch 64, SGD lr 0.025 cosine to 0.001, momentum 0.9, Nesterov,
    weight decay 5e-4; Adam 3e-4 on alpha, betas (0.5, 0.999), weight decay 1e-3; alternating (bilevel) updates).
    """

    family: ClassVar[str | None] = "nb201"
    space: str = "nb201"
    relaxation: str = "egs"  # "egs" (sampled codes) or "darts" (dense softmax mixed op)
    M: int = 4
    lam: float = 1.0  # no efficiency credit on this space: p = h (Eq. 5 with lambda = 1)
    mode: str = "bilevel"
    rule: str = "argmax"
    C: int = 16
    cells: int = 5  # cells per stage (the benchmark's N)
    image_size: int = 32
    train_size: int = 0
    val_size: int = 0
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    channels_last: bool = True
    arch_warmup: int = 0  # epochs of weight training (architectures sampled from p) before alpha is updated


@dataclasses.dataclass(frozen=True)
class NB201ProtocolSettings(Settings):
    """Notebook 08's protocol: the EGS ensemble sizes searched (``Ms``) with ``search_seeds`` each; the best M (by
    the mean ``cifar10_valid`` of its cells, never a test column) searched again until it has ``best_seeds``;
    DARTS with ``darts_seeds``; ``ranking_cells`` cells drawn from the deciles for the supernets' Kendall tau."""

    Ms: tuple[int, ...] = (1, 2, 3, 4, 5)
    search_seeds: tuple[int, ...] = (0, 1, 2)
    best_seeds: tuple[int, ...] = (0, 1, 2, 3)
    darts_seeds: tuple[int, ...] = (0, 1, 2, 3)
    ranking_cells: int = 100


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
        m = self.supernet_from(cfg).to(self.device)
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


_SMOKE = dict(epochs=2, batch_size=8, C=4, cells=1, image_size=8, train_size=48, val_size=32, log_every=2,
              select_batches=2)
_CPU = dict(epochs=8, batch_size=64, C=8, cells=1, image_size=16, train_size=5000, val_size=2000, log_every=25,
            arch_lr=3e-3, arch_weight_decay=0.0, arch_warmup=3)  # setting W of studies/nb201.py (docs/settings.md)
EXPERIMENTS = {
    # one configuration for every method at each profile: EGS at any M and DARTS differ only in `relaxation`
    "nb201_search": (NB201SearchSettings, {"smoke": _SMOKE, "cpu": _CPU, "paper": {}}),
    "nb201_protocol": (NB201ProtocolSettings, {
        "smoke": dict(Ms=(1, 2), search_seeds=(0,), best_seeds=(0, 1), darts_seeds=(0,), ranking_cells=10),
        "cpu": dict(Ms=(1, 2, 4), search_seeds=(0, 1), best_seeds=(0, 1, 2, 3), darts_seeds=(0, 1, 2, 3),
                    ranking_cells=64),
        "paper": {}}),
}
"""The experiments the NAS-Bench-201 family brings (:attr:`egs.families.Family.experiments`); why: docs/settings.md."""
