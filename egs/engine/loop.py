"""The epoch/step loop shared by search and training, with exact resume.

A run lives in a directory: ``config.json`` (the settings), ``run.json`` (the run's id),
``metrics.jsonl`` (step and epoch records) and ``checkpoint.pt``, written atomically at the end of every
epoch and when the run is interrupted. Ctrl-C (SIGINT) and SIGTERM are deferred to the end of the current
step, so a checkpoint always holds a consistent state; resuming restores every stateful object (model,
optimizers, schedulers, random generators, running sums) and the position ``(epoch, step)``, and data
batches are a pure function of ``(seed, epoch, step)``, so a resumed run continues exactly as if never
stopped. A run
that cannot go on (a write fails for a full disk or a read-only folder, the loss is NaN) stops with one
line that says whether a checkpoint is kept (resume with ``--resume``) or there is none yet; a loop whose
construction fails releases its run directory's lock before the error leaves.

Subclasses build their model and data, hand them to :meth:`EpochLoop.start` with their other
stateful objects, and implement the abstract methods (:meth:`batches`, :meth:`train_step`,
:meth:`end_epoch`, :meth:`finish`, ...); search loops draw their codes with :class:`CodeSampler`.

Under ``torchrun`` (:mod:`egs.engine.distributed`) every rank runs this loop in step: only rank 0 writes
files and shows progress, epoch sums are added over the ranks before :meth:`end_epoch`, a Ctrl-C seen
by any rank stops all of them after the same step, and a checkpoint holds the weights once (they are
identical on all ranks, which is checked every epoch) plus every rank's global RNG state, so any
number of processes can resume it.
"""
from __future__ import annotations

import math
import signal
import sys
import time
import uuid
from abc import ABC, ABCMeta, abstractmethod
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from egs.engine import distributed
from egs.engine.board import Board
from egs.core.errors import EGSError, WriteError
from egs.core.files import write_json
from egs.profiles.experiments import RunSettings
from egs.engine.rundir import RunLock, check_run_dir, own_checkpoint, settings_fingerprint
from egs.engine.runlog import MetricsLog, save_checkpoint
from egs.engine.progress import in_kernel, progress_style
from egs.engine.signals import Interrupted, deferred_interrupt
from egs.engine.rng import GlobalRNGState
from egs.engine.device import MixedPrecision, resolve_device


SHOWN = ("loss", "acc", "err", "ppl")  # the epoch-line fields (suffixes of the record's keys)


class _ClosedOnFailure(ABCMeta):
    """Building a loop that fails (a missing checkpoint, damaged data, Ctrl-C while loading) closes it before
    the error leaves, so its run directory's lock is not held by an object that a kept traceback (a
    notebook's last exception) keeps alive."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        loop = cls.__new__(cls, *args, **kwargs)
        try:
            loop.__init__(*args, **kwargs)
        except BaseException:
            loop.close()
            raise
        return loop


class EpochLoop(ABC, metaclass=_ClosedOnFailure):
    """Run directory, checkpoints and the resumable epoch/step loop.

    The contract, all of it explicit:

    * ``cfg`` is a :class:`egs.profiles.experiments.RunSettings` (epochs, seed, device, log_every, micro_batch,
      grad_clip, amp, ... are read from it);
    * the subclass builds its model and data after ``super().__init__`` (which resolves
      ``self.device`` and the torchrun context ``self.dist``), then calls :meth:`start` with the model,
      the callable the steps run it through (a DDP wrapper, a compiled module, or the model) and its
      other stateful objects (optimizers, schedulers, samplers, carried state);
    * it implements the abstract methods below; :meth:`run` refuses to run before :meth:`start`.

    Every step goes through :meth:`backward` (micro-batches, mixed precision) and :meth:`update`
    (unscaling, gradient clipping to ``cfg.grad_clip``, optimizer steps).
    """

    label: ClassVar[str] = "run"
    run_id: str  # this run's identity (``run.json``, every checkpoint, the provenance of its genotypes)
    settings_type: ClassVar[type[RunSettings]] = RunSettings  # what ``cfg`` must be
    experiment: ClassVar[str] = "search"  # the egs.settings(...) experiment that gives it
    model: nn.Module
    forward: Callable[..., Any]
    stateful: dict[str, Any]

    def __init__(self, cfg: RunSettings, run_dir: str | Path, resume: bool, progress: bool,
                 record: Mapping[str, Any] | None = None) -> None:
        """``record``: more fields for ``config.json`` beside the settings (e.g. the trained genotype)."""
        if not isinstance(cfg, self.settings_type):
            raise EGSError(f"{type(self).__name__} needs {self.settings_type.__name__} (egs.settings("
                           f"{self.experiment!r}, profile)), got {type(cfg).__name__}.")
        device = resolve_device(cfg.device)
        self.dist = distributed.init(device)
        self.device = distributed.rank_device(device, self.dist)
        run_dir = distributed.broadcast_object(str(run_dir), self.dist)  # one directory, rank 0's name
        self.cfg, self.dir, self.resume = cfg, Path(run_dir), resume
        self.lock = RunLock(self.dir) if self.dist.main else None  # before any data is loaded
        self.record = {**asdict(cfg), **(record or {})}
        self.epoch_lines = progress and self.dist.main and progress_style() == "epoch"
        self.progress = progress and self.dist.main and not self.epoch_lines
        self.precision = MixedPrecision(self.device, cfg.amp)
        self.epoch, self.step, self.elapsed = 0, 0, 0.0
        self.saved_at: tuple[int, int] | None = None  # (epoch, step) of the checkpoint on disk; None: none yet
        self.sums: dict[str, float] = {}
        self._started = False
        check_run_dir(self.dir, resume, self.record, self.dist.main, kind=self.label)

    def start(self, model: nn.Module, stateful: Mapping[str, Any], forward: Callable[..., Any] | None = None) -> None:
        """Hand the loop its model, the stateful objects saved with it in every checkpoint, and the
        ``forward`` callable the steps use (default: the model); then restore a checkpoint or start a
        fresh log. Call once, at the end of the subclass's ``__init__``."""
        self.model, self.forward = model, model if forward is None else forward
        self.stateful = {"model": model, **stateful, "scaler": self.precision.scaler,
                         "global_rng": GlobalRNGState(self.dist, self.device)}
        main = self.dist.main
        if main:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.log = MetricsLog(self.dir / "metrics.jsonl", write=main)
        self.board = Board(self.dir, self.steps_per_epoch(), self.cfg.tensorboard and main)  # clears its folder
        try:
            self._restore() if self.resume else self._begin()
        except WriteError as err:
            raise self._write_failed(err) from None
        self._started = True

    def _restore(self) -> None:
        """Continue from the run's own checkpoint, its metrics cut to the lines it accounts for."""
        state = self._load_own_checkpoint()
        self.run_id = state["run_id"]
        self.epoch, self.step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
        self.saved_at = (self.epoch, self.step)
        self.sums = dict(state["sums"]) if self.dist.main else {}  # epoch sums so far, counted once
        self.log.truncate(state["metrics_lines"])
        self.board.replay(self.log.read())  # the curves up to the checkpoint, nothing after it

    def _begin(self) -> None:
        """A new run: its id, ``config.json``, ``run.json`` and an empty log."""
        if self.dist.rank:  # each rank its own dropout / drop-path masks
            torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank)
        self.run_id = distributed.broadcast_object(uuid.uuid4().hex[:16], self.dist)
        self.run_info = {"run_id": self.run_id, "kind": self.label, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.log.truncate(0)
        if self.dist.main:
            write_json(self.dir / "config.json", self.record)
            write_json(self.dir / "run.json", self.run_info)

    def _load_own_checkpoint(self) -> dict[str, Any]:
        """The checkpoint, refused (one line) unless it belongs to this run directory's run and settings
        (:func:`egs.engine.rundir.own_checkpoint`); then every stateful object restored from it."""
        state, self.run_info = own_checkpoint(self.dir, self.record, self.device, self.dist.main)
        path = self.dir / "checkpoint.pt"
        for name, obj in self.stateful.items():
            try:
                obj.load_state_dict(state[name])
            except (KeyError, RuntimeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise EGSError(f"cannot resume: {path} does not fit this run's {name} ({first[:200]}); it was "
                               "written by another configuration: start a new run directory.") from None
        return state

    def close(self) -> None:
        """Release the run directory's lock (done when :meth:`run` ends, and when building the loop fails;
        for loops built but not run)."""
        if getattr(self, "board", None) is not None:
            self.board.close()
        if getattr(self, "lock", None) is not None:
            self.lock.release()

    def where(self) -> str:
        """The current step, for messages."""
        return f"epoch {self.epoch + 1}, step {self.step + 1}"

    def cost(self) -> dict[str, Any]:
        """What the run cost: wall-clock seconds of training and device hours/days, and the device."""
        hours = self.elapsed / 3600
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        world = self.dist.world
        return {"wall_clock_s": self.elapsed, "device": str(self.device), "device_name": name,
                "processes": world, "device_hours": hours * world, "device_days": hours * world / 24}

    def global_sums(self) -> dict[str, float]:
        """The epoch's running sums added over all ranks (every rank has the same keys)."""
        keys = sorted(self.sums)
        return dict(zip(keys, distributed.all_sum([self.sums[k] for k in keys], self.dist, self.device)))

    def checkpoint(self) -> None:
        """Every rank takes part (RNG states are gathered); rank 0 writes."""
        state = {name: obj.state_dict() for name, obj in self.stateful.items()}
        state.update(run_id=self.run_id, settings=settings_fingerprint(self.record), epoch=self.epoch,
                     step=self.step, elapsed=self.elapsed, sums=self.global_sums(), metrics_lines=self.log.lines,
                     record=self.record, run=self.run_info)  # copies of config.json and run.json
        if self.dist.main:
            save_checkpoint(self.dir / "checkpoint.pt", state)
        self.saved_at = (self.epoch, self.step)

    def _kept(self) -> str | None:
        """Where the checkpoint on disk stands ("the end of epoch 2", "epoch 3, step 5"); None if there is none."""
        if self.saved_at is None:
            return None
        epoch, step = self.saved_at
        return f"the end of epoch {epoch}" if step == 0 else f"epoch {epoch + 1}, step {step}"

    def _write_failed(self, err: WriteError) -> EGSError:
        """A failed write (full disk, read-only folder) as one line that says what is kept and how to go on."""
        kept = self._kept()
        then = (f"the last good checkpoint ({kept}) is kept: free space or fix the folder, then resume with --resume"
                if kept else "the run has no checkpoint yet: free space or fix the folder, then start it again")
        return EGSError(f"cannot write {err.path} ({err.reason}); {then}.")

    def backward(self, batch: Sequence[torch.Tensor], loss_of: Callable[..., tuple[torch.Tensor, torch.Tensor]],
                 dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward pass of the mean loss over ``batch``, in micro-batches of ``cfg.micro_batch`` rows.

        Every tensor of ``batch`` is split along ``dim`` (0: images; 1: the streams of a language
        model's tokens and hidden state, never time). ``loss_of(*part) -> (loss, out)`` runs under
        autocast; each micro-batch's mean loss is weighted by its share of the rows, so the gradients
        are those of the whole batch's mean loss, with BatchNorm statistics taken per micro-batch. A run
        with the same global batch and ``micro_batch`` therefore trains the same way on any number of
        processes (a 2-process and a 1-process run differ only in float rounding; DDP syncs gradients
        on the last micro-batch only). ``micro_batch`` 0 is the whole per-process batch. Returns the
        loss (a detached 0-d tensor: reading it would force a host sync, so the loop reads it only when it
        logs) and the ``out`` of the whole batch, concatenated along ``dim`` (detached).
        """
        rows = batch[0].shape[dim]
        size = self.cfg.micro_batch or rows
        if rows % size:
            raise EGSError(f"micro_batch={size} must divide the per-process batch of {rows} rows; use a "
                           "divisor of batch_size / processes, or 0 for the whole batch.")
        starts = range(0, rows, size)
        total, outputs = None, []
        for i, start in enumerate(starts):
            part = [t.narrow(dim, start, size) for t in batch]
            last = i == len(starts) - 1
            sync = nullcontext() if last or not hasattr(self.forward, "no_sync") else self.forward.no_sync()
            with sync:
                with self.precision.autocast():
                    loss, out = loss_of(*part)
                    share = loss * (size / rows) if len(starts) > 1 else loss
                # the sampled codes' graph (alpha -> code) is shared by the micro-batches
                self.precision.scaler.scale(share).backward(retain_graph=not last)
            total = share.detach() if total is None else total + share.detach()
            outputs.append(out.detach())
        return total, torch.cat(outputs, dim)

    def update(self, optimizers: Sequence[torch.optim.Optimizer], clip: Iterable[torch.Tensor] | None = None) -> None:
        """Step ``optimizers`` after :meth:`backward`: gradients unscaled (fp16), the norm of ``clip``'s
        gradients clipped to ``cfg.grad_clip`` (None: no clipping), then the scaler updated."""
        scaler = self.precision.scaler
        if clip is not None:
            for opt in optimizers:
                scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(list(clip), self.cfg.grad_clip)
        for opt in optimizers:
            scaler.step(opt)
        scaler.update()

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Steps in the current epoch."""

    @abstractmethod
    def batches(self, epoch: int, start_step: int) -> Iterator[Any]:
        """The batches of ``epoch`` from step ``start_step`` on (a pure function of seed, epoch, step)."""

    def begin_epoch(self) -> None:
        """Per-epoch settings (temperature, drop-path probability); called also after a resume."""

    @abstractmethod
    def train_step(self, batch: Any) -> dict[str, Any]:
        """One step; returns sums to accumulate over the epoch (must include ``n``) and may
        include ``"log"``: a dict of per-step values for the step record."""

    @abstractmethod
    def end_epoch(self) -> dict[str, Any]:
        """Evaluate and return the epoch record's extra fields (the loop adds epoch, elapsed)."""

    @abstractmethod
    def finish(self) -> dict[str, Any]:
        """Write the run's results and return its summary."""

    # ------------------------------------------------------------------ the loop
    def run(self, stop_after_steps: int | None = None) -> dict[str, Any]:
        """Train to the last epoch (or until interrupted, after a checkpoint), then :meth:`finish`; the run
        directory's lock is released at the end, however the run ends."""
        if not self._started:
            raise EGSError(f"{type(self).__name__} never called start(model, stateful): its __init__ must end "
                           "with self.start(...) before run().")
        self._done, self._stop_after = 0, stop_after_steps
        try:
            with deferred_interrupt() as flag:
                while self.epoch < self.cfg.epochs:
                    self.begin_epoch()
                    self._run_epoch(flag)
                    self.sums = self.global_sums()
                    distributed.check_identical(self.model.parameters(), "weights",
                                                f"the end of epoch {self.epoch + 1}", self.dist, self.device)
                    record = self.end_epoch()
                    self._record({"type": "epoch", "epoch": self.epoch + 1, "elapsed_s": self.elapsed, **record})
                    if self.epoch_lines:
                        self._epoch_line(record)
                    self.epoch, self.step, self.sums = self.epoch + 1, 0, {}
                    self.checkpoint()
            return self.finish()
        except WriteError as err:
            raise self._write_failed(err) from None
        finally:
            self.close()

    def _epoch_line(self, record: Mapping[str, Any]) -> None:
        """One line for the finished epoch: on stdout in a notebook (its report), else on stderr like a bar
        (the CLI's stdout carries the summary JSON)."""
        shown = {k: v for k, v in record.items() if isinstance(v, float) and k.endswith(SHOWN)}
        print(f"{self.label} epoch {self.epoch + 1}/{self.cfg.epochs} ({self.elapsed:.0f} s): "
              + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()), flush=True,
              file=sys.stdout if in_kernel() else sys.stderr)

    def _track_finite(self, out: Mapping[str, Any]) -> None:
        """Remember, on the device (no host sync), the first step whose loss was NaN or inf."""
        loss = out.get("loss")
        if isinstance(loss, torch.Tensor):
            bad = ~torch.isfinite(loss)
            self._first_bad = torch.where(bad & (self._first_bad < 0), torch.as_tensor(self.step + 1), self._first_bad)
        elif loss is not None and not math.isfinite(loss):
            self._first_bad = torch.as_tensor(self.step + 1)

    def _stop_if_diverged(self) -> None:
        """Stop (one line, nothing saved: the last checkpoint stays the last good one) if a loss of this
        epoch was NaN or inf; read at each logged step and at the end of the epoch, not at every step."""
        step = int(self._first_bad)
        if step < 0:
            return
        kept = self._kept()
        then = (f"its last checkpoint ({kept}) is kept: resume with --resume to retry from it, or lower the learning "
                "rate (or check the data) and start again in a new run directory" if kept else
                "it has no checkpoint yet: lower the learning rate (or check the data) and start it again")
        raise EGSError(f"the training loss is not finite (NaN or inf) at epoch {self.epoch + 1}, step {step} of "
                       f"{self.dir}: the run diverged; {then}.")

    def _write_step(self, step_log: Mapping[str, Any]) -> None:
        """The step record, every ``log_every`` steps: the only per-step host reads of the loop."""
        self._stop_if_diverged()
        values = {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in step_log.items()}
        self._record({"type": "step", "epoch": self.epoch + 1, "step": self.step, **values})

    def _record(self, record: dict[str, Any]) -> None:
        """One metrics record: into ``metrics.jsonl`` and, when on, TensorBoard (:mod:`egs.engine.board`)."""
        self.log.write(record)
        self.board.write(record)

    def _run_epoch(self, flag: dict[str, Any]) -> None:
        """The steps of one epoch; an interruption (Ctrl-C or SIGTERM on any rank, or ``stop_after_steps``)
        saves a checkpoint after the current step and raises :class:`Interrupted`."""
        from tqdm.auto import tqdm
        bar = tqdm(total=self.steps_per_epoch(), initial=self.step, leave=False,
                   desc=f"{self.label} epoch {self.epoch + 1}/{self.cfg.epochs}", disable=not self.progress)
        start = time.perf_counter()
        self._first_bad = torch.tensor(-1, device=self.device)
        for batch in self.batches(self.epoch, self.step):
            out = self.train_step(batch)
            self._track_finite(out)
            step_log = out.pop("log", None)
            for key, value in out.items():
                self.sums[key] = self.sums.get(key, 0.0) + value
            self.step += 1
            self._done += 1
            bar.update(1)
            if self.step % self.cfg.log_every == 0:
                if step_log is not None:
                    self._write_step(step_log)
                if "loss" in self.sums:
                    bar.set_postfix(loss=f"{float(self.sums['loss']) / float(self.sums['n']):.3f}")
            stop = distributed.any_rank(flag["stop"], self.dist, self.device)
            if stop or (self._stop_after is not None and self._done >= self._stop_after):
                self.elapsed += time.perf_counter() - start
                bar.close()
                self._stop_if_diverged()  # never checkpoint a diverged state
                self.checkpoint()
                why = {signal.SIGTERM: "stopped by SIGTERM"}.get(flag["signal"], "interrupted") if stop else "stopped"
                raise Interrupted(f"{self.label} {why} at epoch {self.epoch + 1}, step {self.step}; checkpoint saved "
                                  f"in {self.dir}, resume with --resume", flag["signal"])
        bar.close()
        self.elapsed += time.perf_counter() - start
        self._stop_if_diverged()
