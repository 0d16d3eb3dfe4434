"""Networks that fit: a network's size is checked against the device's memory before a byte of it is allocated.

:func:`allocate_network` builds a network twice: first on PyTorch's ``meta`` device, which records shapes and
allocates nothing, to count the bytes of its parameters and buffers; then, if training it (weights, gradients
and one optimiser buffer per weight: about 3x the weights) fits in the memory the device has free, for real.
A network that cannot fit is one :class:`egs.core.errors.EGSError` naming the settings that size it and the
memory it would need, in milliseconds, where an allocation of terabytes would otherwise fail with the
allocator's traceback, or one of a few gigabytes too many would send the machine into the out-of-memory
killer. An out-of-memory error while building for real (CPU or CUDA) becomes the same one line.

Free memory: on CUDA, ``torch.cuda.mem_get_info``; on the CPU, ``MemAvailable`` of ``/proc/meminfo``, lowered
to what an address-space limit (``ulimit -v``) leaves (where neither can be read, nothing is checked before the
real build).
"""
from __future__ import annotations

import re
import resource
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from egs.core.errors import EGSError

TRAINING_COPIES = 3  # the weights, their gradients and one optimiser buffer each (SGD momentum, NT-ASGD's average)
SIZE_SETTINGS = ("C", "layers", "cells", "emb", "image_size", "batch_size")  # the settings named in the message


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. 12.0 TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"


def available_bytes(device: torch.device) -> int | None:
    """The memory free for a new allocation on ``device``, or None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    free = None
    try:
        match = re.search(r"^MemAvailable:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        free = int(match.group(1)) * 1024 if match else None
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            used = re.search(r"^VmSize:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
            left = limit - (int(used.group(1)) * 1024 if used else 0)
            free = left if free is None else min(free, left)
    except (OSError, ValueError):
        return free
    return free


def network_bytes(factory: Callable[[], nn.Module]) -> int | None:
    """The bytes of the parameters and buffers of ``factory()``, counted on the ``meta`` device (nothing is
    allocated, the random generators are left as they were); None if the network cannot be built there (e.g. a
    build step that times ops on real tensors)."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            net = factory()
    except EGSError:
        raise
    except Exception:  # noqa: BLE001 - any other failure only means "not countable without allocating"
        return None
    tensors = [*net.parameters(), *net.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _sizes(settings: Mapping[str, Any] | Any) -> str:
    values = settings if isinstance(settings, Mapping) else vars(settings)
    named = [f"{k}={values[k]}" for k in SIZE_SETTINGS if k in values]
    return ", ".join(named) or "these settings"


def _too_big(what: str, sizes: str, need: str, have: str, fix: str) -> EGSError:
    return EGSError(f"the {what} at {sizes} does not fit: {need}, and this machine has {have}; {fix}.")


_COUNTED: dict[Any, int | None] = {}  # network bytes by the caller's key: one network is counted once per process


def allocate_network(factory: Callable[[], nn.Module], device: torch.device, settings: Mapping[str, Any] | Any,
                     what: str = "network", fix: str = "lower C or layers (--set C=..., --set layers=...)",
                     count: Callable[[], nn.Module] | None = None, key: Any = None) -> nn.Module:
    """``factory()`` moved to ``device``, if training it fits (see the module docstring); else one EGSError naming
    ``what``, the sizing ``settings`` (a settings object or mapping) and the memory needed and free. ``count``
    builds the part that holds the weights on the meta device, where ``factory`` itself cannot be built there
    (default: ``factory``); ``key`` (hashable: everything the network's size depends on) lets a process count each
    network once (counting costs about one more build)."""
    sizes = _sizes(settings)
    if key is None:
        weights = network_bytes(count or factory)
    else:
        if key not in _COUNTED:
            _COUNTED[key] = network_bytes(count or factory)
        weights = _COUNTED[key]
    free = available_bytes(device)
    if weights is not None and free is not None and weights * TRAINING_COPIES > free:
        need = (f"its parameters and buffers take {human_bytes(weights)}, about "
                f"{human_bytes(weights * TRAINING_COPIES)} to train")
        raise _too_big(what, sizes, need, f"{human_bytes(free)} free on {device}", fix)
    try:
        return factory().to(device)
    except (MemoryError, RuntimeError) as err:  # torch.OutOfMemoryError (CUDA) is a RuntimeError too
        text = str(err)
        if not isinstance(err, (MemoryError, torch.OutOfMemoryError)) and "allocate" not in text:
            raise
        in_bytes = re.search(r"allocate (\d+) bytes", text)  # the CPU allocator's wording
        in_units = re.search(r"allocate ([\d.]+ [KMGTP]iB)", text)  # CUDA's
        asked = human_bytes(int(in_bytes.group(1))) if in_bytes else in_units.group(1) if in_units else None
        need = f"one of its tensors alone takes {asked}" if asked else "it ran out of memory"
        raise _too_big(what, sizes, need, f"{human_bytes(free) if free is not None else 'less'} free on {device}",
                       fix) from None
