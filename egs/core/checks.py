"""Public validators shared by every module: one clear :class:`EGSError` naming the value and the fix.

Settings (:mod:`egs.profiles.experiments`), networks, samplers and data pipelines all check their arguments with
these, so a bad value reads the same wherever it is caught. ``bool`` is never accepted as a number
(``True`` is an ``int`` in Python), and real numbers must be finite.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable

from egs.core.errors import EGSError


def _fix(fix: str) -> str:
    return f"; {fix}" if fix else ""


def check_int(value: object, what: str, minimum: int | None = 1, fix: str = "") -> int:
    """``value`` as an ``int`` if it is an integer (not a bool, not 1.5) ``>= minimum`` (None: any)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise EGSError(f"{what}={value!r} must be an integer, got {type(value).__name__}{_fix(fix)}.")
    if minimum is not None and value < minimum:
        raise EGSError(f"{what}={value!r} must be an integer >= {minimum}{_fix(fix)}.")
    return int(value)


def check_real(value: object, what: str, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False, fix: str = "") -> float:
    """``value`` as a finite ``float`` inside the interval given by ``low``/``high`` (open ends optional)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise EGSError(f"{what}={value!r} must be a number, got {type(value).__name__}{_fix(fix)}.")
    raw, value = value, float(value)
    if not math.isfinite(value):
        raise EGSError(f"{what}={raw!r} must be a finite number{_fix(fix)}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        if high is None:
            span = f"{'>' if low_open else '>='} {low:g}"
        elif low is None:
            span = f"{'<' if high_open else '<='} {high:g}"
        else:
            span = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise EGSError(f"{what}={raw!r} must be {span}{_fix(fix)}.")
    return value


def check_rate(value: object, what: str, fix: str = "") -> float:
    """A probability of dropping something: a number in [0, 1)."""
    return check_real(value, what, 0.0, 1.0, high_open=True, fix=fix)


def check_choice(value: object, what: str, choices: Iterable[str], fix: str = "") -> str:
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise EGSError(f"{what}={value!r} is unknown; use one of {', '.join(map(repr, choices))}{_fix(fix)}.")
    return value


def check_bool(value: object, what: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise EGSError(f"{what}={value!r} must be true or false, got {type(value).__name__}.")
    return value


MAX_M = 1024  # the sampler holds M x E x K draws; past a few dozen draws every op of an edge is drawn almost surely


def check_M(M: object) -> int:
    """The ensemble size of Definition 1: an integer in [1, :data:`MAX_M`]."""
    fix = "M is the number of Gumbel-softmax draws per edge (the paper uses M=7 for CIFAR-10, M=4 for PTB)"
    M = check_int(M, "M", 1, fix)
    if M > MAX_M:
        raise EGSError(f"M={M} is more draws than egs allows (M <= {MAX_M}): the sampler holds M x edges x ops "
                       f"draws, and past a few dozen draws every op of an edge is already drawn almost surely; {fix}.")
    return M


def check_tau(tau: object, what: str = "tau") -> float:
    """A Gumbel-softmax temperature: a finite number > 0."""
    return check_real(tau, what, 0.0, low_open=True, fix="the temperature of each Gumbel-softmax draw, e.g. 1.0")


# The largest finite number of each floating dtype (torch.finfo(dtype).max, spelled out so that settings are
# checked without importing torch; tests/test_sampler.py compares them) and the gradient headroom of the sampler.
FLOAT_MAX = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38, "float32": 3.4028234663852886e38,
             "float64": 1.7976931348623157e308}
GRADIENT_HEADROOM = 256.0


def smallest_tau(dtype: object = "float32") -> float:
    """The smallest temperature :func:`egs.method.sampler.ensemble_gumbel_softmax` accepts for logits of ``dtype``
    (a ``torch.dtype`` or its name: "float16", "bfloat16", "float32", "float64"): ``GRADIENT_HEADROOM / (2 * max)``, ``max`` the dtype's
    largest finite number (float16: 1.95e-3; float32 and bfloat16: 3.8e-37; float64: 7.1e-307).

    Why: a logit's gradient is at most ``min(M, K) * max|g| / (2 * tau)`` for an upstream gradient ``g`` of
    the code (see the sampler's docstring), so from this tau on it stays finite in ``dtype`` whenever
    ``min(M, K) * max|g| <= 256``; ``1 / tau`` is then finite too."""
    dtype = str(dtype).removeprefix("torch.")
    if dtype not in FLOAT_MAX:
        raise EGSError(f"dtype={dtype!r} is not a dtype the sampler computes with; use one of {', '.join(FLOAT_MAX)}.")
    return GRADIENT_HEADROOM / 2.0 / FLOAT_MAX[dtype]  # (2 * max would overflow float64)


def check_temperature(tau: object, what: str = "tau", dtype: str = "float32") -> float:
    """A temperature the sampler accepts for ``dtype`` logits: a finite number >= :func:`smallest_tau`.
    Searches sample from float32 logits (the architecture parameters, outside autocast), with AMP too."""
    tau, low = check_tau(tau, what), smallest_tau(dtype)
    if tau < low:
        raise EGSError(f"{what}={tau!r} is below {low:.3g}, the smallest temperature the sampler accepts for {dtype} "
                       f"logits (gradients up to min(M, K) * max|g| / (2 tau) must stay finite); use {what} >= "
                       f"{low:.3g}.")
    return tau


def check_lam(lam: object, what: str = "lam") -> float:
    """The weight of the effectiveness credit in Eq. 5: a number in [0, 1]."""
    return check_real(lam, what, 0.0, 1.0, fix="lambda weighs softmax(alpha) against the efficiency credit "
                                               "(paper: 0.5; 1 switches the resource term off)")
