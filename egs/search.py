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

Under torchrun (:mod:`egs.distributed`) the supernet trains data-parallel: each rank takes its rows of
every global batch, DDP averages the gradients of the weights *and* of ``alpha``, and every step checks
that all ranks sampled the same codes from the same logits (every epoch, that all weights agree).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from egs import distributed
from egs.archsearch import ArchitectureSearch, mean_active_ops
from egs.cifar import TensorBatches, load_cifar10, search_split, subset
from egs.cnn import Network, count_parameters
from egs.diagnostics import alpha_zero_genotype, normalised_entropy
from egs.errors import EGSError, warn
from egs.files import write_json
from egs.genotype import Genotype
from egs.runtime import batch_statistics
from egs.profiles import SearchSettings
from egs.runlog import load_checkpoint
from egs.supernet import Supernet

EVAL_SIZE = {"C": 36, "layers": 20}  # the paper's CIFAR-10 evaluation network (DARTS)


def build_data(cfg: SearchSettings, device: torch.device, root=None,
               shard: tuple[int, int] = (0, 1)) -> tuple[TensorBatches, TensorBatches, TensorBatches, TensorBatches]:
    """Search-train, search-val, architecture-step and ``select`` batches from the 50/50 split of the
    CIFAR-10 training set. The architecture-step batches (``bilevel`` mode) are search-val in full
    batches, sharded like the training batches; search-val itself is dealt in whole batches to the
    ranks, and so are the first ``select_batches`` batches of it that the ``select`` rule scores on."""
    images, labels = load_cifar10(train=True, root=root)
    train_idx, val_idx = search_split(len(images), cfg.seed)
    if cfg.train_size:
        train_idx = subset(train_idx, cfg.train_size, cfg.seed, labels=labels)
    if cfg.val_size:
        val_idx = subset(val_idx, cfg.val_size, cfg.seed + 1, labels=labels)
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
    torch.manual_seed(cfg.seed)
    return Supernet(cfg.C, 10, cfg.layers, M=cfg.M, lam=cfg.lam, tau=cfg.tau_start, cost=cfg.cost,
                    credit_beta=cfg.credit_beta, image_size=cfg.image_size, space=cfg.space,
                    effectiveness=cfg.effectiveness).to(device)


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
            "params_derived_eval_size": count_parameters(Network(EVAL_SIZE["C"], 10, EVAL_SIZE["layers"], genotype)),
            "derived_ops": {k: c.num_active_ops() for k, c in genotype.cells().items()},
        })


def search(cfg: SearchSettings, run_dir: str | Path, resume: bool = False, data_root=None,
           progress: bool = True) -> dict[str, Any]:
    """Run (or ``resume``) a conv-cell search with settings ``cfg`` in ``run_dir`` (data from ``data_root``,
    default the data dir; a progress bar if ``progress``); return its summary."""
    return Search(cfg, run_dir, resume=resume, data_root=data_root, progress=progress).run()


def _run_file(path: Path, what: str, kept: Any) -> dict[str, Any]:
    """A search run's JSON object for :func:`derive`; if missing or damaged, the checkpoint's copy ``kept`` (as
    resume uses it, :func:`egs.rundir.read_or_restore`, but not written back: derive only reads), with a
    one-line warning; without a copy (a checkpoint of an older egs), one error line naming the file."""
    problem = "missing"
    if path.is_file():
        try:
            value = json.loads(path.read_text())
            if isinstance(value, dict):
                return value
            problem = "damaged (not a JSON object)"
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problem = f"damaged ({err})"
    if isinstance(kept, dict):
        warn(f"{path} is {problem}; derive reads the checkpoint's copy of the {what} (resuming the run writes "
             "it back).")
        return kept
    raise EGSError(f"cannot derive: {path} is {problem}, so the {what} is unknown; restore it from a copy of the "
                   "run directory.")


def open_search_run(run_dir: str | Path) -> tuple[Any, type[ArchitectureSearch], dict[str, Any]]:
    """The settings, search loop class and checkpoint state of the search run in ``run_dir``, refused with
    one line naming the file when the run is a training run, when ``config.json`` or ``run.json`` is missing
    or damaged and the checkpoint keeps no copy of it, or when ``checkpoint.pt`` is damaged, belongs to
    another run (its run id against ``run.json``) or to other settings (its settings fingerprint against
    ``config.json``): the checks of resuming (:mod:`egs.rundir`), so that a genotype's provenance (M, seed,
    run id) is always that of one run."""
    from egs.archsearch import search_class
    from egs.rundir import check_checkpoint
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        raise EGSError(f"{run_dir} has no checkpoint.pt; pass the directory of a search run.")
    state = load_checkpoint(ckpt)
    stored = _run_file(run_dir / "config.json", "run's settings", state.get("record"))
    if "genotype" in stored or "M" not in stored:
        raise EGSError(f"{run_dir} is a training run, not a search run (its config.json has no M); derive reads "
                       "search runs.")
    loop = search_class(stored.get("space", "conv"))
    try:
        cfg = loop.settings_type(**stored)
    except TypeError as err:
        raise EGSError(f"cannot derive: {run_dir / 'config.json'} does not hold {loop.settings_type.__name__} "
                       f"({err}); restore it from a copy of the run directory.") from None
    run_id = _run_file(run_dir / "run.json", "run's identity", state.get("run")).get("run_id")
    check_checkpoint(ckpt, state, run_id, stored, action="derive")
    return cfg, loop, state


def derive_with_record(run_dir: str | Path, rule: str | None = None,
                       data_root=None) -> tuple[Genotype, dict[str, Any]]:
    """The genotype of the search run in ``run_dir`` (its latest checkpoint) under ``rule`` (default: the run's
    own rule), conv or recurrent (one dispatch on the run's space), with its provenance, and the record of the
    derivation. ``node`` and ``edge`` read only the checkpoint (record ``{"rule": ...}``). ``select`` reloads the
    run's search-val data (from ``data_root``, default the data dir), scores its seeded candidates and the
    ``node`` cell on the same batches, and writes the record (every candidate's index, score and genotype,
    ``chosen``, ``chosen_score``, ``node_score``, ``score``: what the scores measure) atomically to
    ``derivation-select.json`` in the run directory; the run's own ``derivation.json`` is left as it is.
    The run is checked first (:func:`open_search_run`)."""
    from egs.archsearch import provenance
    from egs.derivation import check_rule
    run_dir = Path(run_dir)
    cfg, loop, state = open_search_run(run_dir)
    rule = check_rule(rule or cfg.rule)
    if rule != "select":
        model = loop.supernet_from(cfg, state["model"])
        prov = {**provenance(cfg, state["run_id"], run_dir, state["epoch"]), "rule": rule}
        return model.derive(rule).with_provenance(**prov), {"rule": rule}
    run = loop(cfg, run_dir, resume=True, data_root=data_root, progress=False)
    try:
        genotype, record = run.derive(run.epoch, rule)
    finally:
        run.close()
    return genotype, _write_select_record(run_dir, cfg, loop, record)


def _write_select_record(run_dir: Path, cfg: Any, loop: Any, record: dict[str, Any]) -> dict:
    record = {**record, "score": loop.score_name, "select_batches": cfg.select_batches}
    record["summary"] = (f"select: chosen candidate {record['chosen']} of {len(record['candidates'])}, "
                         f"{loop.describe_score(record['chosen_score'])}; node cell: "
                         f"{loop.describe_score(record['node_score'])} (the same {cfg.select_batches} search-val "
                         "batches; every candidate in derivation-select.json)")
    write_json(run_dir / "derivation-select.json", record)
    return record


def compare_rules(run_dir: str | Path, data_root=None) -> list[dict[str, Any]]:
    """Every derivation rule's cell of the search run in ``run_dir`` (its latest checkpoint), each scored with
    the supernet's shared weights (no training) by the loop's ``rule_metrics``: recurrent runs give the
    perplexity on the ``select`` windows (what ``select`` ranks its candidates by) and on the rest of
    search-val (held out from ``select``); conv runs the accuracy on the ``select`` batches and on all of
    search-val. One row per rule: ``rule``, ``ops`` (active ops), the metrics and the ``genotype``. The
    ``select`` record is written to ``derivation-select.json`` as by :func:`derive_with_record`."""
    from egs.derivation import RULES
    run_dir = Path(run_dir)
    cfg, loop, _ = open_search_run(run_dir)
    run = loop(cfg, run_dir, resume=True, data_root=data_root, progress=False)
    rows = []
    try:
        for rule in RULES:
            genotype, record = run.derive(run.epoch, rule)
            if rule == "select":
                _write_select_record(run_dir, cfg, loop, record)
            rows.append({"rule": rule, "ops": genotype.num_active_ops(),
                         **run.rule_metrics(run.model.genotype_codes(genotype)), "genotype": genotype})
    finally:
        run.close()
    return rows


def derive(run_dir: str | Path, rule: str | None = None, data_root=None) -> Genotype:
    """The genotype of :func:`derive_with_record` (without its record): the search run in ``run_dir`` derived
    under ``rule`` (default: the run's own), ``select`` reading search-val data from ``data_root``."""
    return derive_with_record(run_dir, rule, data_root)[0]


def selection_summary(record: dict[str, Any]) -> str:
    """One line for a ``select`` derivation's record: the chosen candidate's score beside the ``node`` cell's on
    the same search-val batches (what ``egs derive --method select`` prints)."""
    return record["summary"]


def arch_choices(cfg: Any) -> list[str]:
    """The architecture-optimisation choices of search settings ``cfg`` (conv or recurrent), one markdown bullet
    each, worded from the values: where the paper's text, DARTS and the authors' released code (DATA-NAS)
    differ, which one ``cfg`` follows (the notebooks print these; :class:`egs.profiles.ArchSettings`)."""
    wd = {1e-3: "DARTS's 1e-3", 0.0: "the authors' 0"}.get(cfg.arch_weight_decay, "neither DARTS's nor the authors'")
    h = ("softmax(alpha), as DARTS and the paper (Eq. 3)" if cfg.effectiveness == "softmax" else
         "relu(alpha) normalised per edge, as the authors' released code (logits start at 1)")
    why_h = ("on h, not on p = lambda h + (1 - lambda) l: the authors' code has no efficiency credit, so their p is h, "
             "and the regulariser should not pull on the credit's share of p")
    reg = (f"none (`arch_reg` = 0; the authors' code adds 0.1 * mean |h - c / sum c|, which egs would apply {why_h})"
           if not cfg.arch_reg else
           f"{cfg.arch_reg:g} * mean |h - c / sum c| on the alpha update only (the authors' regulariser, 0.1 in their "
           "code): c is the code sampled for the step, sum c counts its active entries with \"none\" included, as "
           f"their code does; {why_h}")
    if cfg.tau_start == cfg.tau_end:
        tau = f"constant tau = {cfg.tau_start:g} (the paper gives none; the authors' released code runs at 1)"
    else:
        tau = (f"{cfg.tau_schedule} from {cfg.tau_start:g} to {cfg.tau_end:g} over the epochs (the authors' code "
               "intends 5 - 4 epoch / 150 but never passes the epoch, so runs at 1)")
    return [f"Architecture optimiser: Adam on alpha (lr {cfg.arch_lr:g}, betas ({cfg.arch_beta1:g}, "
            f"{cfg.arch_beta2:g})), `{cfg.mode}` updates, weight decay {cfg.arch_weight_decay:g} ({wd}).",
            f"Effectiveness credit h: {h}; lambda = {cfg.lam:g} in p = lambda h + (1 - lambda) l (Eq. 5).",
            f"Regulariser: {reg}.", f"Temperature: {tau}.",
            f"Derivation rule `{cfg.rule}`; the `select` rule draws {cfg.select_candidates} candidates and scores "
            f"them on {cfg.select_batches} search-val batches (`select_candidates`, `select_batches`)."]
