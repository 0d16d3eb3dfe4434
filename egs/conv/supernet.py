"""The conv search supernet: DARTS's CIFAR-10 search network with EGS-sampled sparse cells (Sec. 3.1-3.3).

:class:`Supernet` adds to :class:`egs.method.supernet.EGSSupernet` (logits, Eq. 3-5, sampling, derivation) the
cells of :mod:`egs.conv.network` and the efficiency credit of :mod:`egs.conv.credits`. Its sparse forward pass runs
only the ops whose code bit is set; :meth:`Supernet.forward_dense` is the DARTS-style dense mixed op (a baseline).
"""
from __future__ import annotations

import torch

from egs.arch.space import ZERO, SearchSpace, get_space
from egs.conv.credits import credit_from_cost, edge_costs
from egs.conv.network import Network
from egs.core.errors import EGSError
from egs.method.supernet import EGSSupernet, active_ops_of


class Supernet(EGSSupernet):
    """The CIFAR-10 search network with EGS-sampled sparse cells (DARTS's search network).

    Args:
        C, num_classes, layers: DARTS's search network sizes (paper: 16, 10, 8).
        M, lam, effectiveness: as :class:`EGSSupernet` (paper: M = 7, lambda = 0.5).
        tau: the starting Gumbel-softmax temperature (the search loop anneals it every epoch).
        cost, credit_beta, image_size: how the efficiency credit ``l`` is computed (:mod:`egs.conv.credits`).
        n_nodes: numbered nodes of a cell, the two inputs included (paper: 6 = 2 inputs + 4 intermediates).
        space: a conv-family search space (default: the paper's, "conv").
    """

    def __init__(self, C: int, num_classes: int, layers: int, M: int, lam: float = 0.5, tau: float = 1.0,
                 cost: str = "flops", credit_beta: float = 1.0, image_size: int = 32, n_nodes: int | None = None,
                 space: SearchSpace | str = "conv", effectiveness: str = "softmax") -> None:
        space = get_space(space)
        if space.family != "conv":
            raise EGSError(f"Supernet builds conv cells; space {space.name!r} is a {space.family} space.")
        net = Network(C, num_classes, layers, genotype=None, n_nodes=n_nodes or space.n_nodes, space=space)
        credits = {kind: credit_from_cost(c, credit_beta) for kind, c in edge_costs(net, cost, image_size).items()}
        super().__init__(space, n_nodes, M, lam, tau, credits, effectiveness)
        self.net = net

    def forward(self, x: torch.Tensor, codes: dict[str, torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Sparse forward pass: only the ops whose code bit is set run.

        Args:
            x: a batch of images (B, 3, H, W).
            codes: binary codes (E, K) per cell type, e.g. from :meth:`sample` (None: sampled here).
            generator: the random generator used when the codes are sampled here.

        Returns:
            The class logits (B, num_classes).
        """
        codes = self.sample(generator) if codes is None else codes
        return self.net(x, weights=codes, active=active_ops_of(codes, self.space), hard=True)

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """DARTS-style dense mixed op: every op on every edge, weighted by softmax(alpha) (baseline).

        ``x`` is a batch of images (B, 3, H, W); returns the class logits (B, num_classes).
        """
        weights = {kind: torch.softmax(a, -1) for kind, a in self.alphas().items()}
        every = [[name for name in self.space.ops if name != ZERO]] * len(self.space.edges(self.n_nodes))
        return self.net(x, weights=weights, active={kind: every for kind in self.space.cell_types})
