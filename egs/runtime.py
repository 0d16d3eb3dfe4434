"""What a run needs from its process, apart from the loop itself (:mod:`egs.loop`): the device and mixed
precision, the random generators' states for exact resume, Ctrl-C and SIGTERM deferred to a step boundary,
BatchNorm with batch statistics for evaluating a supernet's cell, the seeded and rank-checked architecture
sampler of a search, and how progress is shown (a bar in a terminal or JupyterLab, one line per epoch under
papermill, nbconvert and in logs).
"""
from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn as nn

from egs import distributed
from egs.errors import EGSError


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
        return "bar" if _server_kernel() else "epoch"
    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return "bar" if interactive else "epoch"


def _server_kernel() -> bool:
    """Whether this kernel was started by a Jupyter server (JupyterLab), not by papermill or nbconvert. The server
    sets ``JPY_SESSION_NAME`` and writes it as ``jupyter_session`` into the kernel's connection file; a papermill
    kernel started from a JupyterLab cell inherits the variable, but its connection file has no such entry."""
    session = os.environ.get("JPY_SESSION_NAME")
    if not session:
        return False
    try:
        from ipykernel.kernelapp import IPKernelApp
        if not IPKernelApp.initialized():
            return False
        with open(IPKernelApp.instance().connection_file) as f:
            return json.load(f).get("jupyter_session") == session
    except (ImportError, OSError, ValueError, AttributeError):
        return False
