"""The settings of NAS-Bench-201 searches and of notebook 08's protocol, and the experiments the family brings.

Light (no torch): the command line and :func:`egs.profiles.experiments.settings` read these before anything heavy
is imported. The search itself is :mod:`egs.nb201.search`; why each ``cpu`` value: ``docs/settings.md``.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from egs.profiles.experiments import ArchSettings, Settings


@dataclasses.dataclass(frozen=True)
class NB201SearchSettings(ArchSettings):
    """A search on NAS-Bench-201's space. ``paper``: the benchmark authors' DARTS configuration for every method
    (AutoDL-Projects ``configs/nas-benchmark/algos/DARTS.config`` and ``scripts-search/algos/DARTS-V1.sh``:
    C = 16, N = 5 cells per stage, 50 epochs, batch 64, SGD lr 0.025 cosine to 0.001, momentum 0.9, Nesterov,
    weight decay 5e-4; Adam 3e-4 on alpha, betas (0.5, 0.999), weight decay 1e-3; alternating (bilevel) updates).
    """

    family: ClassVar[str | None] = "nb201"
    space: str = "nb201"
    relaxation: str = "egs"  # "egs" (sampled codes) or "darts" (dense softmax mixed op)
    M: int = 4
    lam: float = 1.0  # no efficiency credit on this space: p = h (Eq. 5 with lambda = 1)
    mode: str = "bilevel"
    rule: str = "argmax"
    C: int = 16
    cells: int = 5  # cells per stage (the benchmark's N)
    image_size: int = 32
    train_size: int = 0
    val_size: int = 0
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    channels_last: bool = True
    arch_warmup: int = 0  # epochs of weight training (architectures sampled from p) before alpha is updated


@dataclasses.dataclass(frozen=True)
class NB201ProtocolSettings(Settings):
    """Notebook 08's protocol: the EGS ensemble sizes searched (``Ms``) with ``search_seeds`` each; the best M (by
    the mean ``cifar10_valid`` of its cells, never a test column) searched again until it has ``best_seeds``;
    DARTS with ``darts_seeds``; ``ranking_cells`` cells drawn from the deciles for the supernets' Kendall tau."""

    Ms: tuple[int, ...] = (1, 2, 3, 4, 5)
    search_seeds: tuple[int, ...] = (0, 1, 2)
    best_seeds: tuple[int, ...] = (0, 1, 2, 3)
    darts_seeds: tuple[int, ...] = (0, 1, 2, 3)
    ranking_cells: int = 100



_SMOKE = dict(epochs=2, batch_size=8, C=4, cells=1, image_size=8, train_size=48, val_size=32, log_every=2,
              select_batches=2)
_CPU = dict(epochs=8, batch_size=64, C=8, cells=1, image_size=16, train_size=5000, val_size=2000, log_every=25,
            arch_lr=3e-3, arch_weight_decay=0.0, arch_warmup=3)  # setting W of studies/nb201.py (docs/settings.md)
EXPERIMENTS = {
    # one configuration for every method at each profile: EGS at any M and DARTS differ only in `relaxation`
    "nb201_search": (NB201SearchSettings, {"smoke": _SMOKE, "cpu": _CPU, "paper": {}}),
    "nb201_protocol": (NB201ProtocolSettings, {
        "smoke": dict(Ms=(1, 2), search_seeds=(0,), best_seeds=(0, 1), darts_seeds=(0,), ranking_cells=10),
        "cpu": dict(Ms=(1, 2, 4), search_seeds=(0, 1), best_seeds=(0, 1, 2, 3), darts_seeds=(0, 1, 2, 3),
                    ranking_cells=64),
        "paper": {}}),
}
"""The experiments the NAS-Bench-201 family brings (:attr:`egs.families.Family.experiments`); why: docs/settings.md."""
