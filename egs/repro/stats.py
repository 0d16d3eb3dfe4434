"""The tables' statistics: means with 95 % Student-t intervals over seeds, and Welch's t-test.

Notebooks build their tables from explicit :class:`Record` s (a label, what kind of cell it is, the
metric's value for every seed, and any other columns), never by parsing labels. Everything here is
computed exactly from the t distribution (its CDF through the regularised incomplete beta
function), so no statistics package is needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from egs.core.errors import EGSError


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail probability P(|T| >= |t|) of Student's t with ``df`` degrees of freedom."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t, by bisection on its CDF."""
    lo, hi = 0.0, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1.0 - t_sf2(mid, df) / 2.0 < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with the half-width of its 95 % Student-t interval (NaN for one value)."""

    n: int
    mean: float
    std: float
    half: float

    @property
    def low(self) -> float:
        return self.mean - self.half

    @property
    def high(self) -> float:
        return self.mean + self.half

    def text(self, digits: int = 2) -> str:
        return f"{self.mean:.{digits}f}" + (f" ± {self.half:.{digits}f}" if self.n > 1 else "")

    def overlaps(self, other: Interval) -> bool:
        return not (self.high < other.low or other.high < self.low)


def interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean, sample standard deviation and the ``level`` Student-t half-width of ``values``."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise EGSError("an interval needs at least one value (one per seed).")
    mean = sum(values) / n
    if n == 1:
        return Interval(1, mean, math.nan, math.nan)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(n, mean, std, t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n))


@dataclass(frozen=True)
class Welch:
    """Welch's unequal-variance t-test of two samples: statistic, degrees of freedom, two-sided p."""

    t: float
    df: float
    p: float

    def text(self) -> str:
        return f"Welch t = {self.t:.2f}, df = {self.df:.1f}, p = {self.p:.3g}"


def welch(a: Sequence[float], b: Sequence[float]) -> Welch:
    """Welch's t-test of mean(a) - mean(b) (each sample needs >= 2 values)."""
    ia, ib = interval(a), interval(b)
    if ia.n < 2 or ib.n < 2:
        raise EGSError(f"Welch's test needs at least two values per sample, got {ia.n} and {ib.n}.")
    va, vb = ia.std ** 2 / ia.n, ib.std ** 2 / ib.n
    if va + vb == 0:
        return Welch(math.inf if ia.mean != ib.mean else 0.0, ia.n + ib.n - 2, 0.0 if ia.mean != ib.mean else 1.0)
    t = (ia.mean - ib.mean) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (ia.n - 1) + vb ** 2 / (ib.n - 1))
    return Welch(t, df, t_sf2(t, df))


@dataclass(frozen=True)
class Record:
    """One row of a measured table: a cell's label, its kind (e.g. "egs", "random", "reference",
    "twin"), the metric's value per seed, and other columns (parameters, runs, ...)."""

    label: str
    kind: str
    values: Mapping[int, float]  # seed -> metric value
    columns: Mapping[str, Any] = field(default_factory=dict)

    @property
    def interval(self) -> Interval:
        return interval(list(self.values.values()))


def table_rows(records: Sequence[Record], metric: str, digits: int = 2) -> list[dict[str, Any]]:
    """Rows for :func:`egs.repro.reference.beside_paper`: ``metric`` as mean ± 95 % interval over the seeds,
    the number of seeds, then each record's own columns."""
    return [{"Architecture": r.label, metric: r.interval.text(digits), "seeds": len(r.values), **r.columns}
            for r in records]


def pooled(records: Sequence[Record]) -> list[float]:
    """Every seed's value of several records (e.g. all random cells), for a test against one cell."""
    return [v for r in records for v in r.values.values()]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two paired samples (ties in either counted as neither concordant nor discordant,
    normalised by the tie-corrected pair counts): 1 for the same ranking, -1 for the reverse. O(n^2), exact."""
    if len(a) != len(b) or len(a) < 2:
        raise EGSError(f"Kendall's tau needs two paired samples of at least 2 values, got {len(a)} and {len(b)}.")
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = (a[i] > a[j]) - (a[i] < a[j]), (b[i] > b[j]) - (b[i] < b[j])
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif da == db:
                concordant += 1
            else:
                discordant += 1
    n_a, n_b = concordant + discordant + ties_b, concordant + discordant + ties_a  # pairs untied in a, in b
    return (concordant - discordant) / math.sqrt(n_a * n_b) if n_a and n_b else math.nan
