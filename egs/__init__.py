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
__version__ = "0.1.0"

_API = {
    "EGSError": "egs.core.errors",
    "ensemble_gumbel_softmax": "egs.method.sampler",
    "code_distribution": "egs.method.sampler",
    "CodeDistribution": "egs.method.sampler",
    "inclusion_probability": "egs.method.sampler",
    "num_possible_codes": "egs.method.sampler",
    "empirical_code_distribution": "egs.method.sampler",
    "settings": "egs.profiles.experiments",
    "PROFILES": "egs.profiles.fields",
    "SearchSpace": "egs.arch.space",
    "declare_space": "egs.arch.space",
    "get_space": "egs.arch.space",
    "Supernet": "egs.conv.supernet",
    "EGSSupernet": "egs.method.supernet",
    "RNNSupernet": "egs.rnn.supernet",
    "Genotype": "egs.arch.genotype",
    "CellGenotype": "egs.arch.genotype",
    "load_genotype": "egs.arch.genotype",
    "save_genotype": "egs.arch.genotype",
    "from_darts": "egs.arch.formats",
    "random_genotype": "egs.arch.baselines",
    "from_authors": "egs.arch.formats",
    "published_genotype": ("egs.arch.published", "published"),
    "derive": "egs.engine.runs",
    "run_search": ("egs.conv.search", "search"),
    "run_training": ("egs.conv.train", "train"),
    "rnn_search": "egs.rnn.search",
    "train_lm": "egs.rnn.train",
    "Network": "egs.conv.network",
    "NetworkImageNet": "egs.conv.network",
    "RNNModel": "egs.rnn.model",
    "eval_network": "egs.conv.evalnet",
    "count_parameters": "egs.conv.network",
    "count_macs": "egs.conv.macs",
    "render_cell": "egs.arch.diagram",
    "render_genotype": "egs.arch.diagram",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    """Load a public name on first use (``egs.X`` imports only the module that defines ``X``)."""
    if name in _API:  # (module, attribute); names that are also submodules (search, train) get other names
        from importlib import import_module
        module, attribute = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
        return getattr(import_module(module), attribute)
    raise AttributeError(f"module 'egs' has no attribute {name!r}")


def __dir__() -> list:
    """The public API only (not the subpackages or this module's own helpers)."""
    return sorted([*__all__, "__version__"])


def _guard_reproduction() -> None:
    """In a notebook kernel that ``egs reproduce`` started, hold its kernel lock (:mod:`egs.repro.guard`)."""
    from os import environ
    if "EGS_REPRODUCTION_KERNELS" in environ:
        from egs.repro.guard import hold_kernel_lock
        hold_kernel_lock()


_guard_reproduction()
