"""The three experiment sizes: ``smoke`` (tests), ``cpu`` (a 2-core laptop), ``paper`` (GPUs).

One code path, three sizes: every experiment reads its sizes from here and nothing else differs
between profiles. Each experiment has a frozen dataclass of settings and one instance per profile.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from egs.errors import EGSError

PROFILES = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"


@dataclass(frozen=True)
class SamplingSettings:
    """Notebook 01 (Figure 1, Propositions 2-3): exact distributions checked against Monte Carlo."""

    mc_samples: int  # Monte-Carlo draws per (p, M) for the code distribution
    Ks: tuple[int, ...] = (2, 5, 8)  # numbers of candidate ops in the Proposition tables
    Ms: tuple[int, ...] = tuple(range(1, 10))  # ensemble sizes M = 1..9
    count_samples: int = 0  # Monte-Carlo draws used to count the distinct codes seen (Prop. 3)


_SETTINGS: dict[str, dict[str, Any]] = {
    "sampling": {
        "smoke": SamplingSettings(mc_samples=4_000, count_samples=2_000),
        "cpu": SamplingSettings(mc_samples=200_000, count_samples=100_000),
        "paper": SamplingSettings(mc_samples=1_000_000, count_samples=1_000_000),
    },
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise EGSError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} "
                       "(smoke = tests, cpu = a laptop, paper = the paper's settings on GPUs).")
    return profile


def settings(experiment: str, profile: str = DEFAULT_PROFILE, **overrides: Any) -> Any:
    """The settings of ``experiment`` at ``profile``, with keyword ``overrides`` applied.

    Overrides of ``None`` are ignored, so notebook parameters can default to "use the profile".
    """
    check_profile(profile)
    if experiment not in _SETTINGS:
        raise EGSError(f"unknown experiment {experiment!r}; choose one of {', '.join(_SETTINGS)}.")
    base = _SETTINGS[experiment][profile]
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(base.__dataclass_fields__))
    if unknown:
        raise EGSError(f"unknown setting(s) {', '.join(unknown)} for {experiment!r}; valid: "
                       f"{', '.join(base.__dataclass_fields__)}.")
    return replace(base, **given)
