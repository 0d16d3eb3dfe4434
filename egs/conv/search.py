"""CIFAR-10 architecture search with ensemble Gumbel-softmax (Sec. 3.4, Eq. 9; Sec. 4.1.1).

``joint`` mode (the paper's Eq. 9): each step samples an architecture, and one backward pass over
its loss updates both the weights ``w`` (SGD) and the logits ``alpha`` (Adam). ``bilevel`` mode is
first-order DARTS: an ``alpha`` step on a search-val batch, then a ``w`` step on a search-train
batch. The CIFAR-10 training set is split 50/50 into search-train and search-val from the seed.

A run directory holds ``config.json``, ``metrics.jsonl`` (step and epoch records),
``genotypes/epoch_NNN.json``, ``genotype.json`` (the final derived architecture), ``derivation.json``
(``derivation-select.json`` after :func:`derive_with_record` with ``select``), ``summary.json`` and
``checkpoint.pt``, written atomically at the end of every epoch and when interrupted (Ctrl-C finishes
the current step first). ``resume=True`` continues exactly: same batches, same sampled
codes, same final weights and genotype as an uninterrupted run (on CPU).

Under torchrun (:mod:`egs.engine.distributed`) the supernet trains data-parallel: each rank takes its rows of
every global batch, DDP averages the gradients of the weights *and* of ``alpha``, and every step checks
that all ranks sampled the same codes from the same logits (every epoch, that all weights agree).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from egs.engine import distributed
from egs.engine.memory import allocate_network
from egs.engine.search import ArchitectureSearch, mean_active_ops
from egs.data.cifar import TensorBatches, load_cifar10, search_split, subset
from egs.conv.network import Network, count_parameters
from egs.method.diagnostics import alpha_zero_genotype, normalised_entropy
from egs.conv.evalnet import paper_params
from egs.engine.search import batch_statistics
from egs.profiles.experiments import SearchSettings
from egs.conv.supernet import Supernet


def build_data(cfg: SearchSettings, device: torch.device, root=None,
               shard: tuple[int, int] = (0, 1)) -> tuple[TensorBatches, TensorBatches, TensorBatches, TensorBatches]:
    """Search-train, search-val, architecture-step and ``select`` batches from the 50/50 split of the
    CIFAR-10 training set. The architecture-step batches (``bilevel`` mode) are search-val in full
    batches, sharded like the training batches; search-val itself is dealt in whole batches to the
    ranks, and so are the first ``select_batches`` batches of it that the ``select`` rule scores on."""
    images, labels = load_cifar10(train=True, root=root)
    train_idx, val_idx = search_split(len(images), cfg.seed)
    if cfg.train_size:
        train_idx = subset(train_idx, cfg.train_size, cfg.seed, labels=labels, what="train_size",
                           pool="images of the search-train half of CIFAR-10's training set")
    if cfg.val_size:
        val_idx = subset(val_idx, cfg.val_size, cfg.seed + 1, labels=labels, what="val_size",
                         pool="images of the search-val half of CIFAR-10's training set")
    channels_last = cfg.channels_last and device.type == "cuda"
    kw = dict(seed=cfg.seed, image_size=cfg.image_size, device=device, channels_last=channels_last)
    train = TensorBatches(images[train_idx], labels[train_idx], cfg.batch_size, augment=True, shard=shard, **kw)
    val = TensorBatches(images[val_idx], labels[val_idx], cfg.batch_size, augment=False, drop_last=False,
                        deal=shard, **kw)
    arch = TensorBatches(images[val_idx], labels[val_idx], cfg.batch_size, augment=False, shard=shard, **kw)
    first = val_idx[: cfg.select_batches * cfg.batch_size]
    select = TensorBatches(images[first], labels[first], cfg.batch_size, augment=False, drop_last=False, deal=shard, **kw)
    return train, val, arch, select


def build_model(cfg: SearchSettings, device: torch.device) -> Supernet:
    """The supernet of ``cfg`` on ``device`` (refused in one line if it cannot fit, :mod:`egs.engine.memory`)."""
    def supernet() -> Supernet:
        torch.manual_seed(cfg.seed)
        return Supernet(cfg.C, 10, cfg.layers, M=cfg.M, lam=cfg.lam, tau=cfg.tau_start, cost=cfg.cost,
                        credit_beta=cfg.credit_beta, image_size=cfg.image_size, space=cfg.space,
                        effectiveness=cfg.effectiveness)
    def weights() -> Network:  # what holds the weights: the supernet's credits need real tensors, not meta ones
        return Network(cfg.C, 10, cfg.layers, genotype=None, space=cfg.space)
    return allocate_network(supernet, device, cfg, "search network", count=weights,
                            key=("conv search", cfg.space, cfg.C, cfg.layers))


@torch.no_grad()
def evaluate(model: Supernet, batches: TensorBatches, codes: dict[str, torch.Tensor],
             ctx: distributed.Context = distributed.Context()) -> tuple[float, float]:
    """Loss and accuracy of the supernet restricted to ``codes`` (e.g. the derived architecture);
    under torchrun ``batches`` deals whole batches to the ranks, which add their sums."""
    loss_sum, correct, n = 0.0, 0, 0
    with batch_statistics(model):
        for x, y in batches.batches(0):  # under torchrun, this rank's share of the batches
            logits = model(x, codes=codes)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
    loss_sum, correct, n = distributed.all_sum([loss_sum, correct, n], ctx, batches.device)
    return loss_sum / n, correct / n


class Search(ArchitectureSearch):
    """One CIFAR-10 search run in a run directory; :meth:`run` trains, checkpoints and derives."""

    label, settings_type, experiment = "search", SearchSettings, "search"
    score_name = "search-val accuracy"  # what :meth:`score` measures (higher is better)
    cfg: SearchSettings
    model: Supernet

    def __init__(self, cfg: SearchSettings, run_dir: str | Path, resume: bool = False,
                 data_root=None, progress: bool = True) -> None:
        super().__init__(cfg, run_dir, resume, progress)
        ctx = self.dist
        self.train, self.val, self.arch, self.select_val = build_data(cfg, self.device, data_root, (ctx.rank, ctx.world))
        m = build_model(cfg, self.device)
        if self.device.type == "cuda" and cfg.channels_last:
            m.to(memory_format=torch.channels_last)
        lr, lr_min = (distributed.scaled_lr(v, cfg.batch_size, cfg.lr_reference_batch) for v in (cfg.lr, cfg.lr_min))
        w_opt = torch.optim.SGD(m.weight_parameters(), lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, cfg.epochs, eta_min=lr_min)
        forward = distributed.wrap(m, ctx, self.device, sparse=True)  # DDP: codes switch ops off
        self.start_search(m, w_opt, {"sched": self.sched}, forward)

    def steps_per_epoch(self) -> int:
        return len(self.train)

    def batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        return self.train.batches(epoch, start_step)

    def arch_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return next(self.arch.batches(0, self.step % len(self.arch)))

    @classmethod
    def supernet_from(cls, cfg: SearchSettings, state) -> Supernet:
        # the credits are buffers restored from the state, so the analytic metric suffices (no re-timing)
        model = build_model(dataclasses.replace(cfg, cost="flops"), torch.device("cpu"))
        model.load_state_dict(state)
        return model

    def score(self, codes: dict[str, torch.Tensor]) -> float:
        """Search-val accuracy of ``codes`` on the ``select`` batches (shared weights, batch statistics)."""
        return evaluate(self.model, self.select_val, codes, self.dist)[1]

    @staticmethod
    def describe_score(score: float) -> str:
        return f"search-val accuracy {score:.4f}"

    def rule_metrics(self, codes: dict[str, torch.Tensor]) -> dict[str, float]:
        """Accuracy of ``codes`` with the shared weights on the ``select`` batches and on all of search-val."""
        return {"select_acc": self.score(codes), "val_acc": evaluate(self.model, self.val, codes, self.dist)[1]}

    def loss(self, codes: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
        logits = self.forward(x, codes=codes)
        return F.cross_entropy(logits, y), logits

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        value, logits, codes = self.search_step(batch)
        active = mean_active_ops(codes)
        correct, n = (logits.argmax(1) == batch[1]).sum(), len(batch[1])  # tensors: read only when logged
        return {"loss": value * n, "correct": correct, "n": n, "active": active, "steps": 1,
                "log": {"loss": value, "acc": correct / n, "active_ops": active}}

    def end_epoch(self) -> dict[str, Any]:
        m, s = self.model, self.sums
        genotype, _ = self.derive(self.epoch + 1)
        val_loss, val_acc = evaluate(m, self.val, m.genotype_codes(genotype), self.dist)
        self.save_epoch_genotype(genotype)
        record = {"train_loss": s["loss"] / s["n"], "train_acc": s["correct"] / s["n"], "val_loss": val_loss,
                  "val_acc": val_acc, "tau": m.tau, "lr": self.sched.get_last_lr()[0],
                  "sampled_active_ops": s["active"] / s["steps"],
                  "expected_active_ops": m.expected_active_ops(), "entropy": m.edge_entropy(),
                  "entropy_h": m.edge_entropy("h"),
                  "derived_ops": {k: c.num_active_ops() for k, c in genotype.cells().items()},
                  "p": {k: p.detach().cpu().tolist() for k, p in m.probabilities().items()}}
        self.sched.step()
        return record

    def finish(self) -> dict[str, Any]:
        """Derive the final genotype, count its parameters, and write ``summary.json``."""
        genotype, record = self.derive(self.epoch)
        epochs = [r for r in self.log.read() if r["type"] == "epoch"]
        zero = alpha_zero_genotype(self.model, self.cfg.rule)
        return self.write_results(genotype, record, self.cost() | {
            "final_val_acc": epochs[-1]["val_acc"] if epochs else math.nan,
            "final_val_acc_alpha0": evaluate(self.model, self.val, self.model.genotype_codes(zero), self.dist)[1],
            "alpha0_genotype": zero.to_dict(), "entropy_h": normalised_entropy(self.model),
            "params_supernet": count_parameters(self.model.net),
            "params_derived_search_size": count_parameters(Network(self.cfg.C, 10, self.cfg.layers, genotype)),
            "params_derived_eval_size": paper_params(genotype),
            "derived_ops": {k: c.num_active_ops() for k, c in genotype.cells().items()},
        })


def search(cfg: SearchSettings, run_dir: str | Path, resume: bool = False, data_root=None,
           progress: bool = True) -> dict[str, Any]:
    """Run (or ``resume``) a conv-cell search with settings ``cfg`` in ``run_dir`` (data from ``data_root``,
    default the data dir; a progress bar if ``progress``); return its summary."""
    return Search(cfg, run_dir, resume=resume, data_root=data_root, progress=progress).run()
