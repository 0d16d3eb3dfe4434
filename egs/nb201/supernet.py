"""The NAS-Bench-201 search supernet: the benchmark's skeleton with every op on every edge, one code for all cells.

:class:`NB201Supernet` adds to :class:`egs.method.supernet.EGSSupernet` (logits, Eq. 3-5, sampling, derivation) the
search network of :mod:`egs.nb201.network`. With ``dense=False`` (EGS) a step's code is sampled by ensemble
Gumbel-softmax and only its ops run (sparse execution); with ``dense=True`` (DARTS) the "code" is softmax(alpha)
itself and every op runs, weighted by it: DARTS's mixed op on the same network, so that the two methods differ
only in the relaxation. The space has no efficiency credit (``lam`` = 1 by default: p = h).
"""
from __future__ import annotations

from typing import Mapping

import torch

from egs.arch.space import ZERO
from egs.core.errors import EGSError
from egs.method.supernet import EGSSupernet, active_ops_of
from egs.nb201.network import Network


class NB201Supernet(EGSSupernet):
    """EGS (or, ``dense``, DARTS) over NAS-Bench-201's cell: logits ``alpha_normal`` (E = 6, K = 5).

    Args:
        C, N, num_classes: the skeleton's initial channels, cells per stage and classes (benchmark: 16, 5, 10).
        M, lam, tau, effectiveness: as :class:`egs.method.supernet.EGSSupernet`.
        dense: sample nothing and weight every op by softmax(alpha) (DARTS's relaxation) instead of EGS codes.
    """

    def __init__(self, C: int, N: int, num_classes: int, M: int, lam: float = 1.0, tau: float = 1.0,
                 dense: bool = False, effectiveness: str = "softmax") -> None:
        super().__init__("nb201", None, M, lam, tau, None, effectiveness)
        self.dense = bool(dense)
        self.net = Network(C, N, num_classes, genotype=None)
        self._every = [[op for op in self.space.ops if op != ZERO]] * len(self.space.edges())

    def sample(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """EGS codes (Definition 1), or with ``dense`` the DARTS weights softmax(alpha) (nothing is drawn)."""
        if self.dense:
            return self.effectiveness_credits() if self.lam == 1.0 else self.probabilities()
        return super().sample(generator)

    def forward(self, x: torch.Tensor, codes: Mapping[str, torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Class logits (B, num_classes) of images ``x`` under ``codes`` ({"normal": (E, K)}; None: sampled here).

        In training, a DARTS supernet (``dense``) runs every op weighted by its soft code; otherwise only the ops
        whose bit is set run (EGS's sampled codes, and any derived cell evaluated in eval mode).
        """
        codes = self.sample(generator) if codes is None else codes
        code = codes.get("normal") if isinstance(codes, Mapping) else None
        shape = tuple(self.alpha_normal.shape)
        if not isinstance(code, torch.Tensor) or tuple(code.shape) != shape:
            got = tuple(code.shape) if isinstance(code, torch.Tensor) else type(codes).__name__
            raise EGSError(f"codes must be {{'normal': tensor of shape {shape}}} (one code per edge), got {got}.")
        every = self.dense and self.training
        active = self._every if every else active_ops_of({"normal": code}, self.space)["normal"]
        return self.net(x, weights=code, active=active)
