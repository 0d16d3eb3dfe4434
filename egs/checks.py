"""Public validators shared by every module: one clear :class:`EGSError` naming the value and the fix.

Settings (:mod:`egs.profiles`), networks, samplers and data pipelines all check their arguments with
these, so a bad value reads the same wherever it is caught. ``bool`` is never accepted as a number
(``True`` is an ``int`` in Python), and real numbers must be finite.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable

from egs.errors import EGSError


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


def check_M(M: object) -> int:
    """The ensemble size of Definition 1: an integer >= 1."""
    return check_int(M, "M", 1, "M is the number of Gumbel-softmax draws per edge (the paper uses M=7 for "
                                "CIFAR-10, M=4 for PTB)")


def check_tau(tau: object, what: str = "tau") -> float:
    """A Gumbel-softmax temperature: a finite number > 0."""
    return check_real(tau, what, 0.0, low_open=True, fix="the temperature of each Gumbel-softmax draw, e.g. 1.0")


def check_lam(lam: object, what: str = "lam") -> float:
    """The weight of the effectiveness credit in Eq. 5: a number in [0, 1]."""
    return check_real(lam, what, 0.0, 1.0, fix="lambda weighs softmax(alpha) against the efficiency credit "
                                               "(paper: 0.5; 1 switches the resource term off)")
