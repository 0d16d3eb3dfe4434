"""Every setting's type and range, by name, and the profiles: the vocabulary of :mod:`egs.profiles.experiments`.

A setting's name means the same thing in every experiment, so one check per name (:data:`FIELD_CHECKS`) serves
every settings class; each raises one :class:`egs.core.errors.EGSError` naming the setting and the fix. Light:
importing it loads no torch (the command line checks values before it imports torch).
"""
from __future__ import annotations

from typing import Any, Callable

from egs.arch.space import get_space
from egs.core.checks import (check_bool, check_choice, check_int, check_lam, check_M, check_rate, check_real,
                             check_temperature)
from egs.core.errors import EGSError
from egs.families import get_family
from egs.method.options import DERIVATION_RULES, EFFECTIVENESS

PROFILES = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"

MODES = ("joint", "bilevel")  # Eq. 9 (one backward pass for w and alpha) or first-order DARTS
TAU_SCHEDULES = ("geometric", "linear")
COSTS = ("flops", "params", "latency")  # efficiency-credit cost metrics (egs.conv.credits)
SCHEDULES = ("cosine", "poly")


def _int(minimum: int = 1) -> Callable[[object, str], int]:
    return lambda value, name: check_int(value, name, minimum)


def _depth(minimum: int, maximum: int, paper: str) -> Callable[[object, str], int]:
    """A network depth: building (and counting, egs.engine.memory) takes time per cell, so it is bounded first."""
    def check(value: object, name: str) -> int:
        n = check_int(value, name, minimum)
        if n > maximum:
            raise EGSError(f"{name}={n} is deeper than egs builds ({name} <= {maximum}; {paper}).")
        return n
    return check


def _real(low: float | None = None, high: float | None = None, low_open: bool = False,
          high_open: bool = False) -> Callable[[object, str], float]:
    return lambda value, name: check_real(value, name, low, high, low_open, high_open)


def _choice(*options: str) -> Callable[[object, str], str]:
    return lambda value, name: check_choice(value, name, options)


def _ints(minimum: int = 1) -> Callable[[object, str], tuple[int, ...]]:
    def check(value: object, name: str) -> tuple[int, ...]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not list(value):
            raise EGSError(f"{name}={value!r} must be a non-empty list of integers >= {minimum}.")
        return tuple(check_int(v, f"{name} entry", minimum) for v in value)
    return check


def _space(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise EGSError(f"{name}={value!r} must name a search space (conv, rnn or one you declared).")
    return get_space(value).name


def _device(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise EGSError(f"{name}={value!r} must name a device: auto, cpu, cuda or cuda:N.")
    return value


_POSITIVE, _COUNT, _SIZE = _real(0.0, low_open=True), _int(1), _int(0)  # > 0; >= 1; >= 0 (0: everything)
_RATE, _NONNEGATIVE, _BETA = check_rate, _real(0.0), _real(0.0, 1.0, high_open=True)
_LAYERS = _depth(3, 200, "DARTS's networks have 8 to 20 cells")
_CELLS = _depth(1, 100, "NAS-Bench-201 has 5 per stage")

# The type and range of every setting, by name (a name means the same thing in every experiment).
FIELD_CHECKS: dict[str, Callable[[object, str], Any]] = {
    # every run
    "epochs": _COUNT, "batch_size": _COUNT, "lr": _POSITIVE, "weight_decay": _NONNEGATIVE, "grad_clip": _POSITIVE,
    "lr_reference_batch": _SIZE, "micro_batch": _SIZE, "amp": check_bool, "tensorboard": check_bool, "seed": _SIZE,
    "log_every": _COUNT, "device": _device,
    # architecture search (Eq. 5, Definition 1, Eq. 9)
    "M": lambda v, _: check_M(v), "lam": lambda v, _: check_lam(v), "tau_start": check_temperature,
    "tau_end": check_temperature,
    "mode": _choice(*MODES), "arch_lr": _NONNEGATIVE, "arch_beta1": _BETA, "arch_beta2": _BETA,
    "arch_weight_decay": _NONNEGATIVE, "cost": _choice(*COSTS), "credit_beta": _NONNEGATIVE,
    "space": _space, "rule": _choice(*DERIVATION_RULES), "select_candidates": _COUNT, "select_batches": _COUNT,
    "effectiveness": _choice(*EFFECTIVENESS), "arch_reg": _NONNEGATIVE, "tau_schedule": _choice(*TAU_SCHEDULES),
    # conv networks and images
    "C": _COUNT, "layers": _LAYERS, "image_size": _int(8), "train_size": _SIZE, "val_size": _SIZE,
    "test_size": _SIZE, "lr_min": _NONNEGATIVE, "momentum": _BETA, "channels_last": check_bool,
    "dataset": _choice(*get_family("conv").train), "schedule": _choice(*SCHEDULES), "poly_power": _POSITIVE,
    "auxiliary_weight": _NONNEGATIVE, "drop_path": _RATE, "cutout": _SIZE, "label_smoothing": _RATE,
    "workers": _SIZE, "compile": check_bool, "max_madds": _SIZE,
    # NAS-Bench-201 searches
    "relaxation": _choice("egs", "darts"), "cells": _CELLS, "nesterov": check_bool, "best_seeds": _ints(0),
    "darts_seeds": _ints(0), "ranking_cells": _int(10), "arch_warmup": _SIZE,
    # language models
    "corpus": _choice(*get_family("rnn").train), "eval_batch_size": _COUNT, "bptt": _int(2), "emb": _COUNT,
    "train_tokens": _SIZE, "val_tokens": _SIZE, "test_tokens": _SIZE, "nonmono": _COUNT,
    "test_batch_size": _COUNT, "tar_beta": _NONNEGATIVE,
    "dropout": _RATE, "dropouth": _RATE, "dropoutx": _RATE, "dropouti": _RATE, "dropoute": _RATE,
    # notebook 01; the tables' protocol
    "mc_samples": _COUNT, "count_samples": _SIZE, "Ks": _ints(1), "Ms": _ints(1),
    "seeds": _ints(0), "random_cells": _SIZE, "random_rnn_cells": _SIZE, "search_seeds": _ints(0),
    "ablation_Ms": _ints(1), "single_draw_epochs": _SIZE, "selection": check_bool, "random_search_cells": _SIZE,
    "random_search_rnn_cells": _SIZE, "op_matched_cells": check_bool,
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise EGSError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} "
                       "(smoke = tests, cpu = a laptop, paper = the paper's settings on GPUs).")
    return profile
