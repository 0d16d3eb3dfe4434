"""Data parallelism over processes launched by ``torchrun`` (PyTorch DDP), and its invariants.

``torchrun --nproc_per_node N [--nnodes K ...] -m egs search ...`` starts N*K processes with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; :func:`init` joins them into one
process group (NCCL on CUDA, gloo on CPU). Without those variables everything runs in one process
and every function here is a no-op, so the single-process path is the same code.

The rules every run follows under DDP:

* ``batch_size`` in the settings is the **global** batch; each rank trains on its own contiguous
  ``batch_size / world`` rows of every global batch (:func:`local_batch`), so the data seen per step
  is the single-process run's. The weight learning rate is the settings' ``lr`` for that global batch;
  ``lr_reference_batch`` > 0 scales it linearly (:func:`scaled_lr`), explicitly, in ``config.json``.
* Gradients are averaged by DDP, so weights stay identical on all ranks; parameters that no rank
  used in a step (ops switched off by the sampled code) keep no gradient, as in one process.
* Architecture codes come from the run's seeded sampler generator, identical on every rank because
  the logits are; this is *checked* every step (:func:`check_identical`), not assumed, and a run
  whose ranks disagree stops with an error instead of drifting to different architectures.
* Only rank 0 writes files (config, metrics, checkpoints, genotypes, summaries); every rank can read
  them, so the run directory must be on a filesystem all nodes share for ``--resume``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

from egs.core.errors import EGSError


@dataclass(frozen=True)
class Context:
    """This process's place in the job: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise EGSError(f"{name}={value!r} is not an integer; it is set by torchrun, launch with torchrun "
                       "or unset it.") from None


def context() -> Context:
    """The current context: torchrun's environment once :func:`init` has joined the group, else one process."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return Context()


def init(device: torch.device) -> Context:
    """Join the process group described by torchrun's environment (once), for a run on ``device``.

    On CUDA each process uses GPU ``LOCAL_RANK`` and the NCCL backend; on CPU, gloo.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Context()
    if not dist.is_available():
        raise EGSError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process.")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
        dist.init_process_group(backend)
    return context()


def shutdown() -> None:
    """Leave the process group at the end of a command, once every rank has got there (gloo aborts a
    process whose peer closes the connection under it)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def rank_device(device: torch.device, ctx: Context) -> torch.device:
    """Under torchrun a CUDA run uses the GPU of the process's local rank (``cuda`` -> ``cuda:LOCAL_RANK``)."""
    if ctx.active and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def local_batch(global_batch: int, ctx: Context, what: str = "batch_size") -> int:
    """Rows per rank of a global batch; the global batch must split evenly over the ranks."""
    if global_batch % ctx.world:
        raise EGSError(f"{what}={global_batch} is the global batch and must be divisible by the "
                       f"{ctx.world} processes; use a multiple of {ctx.world}.")
    return global_batch // ctx.world


def shard(rows: int, ctx: Context) -> slice:
    """This rank's contiguous slice of ``rows`` (a global batch that splits evenly)."""
    size = local_batch(rows, ctx, "batch")
    return slice(ctx.rank * size, (ctx.rank + 1) * size)


def scaled_lr(lr: float, batch_size: int, reference_batch: int) -> float:
    """The linear scaling rule (Goyal et al., 2017): ``lr * batch_size / reference_batch``; a
    ``reference_batch`` of 0 leaves ``lr`` as given (it is then the rate for the global batch)."""
    if reference_batch < 0:
        raise EGSError(f"lr_reference_batch={reference_batch} must be 0 (off) or the batch size lr was tuned for.")
    return lr * batch_size / reference_batch if reference_batch else lr


def wrap(model: nn.Module, ctx: Context, device: torch.device, sparse: bool = False) -> nn.Module:
    """``model`` in DistributedDataParallel when several processes run, else ``model`` itself.

    ``sparse``: the forward uses a different subset of parameters each step (a sampled architecture),
    so DDP must look for unused parameters; those unused on every rank keep ``grad=None``.
    """
    if not ctx.active:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=sparse)


def all_sum(values: Sequence[float], ctx: Context, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64)."""
    if not ctx.active:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def fingerprint(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Two float64 numbers that change with any change of the values or their order."""
    total = torch.zeros(2, dtype=torch.float64)
    offset = 0
    for t in tensors:
        v = t.detach().reshape(-1).double().cpu()
        weights = torch.arange(offset + 1, offset + len(v) + 1, dtype=torch.float64).sqrt()
        total += torch.stack([v.sum(), (v * weights).sum()])
        offset += len(v)
    return total


def check_identical(tensors: Iterable[torch.Tensor], what: str, where: str, ctx: Context,
                    device: torch.device) -> None:
    """Raise (on every rank) unless ``tensors`` are bit-identical on all ranks."""
    if not ctx.active:
        return
    fp = fingerprint(tensors).to(device)
    high, low = fp.clone(), fp.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    if not torch.equal(high, low):
        raise EGSError(f"the {what} differ between the {ctx.world} processes at {where}: the ranks no longer "
                       "train the same architecture. This is a bug; please report it with the run's config.json.")


def any_rank(flag: bool, ctx: Context, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (e.g. a Ctrl-C seen by one process)."""
    if not ctx.active:
        return flag
    return all_sum([float(flag)], ctx, device)[0] > 0


def broadcast_object(obj: Any, ctx: Context) -> Any:
    """Rank 0's ``obj`` on every rank (a run directory name, RNG states to restore)."""
    if not ctx.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_object(obj: Any, ctx: Context) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not ctx.active:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out
