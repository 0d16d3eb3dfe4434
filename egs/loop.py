"""The epoch/step loop shared by search and training, with exact resume.

A run lives in a directory: ``config.json`` (the settings), ``run.json`` (the run's id),
``metrics.jsonl`` (step and epoch records) and ``checkpoint.pt``, written atomically at the end of every epoch and when the run is
interrupted. Ctrl-C (SIGINT) is deferred to the end of the current step, so a checkpoint always
holds a consistent state; resuming restores every stateful object (model, optimizers, schedulers,
random generators, running sums) and the position ``(epoch, step)``, and data batches are a pure
function of ``(seed, epoch, step)``, so a resumed run continues exactly as if never stopped.

Subclasses build their model and data, hand them to :meth:`EpochLoop.start` with their other
stateful objects, and implement the abstract methods (:meth:`batches`, :meth:`train_step`,
:meth:`end_epoch`, :meth:`finish`, ...); search loops draw their codes with :class:`CodeSampler`.

Under ``torchrun`` (:mod:`egs.distributed`) every rank runs this loop in step: only rank 0 writes
files and shows progress, epoch sums are added over the ranks before :meth:`end_epoch`, a Ctrl-C seen
by any rank stops all of them after the same step, and a checkpoint holds the weights once (they are
identical on all ranks, which is checked every epoch) plus every rank's global RNG state, so any
number of processes can resume it.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
import uuid
from abc import ABC, abstractmethod
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from egs import distributed
from egs.board import Board
from egs.errors import EGSError
from egs.files import write_json
from egs.profiles import RunSettings
from egs.rundir import RunLock, read_json_file, result_settings, settings_fingerprint
from egs.runlog import MetricsLog, load_checkpoint, save_checkpoint


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise EGSError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N.") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EGSError(f"device={name!r} asked for CUDA but none is available; use device=cpu or auto.")
    return device


class MixedPrecision:
    """Autocast (bf16 where the GPU supports it, else fp16 with a gradient scaler) on CUDA; off on CPU.

    ``scaler`` is a ``torch.amp.GradScaler`` that is a no-op unless fp16 is used, so a step is
    always ``scaler.scale(loss).backward(); scaler.unscale_(opt); clip; scaler.step(opt); scaler.update()``.
    """

    def __init__(self, device: torch.device, enabled: bool) -> None:
        cuda = device.type == "cuda"
        self.device_type = device.type
        self.dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda and enabled else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)


class GeneratorState:
    """Adapter giving a ``torch.Generator`` the ``state_dict`` interface of the other objects."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu() if self.generator.device.type == "cpu" else state)


class GlobalRNGState:
    """The global torch RNGs (drop-path masks, dropout) of every rank, saved and restored with a checkpoint.

    Each rank draws its own masks. A rank with no saved state (resuming with more processes than
    wrote the checkpoint) continues from rank 0's state, reseeded by its rank.
    """

    def __init__(self, ctx: distributed.Context, device: torch.device) -> None:
        self.ctx, self.device = ctx, device

    def state_dict(self) -> dict[str, Any]:
        mine = {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        return {"ranks": distributed.gather_object(mine, self.ctx)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ranks = state["ranks"]
        mine = ranks[self.ctx.rank] if self.ctx.rank < len(ranks) else ranks[0]
        torch.set_rng_state(mine["cpu"].cpu())
        if mine["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"].cpu(), self.device)
        if self.ctx.rank >= len(ranks):
            torch.manual_seed(int(torch.randint(2**62, (1,))) + self.ctx.rank)


SHOWN = ("loss", "acc", "err", "ppl")  # the epoch-line fields (suffixes of the record's keys)


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT) or a scheduler's SIGTERM after a checkpoint; ``exit_status`` is
    the conventional 128 + signal number (130, 143)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_status = 128 + int(signum)


@contextmanager
def deferred_interrupt() -> Iterator[dict[str, Any]]:
    """Turn SIGINT and SIGTERM into a flag checked between steps, so an interrupted step still completes;
    ``flag["signal"]`` is the signal received."""
    flag: dict[str, Any] = {"stop": False, "signal": signal.SIGINT}
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, lambda sig, _: flag.update(stop=True, signal=sig))
        except ValueError:  # not in the main thread: leave the signals alone
            pass
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Evaluate with each batch's own BatchNorm statistics, leaving the running statistics untouched.

    A search supernet's running statistics average over every sampled architecture, so they do not
    fit any single one: with them, the derived architecture's search-val loss was 15-60 nats at
    14-30% accuracy in our cpu CIFAR-10 search (measured). Batch statistics (BN in training mode with
    momentum 0; the batch counter is restored) evaluate it as it would be trained. Other layers
    (dropout) are in evaluation mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.training, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None
              else None) for m in norms]
    model.eval()
    for m in norms:
        m.train()
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, training, momentum, tracked in saved:
            m.train(training)
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
        model.train()


class CodeSampler:
    """Each step's architecture codes for a search loop: ``supernet.sample`` with the run's seeded
    generator, checked identical on every rank under torchrun (codes and the logits they came from:
    never assumed). Its ``state_dict`` is the generator's state, saved with every checkpoint."""

    def __init__(self, supernet: nn.Module, seed: int, ctx: distributed.Context, device: torch.device) -> None:
        self.supernet, self.ctx, self.device = supernet, ctx, device
        self.generator = torch.Generator(device).manual_seed(seed)
        self._state = GeneratorState(self.generator)

    def __call__(self, where: str) -> Any:
        """Draw this step's codes (``where`` names the step in the error a rank mismatch raises)."""
        codes = self.supernet.sample(self.generator)
        values = list(codes.values()) if isinstance(codes, dict) else [codes]
        distributed.check_identical([*self.supernet.arch_parameters(), *values], "architecture logits or sampled "
                                    "codes", where, self.ctx, self.device)
        return codes

    def state_dict(self) -> torch.Tensor:
        return self._state.state_dict()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self._state.load_state_dict(state)


def in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill, nbconvert)."""
    return "ipykernel" in sys.modules


def progress_style() -> str:
    """How a run shows progress: "bar" (a per-step tqdm bar; a widget in Jupyter) or "epoch" (one printed line per
    epoch). ``$EGS_PROGRESS`` decides when set; otherwise a bar in a terminal and in a kernel that a Jupyter server
    started (JupyterLab sets ``JPY_SESSION_NAME``), and one line per epoch in a kernel run by papermill or
    nbconvert (the executed copy keeps one line per epoch) and where output goes to a file, a pipe or a
    scheduler's log (no carriage-return updates there)."""
    style = os.environ.get("EGS_PROGRESS")
    if style in ("bar", "epoch"):
        return style
    if style:
        raise EGSError(f"EGS_PROGRESS={style!r} is not a progress style; set it to 'bar' or 'epoch', or unset it.")
    if in_kernel():
        return "bar" if os.environ.get("JPY_SESSION_NAME") else "epoch"
    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return "bar" if interactive else "epoch"


class EpochLoop(ABC):
    """Run directory, checkpoints and the resumable epoch/step loop.

    The contract, all of it explicit:

    * ``cfg`` is a :class:`egs.profiles.RunSettings` (epochs, seed, device, log_every, micro_batch,
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
        self.sums: dict[str, float] = {}
        self._started = False
        self._check_run_dir()

    def _check_run_dir(self) -> None:
        ckpt = self.dir / "checkpoint.pt"
        if not self.resume:
            if ckpt.exists():
                raise EGSError(f"{self.dir} already holds a run; pass --resume to continue it or choose "
                               "another run directory.")
            return
        if not ckpt.exists():
            raise EGSError(f"cannot resume: {ckpt} does not exist; start the run without --resume.")
        stored = result_settings(read_json_file(self.dir / "config.json", "run's settings"))
        now = result_settings(self.record)
        if stored != now:
            changed = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
            raise EGSError(f"cannot resume {self.dir}: its settings differ in {', '.join(changed)}; "
                           "resume with the run's own settings or start a new run directory.")

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
        if self.resume:
            state = self._load_own_checkpoint()
            self.run_id = state["run_id"]
            self.epoch, self.step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
            self.sums = dict(state["sums"]) if main else {}  # epoch sums so far, counted once
            self.log.truncate(state["metrics_lines"])
            self.board.replay(self.log.read())  # the curves up to the checkpoint, nothing after it
        else:
            if self.dist.rank:  # each rank its own dropout / drop-path masks
                torch.manual_seed(self.cfg.seed + 7919 * self.dist.rank)
            self.run_id = distributed.broadcast_object(uuid.uuid4().hex[:16], self.dist)
            self.log.truncate(0)
            if main:
                write_json(self.dir / "config.json", self.record)
                write_json(self.dir / "run.json", {"run_id": self.run_id, "kind": self.label,
                                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
        self._started = True

    def _load_own_checkpoint(self) -> dict[str, Any]:
        """The checkpoint, refused (one line) unless it belongs to this run directory's run and settings;
        then every stateful object restored from it."""
        path = self.dir / "checkpoint.pt"
        state = load_checkpoint(path, self.device)
        run_id = read_json_file(self.dir / "run.json", "run's identity").get("run_id")
        if state.get("run_id") != run_id:
            raise EGSError(f"cannot resume: {path} belongs to run {state.get('run_id')}, but {self.dir} is run "
                           f"{run_id}; a checkpoint resumes only its own run: start a new run directory.")
        if state.get("settings") != settings_fingerprint(self.record):
            raise EGSError(f"cannot resume: {path} (run {run_id}) was written with other settings than these "
                           f"(fingerprint {state.get('settings')} != {settings_fingerprint(self.record)}); resume "
                           "with the run's own settings or start a new run directory.")
        for name, obj in self.stateful.items():
            try:
                obj.load_state_dict(state[name])
            except (KeyError, RuntimeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise EGSError(f"cannot resume: {path} does not fit this run's {name} ({first[:200]}); it was "
                               "written by another configuration: start a new run directory.") from None
        return state

    def close(self) -> None:
        """Release the run directory's lock (done when :meth:`run` ends; for loops built but not run)."""
        if getattr(self, "board", None) is not None:
            self.board.close()
        if self.lock is not None:
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
                     step=self.step, elapsed=self.elapsed, sums=self.global_sums(), metrics_lines=self.log.lines)
        if self.dist.main:
            save_checkpoint(self.dir / "checkpoint.pt", state)

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
                    distributed.check_identical(self.model.parameters(), "weights", f"the end of epoch {self.epoch + 1}",
                                                self.dist, self.device)
                    record = self.end_epoch()
                    self._record({"type": "epoch", "epoch": self.epoch + 1, "elapsed_s": self.elapsed, **record})
                    if self.epoch_lines:
                        self._epoch_line(record)
                    self.epoch, self.step, self.sums = self.epoch + 1, 0, {}
                    self.checkpoint()
            return self.finish()
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
        if step >= 0:
            raise EGSError(f"the training loss is not finite (NaN or inf) at epoch {self.epoch + 1}, step {step} of "
                           f"{self.dir}: the run diverged; its last checkpoint (the end of epoch {self.epoch}) is kept. "
                           "Lower the learning rate (or check the data) and start again, or resume with --resume to "
                           "retry from the checkpoint.")

    def _write_step(self, step_log: Mapping[str, Any]) -> None:
        """The step record, every ``log_every`` steps: the only per-step host reads of the loop."""
        self._stop_if_diverged()
        values = {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in step_log.items()}
        self._record({"type": "step", "epoch": self.epoch + 1, "step": self.step, **values})

    def _record(self, record: dict[str, Any]) -> None:
        """One metrics record: into ``metrics.jsonl`` and, when on, TensorBoard (:mod:`egs.board`)."""
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
