"""egs: Differentiable Architecture Search with Ensemble Gumbel-Softmax (Chang et al., 2019).

The package imports lightly; the public API below is loaded on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "EGSError": "egs.errors",
    "ensemble_gumbel_softmax": "egs.sampler",
    "code_distribution": "egs.sampler",
    "CodeDistribution": "egs.sampler",
    "inclusion_probability": "egs.sampler",
    "num_possible_codes": "egs.sampler",
    "empirical_code_distribution": "egs.sampler",
    "settings": "egs.profiles",
    "PROFILES": "egs.profiles",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'egs' has no attribute {name!r}")
