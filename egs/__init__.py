"""egs: Differentiable Architecture Search with Ensemble Gumbel-Softmax (Chang et al., 2019, arXiv:1905.01786).

The package imports lightly (no torch until you use it); every name below is loaded on first use.

Sampling (Definition 1, Propositions 2-3)
    ensemble_gumbel_softmax, code_distribution, CodeDistribution, inclusion_probability,
    num_possible_codes, empirical_code_distribution
Search spaces and supernets (Sec. 3)
    SearchSpace, declare_space, get_space, Supernet (conv cells), RNNSupernet (recurrent cell),
    EGSSupernet (what both share)
Architectures
    Genotype, CellGenotype, load_genotype, save_genotype, from_darts, from_authors,
    published_genotype (DARTS_V2, DATA_M7, ... by name), random_genotype,
    derive (a search run's genotype under a derivation rule)
Networks and their size
    Network (CIFAR), NetworkImageNet, RNNModel, eval_network, count_parameters, count_macs
Runs (resumable, in a run directory)
    settings, PROFILES, run_search, run_training, rnn_search, train_lm
Drawing
    render_cell, render_genotype
Errors
    EGSError (every mistake of the caller: one clear message naming the value and the fix)
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
    "SearchSpace": "egs.space",
    "declare_space": "egs.space",
    "get_space": "egs.space",
    "Supernet": "egs.supernet",
    "EGSSupernet": "egs.supernet",
    "RNNSupernet": "egs.rnn",
    "Genotype": "egs.genotype",
    "CellGenotype": "egs.genotype",
    "load_genotype": "egs.genotype",
    "save_genotype": "egs.genotype",
    "from_darts": "egs.genotype",
    "random_genotype": "egs.genotype",
    "from_authors": "egs.published",
    "published_genotype": ("egs.published", "published"),
    "derive": "egs.search",
    "run_search": ("egs.search", "search"),
    "run_training": ("egs.train", "train"),
    "rnn_search": "egs.lm",
    "train_lm": "egs.lm",
    "Network": "egs.cnn",
    "NetworkImageNet": "egs.cnn",
    "RNNModel": "egs.rnn",
    "eval_network": "egs.evalnet",
    "count_parameters": "egs.cnn",
    "count_macs": "egs.macs",
    "render_cell": "egs.diagram",
    "render_genotype": "egs.diagram",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:  # (module, attribute); names that are also submodules (search, train) get other names
        module, attribute = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'egs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
