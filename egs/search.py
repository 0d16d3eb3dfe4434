"""CIFAR-10 architecture search with ensemble Gumbel-softmax (Sec. 3.4, Eq. 9; Sec. 4.1.1).

``joint`` mode (the paper's Eq. 9): each step samples an architecture, and one backward pass over
its loss updates both the weights ``w`` (SGD) and the logits ``alpha`` (Adam). ``bilevel`` mode is
first-order DARTS: an ``alpha`` step on a search-val batch, then a ``w`` step on a search-train
batch. The CIFAR-10 training set is split 50/50 into search-train and search-val from the seed.

A run directory holds ``config.json``, ``metrics.jsonl`` (step and epoch records),
``genotypes/epoch_NNN.json``, ``genotype.json`` (the final derived architecture), ``summary.json``
and ``checkpoint.pt``, written atomically at the end of every epoch and when interrupted (Ctrl-C
finishes the current step first). ``resume=True`` continues exactly: same batches, same sampled
codes, same final weights and genotype as an uninterrupted run (on CPU).
"""
from __future__ import annotations

import dataclasses
import json
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from egs.cifar import TensorBatches, load_cifar10, search_split, subset
from egs.cnn import Network, count_parameters
from egs.errors import EGSError
from egs.files import write_json
from egs.genotype import load_genotype, save_genotype
from egs.profiles import SearchSettings
from egs.runlog import MetricsLog, load_checkpoint, save_checkpoint
from egs.supernet import Supernet

MODES = ("joint", "bilevel")
EVAL_SIZE = {"C": 36, "layers": 20}  # the paper's CIFAR-10 evaluation network (DARTS)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def temperature(cfg: SearchSettings, epoch: int) -> float:
    """Geometric schedule from ``tau_start`` (first epoch) to ``tau_end`` (last epoch)."""
    if cfg.epochs <= 1:
        return cfg.tau_start
    return cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** (epoch / (cfg.epochs - 1))


def check_settings(cfg: SearchSettings) -> None:
    if cfg.mode not in MODES:
        raise EGSError(f"mode={cfg.mode!r} is unknown; use 'joint' (the paper's Eq. 9) or 'bilevel'.")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise EGSError(f"epochs={cfg.epochs} and batch_size={cfg.batch_size} must be >= 1.")
    if cfg.tau_start <= 0 or cfg.tau_end <= 0:
        raise EGSError(f"tau_start={cfg.tau_start} and tau_end={cfg.tau_end} must be > 0.")


def build_data(cfg: SearchSettings, device: torch.device, root=None) -> tuple[TensorBatches, TensorBatches]:
    """Search-train and search-val batches from the 50/50 split of the CIFAR-10 training set."""
    images, labels = load_cifar10(train=True, root=root)
    train_idx, val_idx = search_split(len(images), cfg.seed)
    if cfg.train_size:
        train_idx = subset(train_idx, cfg.train_size, cfg.seed, labels=labels)
    if cfg.val_size:
        val_idx = subset(val_idx, cfg.val_size, cfg.seed + 1, labels=labels)
    train = TensorBatches(images[train_idx], labels[train_idx], cfg.batch_size, augment=True,
                          seed=cfg.seed, image_size=cfg.image_size, device=device)
    val = TensorBatches(images[val_idx], labels[val_idx], cfg.batch_size, augment=False,
                        seed=cfg.seed, image_size=cfg.image_size, device=device, drop_last=False)
    return train, val


def build_model(cfg: SearchSettings, device: torch.device) -> Supernet:
    torch.manual_seed(cfg.seed)
    return Supernet(cfg.C, 10, cfg.layers, M=cfg.M, lam=cfg.lam, tau=cfg.tau_start, cost=cfg.cost,
                    credit_beta=cfg.credit_beta, image_size=cfg.image_size).to(device)


@contextmanager
def _deferred_interrupt() -> Iterator[dict[str, bool]]:
    """Turn SIGINT into a flag checked between steps, so an interrupted step still completes."""
    flag = {"stop": False}
    try:
        previous = signal.signal(signal.SIGINT, lambda *_: flag.update(stop=True))
    except ValueError:  # not in the main thread: leave SIGINT alone
        previous = None
    try:
        yield flag
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


@torch.no_grad()
def evaluate(model: Supernet, batches: TensorBatches, codes: dict[str, torch.Tensor]) -> tuple[float, float]:
    """Loss and accuracy of the supernet restricted to ``codes`` (e.g. the derived architecture)."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in batches.batches(0):
        logits = model(x, codes=codes)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    model.train()
    return loss_sum / n, correct / n


class Search:
    """One search run in a run directory; :meth:`run` trains, checkpoints and derives."""

    def __init__(self, cfg: SearchSettings, run_dir: str | Path, resume: bool = False,
                 data_root=None, progress: bool = True) -> None:
        check_settings(cfg)
        self.cfg, self.dir, self.progress = cfg, Path(run_dir), progress
        self.device = resolve_device(cfg.device)
        ckpt_path = self.dir / "checkpoint.pt"
        if resume:
            if not ckpt_path.exists():
                raise EGSError(f"cannot resume: {ckpt_path} does not exist; start the run without --resume.")
            stored = json.loads((self.dir / "config.json").read_text())
            if stored != json.loads(json.dumps(asdict(cfg))):
                changed = sorted(k for k in stored if stored[k] != asdict(cfg).get(k))
                raise EGSError(f"cannot resume {self.dir}: its settings differ in {', '.join(changed)}; "
                               "resume with the run's own settings or start a new run directory.")
        elif ckpt_path.exists():
            raise EGSError(f"{self.dir} already holds a run; pass --resume to continue it or choose "
                           "another run directory.")
        self.train, self.val = build_data(cfg, self.device, data_root)
        self.model = build_model(cfg, self.device)
        m = self.model
        self.w_opt = torch.optim.SGD(m.weight_parameters(), cfg.lr, momentum=cfg.momentum,
                                     weight_decay=cfg.weight_decay)
        self.a_opt = torch.optim.Adam(m.arch_parameters(), cfg.arch_lr, betas=(cfg.arch_beta1, cfg.arch_beta2),
                                      weight_decay=cfg.arch_weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, cfg.epochs, eta_min=cfg.lr_min)
        self.gen = torch.Generator(self.device).manual_seed(cfg.seed)
        self.epoch, self.step, self.elapsed = 0, 0, 0.0
        self.acc = self._fresh_accumulators()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = MetricsLog(self.dir / "metrics.jsonl")
        if resume:
            self._restore(load_checkpoint(ckpt_path, self.device))
        else:
            self.log.truncate(0)
            write_json(self.dir / "config.json", asdict(cfg))

    @staticmethod
    def _fresh_accumulators() -> dict[str, float]:
        return {"loss": 0.0, "correct": 0.0, "n": 0.0, "active": 0.0, "steps": 0.0}

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "sched": self.sched.state_dict(),
                "gen": self.gen.get_state(), "epoch": self.epoch, "step": self.step,
                "elapsed": self.elapsed, "acc": dict(self.acc), "metrics_lines": self.log.lines}

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.sched.load_state_dict(state["sched"])
        self.gen.set_state(state["gen"].cpu() if self.device.type == "cpu" else state["gen"])
        self.epoch, self.step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
        self.acc = dict(state["acc"])
        self.log.truncate(state["metrics_lines"])

    def checkpoint(self) -> None:
        save_checkpoint(self.dir / "checkpoint.pt", self._state())

    # ------------------------------------------------------------------ training
    def _train_step(self, x: torch.Tensor, y: torch.Tensor, val_batch) -> tuple[float, int, float]:
        cfg, m = self.cfg, self.model
        if cfg.mode == "bilevel":
            xv, yv = val_batch
            self.a_opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(xv, generator=self.gen), yv).backward()
            self.a_opt.step()
        codes = m.sample(self.gen)
        logits = m(x, codes=codes)
        loss = F.cross_entropy(logits, y)
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(m.weight_parameters(), cfg.grad_clip)
        self.w_opt.step()
        if cfg.mode == "joint":  # Eq. 9: alpha from the same backward pass as w
            self.a_opt.step()
        active = sum(float(c.detach()[:, 1:].sum()) for c in codes.values()) / sum(len(c) for c in codes.values())
        return loss.item(), int((logits.argmax(1) == y).sum()), active

    def _val_batch(self, step: int):
        if self.cfg.mode != "bilevel":
            return None
        n = len(self.val)
        return next(self.val.batches(0, step % n))

    def run(self, stop_after_steps: int | None = None) -> dict[str, Any]:
        """Train to the last epoch (or until interrupted), then derive and summarise."""
        from tqdm.auto import tqdm
        cfg, steps_done = self.cfg, 0
        with _deferred_interrupt() as flag:
            while self.epoch < cfg.epochs:
                self.model.tau = temperature(cfg, self.epoch)
                bar = tqdm(total=len(self.train), initial=self.step, desc=f"search epoch {self.epoch + 1}/{cfg.epochs}",
                           disable=not self.progress, leave=False)
                start = time.perf_counter()
                for x, y in self.train.batches(self.epoch, self.step):
                    loss, correct, active = self._train_step(x, y, self._val_batch(self.step))
                    a = self.acc
                    a["loss"] += loss * len(y); a["correct"] += correct; a["n"] += len(y)
                    a["active"] += active; a["steps"] += 1
                    self.step += 1
                    steps_done += 1
                    if self.step % cfg.log_every == 0:
                        self.log.write({"type": "step", "epoch": self.epoch + 1, "step": self.step,
                                        "loss": loss, "acc": correct / len(y), "active_ops": active})
                    bar.update(1)
                    bar.set_postfix(loss=f"{a['loss'] / a['n']:.3f}", acc=f"{a['correct'] / a['n']:.3f}")
                    if flag["stop"] or (stop_after_steps is not None and steps_done >= stop_after_steps):
                        self.elapsed += time.perf_counter() - start
                        bar.close()
                        self.checkpoint()
                        raise KeyboardInterrupt(f"search interrupted at epoch {self.epoch + 1}, step "
                                                f"{self.step}; checkpoint saved, resume with --resume")
                bar.close()
                self.elapsed += time.perf_counter() - start
                self._end_epoch()
        return self.finish()

    def _end_epoch(self) -> None:
        m, a = self.model, self.acc
        genotype = m.derive("most_probable")
        val_loss, val_acc = evaluate(m, self.val, m.most_probable_codes())
        probs = {k: p.detach().cpu().tolist() for k, p in m.probabilities().items()}
        self.log.write({"type": "epoch", "epoch": self.epoch + 1, "train_loss": a["loss"] / a["n"],
                        "train_acc": a["correct"] / a["n"], "val_loss": val_loss, "val_acc": val_acc,
                        "tau": m.tau, "lr": self.sched.get_last_lr()[0], "elapsed_s": self.elapsed,
                        "sampled_active_ops": a["active"] / a["steps"],
                        "expected_active_ops": m.expected_active_ops(), "entropy": m.edge_entropy(),
                        "derived_ops": {k: c.num_active_ops() for k, c in genotype.cells().items()},
                        "p": probs})
        save_genotype(genotype, self.dir / "genotypes" / f"epoch_{self.epoch + 1:03d}.json")
        self.sched.step()
        self.epoch, self.step, self.acc = self.epoch + 1, 0, self._fresh_accumulators()
        self.checkpoint()

    def finish(self) -> dict[str, Any]:
        """Derive the final genotype, count its parameters, and write ``summary.json``."""
        genotype = self.model.derive("most_probable")
        save_genotype(genotype, self.dir / "genotype.json")
        epochs = [r for r in self.log.read() if r["type"] == "epoch"]
        hours = self.elapsed / 3600
        summary = {
            "genotype": str(self.dir / "genotype.json"),
            "wall_clock_s": self.elapsed, "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "device_hours": hours, "device_days": hours / 24,
            "final_val_acc": epochs[-1]["val_acc"] if epochs else math.nan,
            "params_supernet": count_parameters(self.model.net),
            "params_derived_search_size": count_parameters(Network(self.cfg.C, 10, self.cfg.layers, genotype)),
            "params_derived_eval_size": count_parameters(Network(EVAL_SIZE["C"], 10, EVAL_SIZE["layers"], genotype)),
            "derived_ops": {k: c.num_active_ops() for k, c in genotype.cells().items()},
        }
        write_json(self.dir / "summary.json", summary)
        return summary


def search(cfg: SearchSettings, run_dir: str | Path, resume: bool = False, data_root=None,
           progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a search and return its summary."""
    return Search(cfg, run_dir, resume=resume, data_root=data_root, progress=progress).run()


def derive(run_dir: str | Path, method: str = "most_probable", seed: int = 0):
    """The genotype of a run's latest checkpoint, most probable or sampled."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        raise EGSError(f"{run_dir} has no checkpoint.pt; pass the directory of a search run.")
    cfg = SearchSettings(**json.loads((run_dir / "config.json").read_text()))
    # The credits are buffers restored from the checkpoint, so the cheap analytic metric suffices
    # here (a latency run is not re-timed).
    model = Supernet(cfg.C, 10, cfg.layers, M=cfg.M, lam=cfg.lam, cost="flops",
                     credit_beta=cfg.credit_beta, image_size=cfg.image_size)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    return model.derive(method, torch.Generator().manual_seed(seed))
