"""The one registry of network families: what egs runs for the cells of each search-space family.

A family (:attr:`egs.arch.space.SearchSpace.family`) is everything one kind of cell needs besides the method
itself: its base search space, the settings experiments that search it and train its cells, its supernet, its
search loop, its trainer and the counter of its paper-size network. Every place that dispatches on a family (the
command line, the settings' family check, reading a search run back, resolving a genotype by name, the paper-size
parameter count of the tables' baselines) reads this registry and nothing else, so a family is added in one place:
``register_family(Family(...))``.

The entry points (``supernet``, ``search_loop``, ``trainer``, ``paper_params``) are ``"module:attribute"`` strings,
imported when first used (:meth:`Family.load`), or the objects themselves. Strings keep this module light (the
command line's ``--help`` imports no torch) and below the families it names: ``egs.conv`` and ``egs.rnn`` import
nothing from here that imports them back.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from egs.arch.baselines import random_genotype
from egs.arch.genotype import Genotype, load_genotype
from egs.arch.published import PUBLISHED
from egs.arch.space import CONV, NB201, RNN, SearchSpace, get_space, register_space
from egs.core.errors import EGSError

ROLES = ("supernet", "search_loop", "trainer", "paper_params")


@dataclass(frozen=True)
class Family:
    """One network family.

    Fields:
        name: the family's name; its base space (``space``) has the same name and ``family``.
        space: the family's paper search space (the base of spaces declared with :func:`egs.declare_space`).
        search: the settings experiment (:func:`egs.settings`) of its architecture search.
        train: training dataset -> the settings experiment that trains a genotype of the family on it.
        supernet: the EGS supernet class (:class:`egs.method.supernet.EGSSupernet` subclass).
        search_loop: the search loop class (:class:`egs.engine.search.ArchitectureSearch` subclass).
        trainer: ``trainer(cfg, genotype, run_dir, resume=..., progress=...) -> summary``.
        paper_params: ``paper_params(genotype) -> int``, the parameters of the paper-size network of a genotype.
        experiments: settings experiments the family brings besides the built-in table
            (:data:`egs.profiles.table.TABLE`): name -> ``(settings class, {profile: keyword values})``, or a
            ``"module:attribute"`` string naming such a pair; :func:`egs.settings` finds them by name.
        published_suffix: how the published cells of this family are named when another family's cell has the
            same name (``DARTS_V2`` and ``DARTS_V2_RNN``): ``egs train DARTS_V2 --dataset ptb`` means the latter.
    """

    name: str
    space: SearchSpace
    search: str
    train: Mapping[str, str]
    supernet: Any
    search_loop: Any
    trainer: Any
    paper_params: Any
    experiments: Mapping[str, Any] = field(default_factory=dict)
    published_suffix: str = ""
    _loaded: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def experiment(self, name: str) -> tuple[type, Mapping[str, Mapping[str, Any]]]:
        """The ``(settings class, {profile: values})`` of experiment ``name`` of :attr:`experiments` (a string
        names a module's mapping of experiments, e.g. ``"egs.nb201.settings:EXPERIMENTS"``)."""
        target = self.experiments[name]
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module), attribute)[name]
        return target

    def load(self, role: str) -> Any:
        """The object of entry point ``role`` (one of :data:`ROLES`), imported on first use."""
        if role not in ROLES:
            raise EGSError(f"role={role!r} is not a family entry point; use one of {', '.join(ROLES)}.")
        target = getattr(self, role)
        if target is None:
            raise EGSError(f"the {self.name} family has no {role}" + (": its cells are judged by looking them up in "
                           "the benchmark (egs.nb201.benchmark), not trained" if role == "trainer" else "") + ".")
        if not isinstance(target, str):
            return target
        if role not in self._loaded:
            module, _, attribute = target.partition(":")
            self._loaded[role] = getattr(importlib.import_module(module), attribute)
        return self._loaded[role]


_FAMILIES: dict[str, Family] = {}
FAMILIES = MappingProxyType(_FAMILIES)
"""Every registered family by name (read-only view; add one with :func:`register_family`)."""


def register_family(family: Family, replace: bool = False) -> Family:
    """Add ``family`` to the registry (and its base space to the spaces, :func:`egs.arch.space.get_space`)."""
    if not isinstance(family, Family):
        raise EGSError(f"register_family takes a Family, got {type(family).__name__}.")
    if family.space.name != family.name or family.space.family != family.name:
        raise EGSError(f"family {family.name!r} needs a base space of the same name and family, got space "
                       f"{family.space.name!r} of family {family.space.family!r}.")
    if family.name in _FAMILIES and not replace:
        raise EGSError(f"family {family.name!r} is registered already; choose another name (or replace=True).")
    clash = [d for f in _FAMILIES.values() if f.name != family.name for d in f.train if d in family.train]
    if clash:
        raise EGSError(f"datasets {clash} are trained by another family already; name the family's datasets apart.")
    register_space(family.space, replace=replace)
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The registered family called ``name``."""
    if not isinstance(name, str) or name not in _FAMILIES:
        raise EGSError(f"unknown network family {name!r}: use one of {', '.join(_FAMILIES)}, or add yours with "
                       "egs.families.register_family(...).")
    return _FAMILIES[name]


def family_of(space: str | SearchSpace) -> Family:
    """The family whose cells ``space`` (a space or its name) describes."""
    return get_family(get_space(space).family)


def dataset_family(dataset: str) -> Family:
    """The family whose cells are trained on ``dataset``."""
    for f in _FAMILIES.values():
        if dataset in f.train:
            return f
    raise EGSError(f"no family trains on dataset {dataset!r}; use one of {', '.join(training_datasets())}.")


def training_datasets() -> list[str]:
    """Every dataset some family trains on, in registry order."""
    return [d for f in _FAMILIES.values() for d in f.train]


def paper_params(genotype: Genotype) -> int:
    """Parameters of the paper-size network of ``genotype``, counted by its family's counter (conv: the CIFAR-10
    evaluation network, 20 cells, C = 36, no auxiliary head; rnn: the PTB language model, 850 units)."""
    return family_of(genotype.space).load("paper_params")(genotype)


def resolve_genotype(spec: str | Path | Genotype, space: str = "conv", seed: int = 0, M: int | None = None,
                     rule: str = "node") -> Genotype:
    """A genotype of ``space``'s family from a JSON path, a published name (:data:`egs.arch.published.PUBLISHED`:
    ``DARTS_V2``, ``DATA_M7``, ...; a name that another family's cell also has gives this family's, e.g. the
    recurrent DARTS_V2 for an rnn space) or ``random`` (:func:`egs.arch.baselines.random_genotype`: ``rule``
    applied to one draw from uniform p with M draws, the space's paper M by default, seeded by ``seed``)."""
    if isinstance(spec, Genotype):
        return spec
    text, family = str(spec), family_of(space)
    name = text + family.published_suffix
    name = name if family.published_suffix and name in PUBLISHED else text
    if name in PUBLISHED:
        return PUBLISHED[name]
    if text == "random":
        return random_genotype(space, seed, style=rule, M=M)
    if not Path(text).is_file():
        raise EGSError(f"genotype {text!r} is neither a file nor a known name; pass a genotype JSON "
                       f"path, one of {', '.join(PUBLISHED)}, or random.")
    return load_genotype(text)


register_family(Family("conv", CONV, search="search", train={"cifar10": "train_cifar", "imagenet": "train_imagenet"},
                       supernet="egs.conv.supernet:Supernet", search_loop="egs.conv.search:Search",
                       trainer="egs.conv.train:train", paper_params="egs.conv.evalnet:paper_params"))
register_family(Family("rnn", RNN, search="rnn_search", train={"ptb": "lm_train_ptb", "wikitext2": "lm_train_wikitext2"},
                       supernet="egs.rnn.supernet:RNNSupernet", search_loop="egs.rnn.search:RNNSearch",
                       trainer="egs.rnn.train:train_lm", paper_params="egs.rnn.model:paper_params",
                       published_suffix="_RNN"))
# NAS-Bench-201: its cells are judged by the benchmark's table (egs.nb201.benchmark), not trained here
register_family(Family("nb201", NB201, search="nb201_search", train={}, supernet="egs.nb201.supernet:NB201Supernet",
                       search_loop="egs.nb201.search:NB201Search", trainer=None,
                       paper_params="egs.nb201.network:paper_params",
                       experiments={e: "egs.nb201.settings:EXPERIMENTS" for e in ("nb201_search", "nb201_protocol")}))
