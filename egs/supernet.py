"""The EGS search supernet: architecture logits, probabilities (Eq. 3-5), sampling and derivation.

Each cell type ("normal", "reduce") has logits ``alpha`` of shape (E, K) = (14 edges, 8 ops),
registered parameters saved in the ``state_dict``. Per step the supernet samples one binary code
per edge for each cell type with a single batched ensemble Gumbel-softmax call (Definition 1),
shared by all cells of that type, and runs only the sampled ops (:mod:`egs.cnn`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from egs.cnn import N_NODES, Network, active_ops, cell_edges, codes_to_cell
from egs.credits import credit_from_cost, edge_costs
from egs.errors import EGSError
from egs.genotype import Genotype
from egs.ops import CONV_OPS, ZERO
from egs.checks import check_lam, check_M, check_tau
from egs.sampler import derivation_codes, ensemble_gumbel_softmax, most_probable_code

CELL_TYPES = ("normal", "reduce")


class Supernet(nn.Module):
    """Search network with EGS-sampled sparse cells.

    Args:
        C, num_classes, layers: DARTS's search network sizes (paper: 16, 10, 8).
        M: ensemble size of the sampler (paper: 7 for CIFAR-10, 4 also reported).
        lam: weight of the effectiveness credit in ``p = lam * h + (1 - lam) * l`` (Eq. 5;
            paper 0.5; 1 switches the resource term off).
        cost, credit_beta, image_size: how the efficiency credit ``l`` is computed (:mod:`egs.credits`).
    """

    def __init__(self, C: int, num_classes: int, layers: int, M: int, lam: float = 0.5,
                 tau: float = 1.0, cost: str = "flops", credit_beta: float = 1.0,
                 image_size: int = 32, n_nodes: int = N_NODES) -> None:
        super().__init__()
        self.M, self.tau, self.lam, self.n_nodes = check_M(M), check_tau(tau), check_lam(lam, "lambda"), n_nodes
        self.net = Network(C, num_classes, layers, genotype=None, n_nodes=n_nodes)
        E, K = len(cell_edges(n_nodes)), len(CONV_OPS)
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(E, K))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(E, K))
        for kind, c in edge_costs(self.net, cost, image_size).items():
            self.register_buffer(f"credit_{kind}", credit_from_cost(c, credit_beta).float())

    def alphas(self) -> dict[str, nn.Parameter]:
        return {"normal": self.alpha_normal, "reduce": self.alpha_reduce}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def probabilities(self) -> dict[str, torch.Tensor]:
        """``p = lam * softmax(alpha) + (1 - lam) * l`` per cell type, (E, K) each (Eq. 3-5)."""
        credit = {"normal": self.credit_normal, "reduce": self.credit_reduce}
        return {kind: self.lam * torch.softmax(a, -1) + (1 - self.lam) * credit[kind]
                for kind, a in self.alphas().items()}

    def log_probabilities(self) -> dict[str, torch.Tensor]:
        if self.lam == 1.0:
            return {kind: torch.log_softmax(a, -1) for kind, a in self.alphas().items()}
        return {kind: p.log() for kind, p in self.probabilities().items()}

    def sample(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Straight-through EGS codes (E, K) per cell type: one batched sampler call each."""
        return {kind: ensemble_gumbel_softmax(logp, self.M, self.tau, hard=True, generator=generator)
                for kind, logp in self.log_probabilities().items()}

    def forward(self, x: torch.Tensor, codes: dict[str, torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Sparse forward pass: only the ops whose code bit is set run (codes sampled if None)."""
        codes = self.sample(generator) if codes is None else codes
        return self.net(x, weights=codes, active={kind: active_ops(c) for kind, c in codes.items()})

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """DARTS-style dense mixed op: every op on every edge, weighted by softmax(alpha) (baseline)."""
        weights = {kind: torch.softmax(a, -1) for kind, a in self.alphas().items()}
        every = [[name for name in CONV_OPS if name != ZERO]] * len(cell_edges(self.n_nodes))
        return self.net(x, weights=weights, active={kind: every for kind in CELL_TYPES})

    @torch.no_grad()
    def most_probable_codes(self) -> dict[str, torch.Tensor]:
        """The most probable code of every edge under p (exact, from the code distribution)."""
        return {kind: most_probable_code(p, self.M) for kind, p in self.probabilities().items()}

    @torch.no_grad()
    def derive(self, method: str = "most_probable", generator: torch.Generator | None = None) -> Genotype:
        """The final architecture read from p: its most probable code per edge, or a sampled one."""
        codes = derivation_codes(self, method, generator)
        return Genotype(codes_to_cell(codes["normal"], self.n_nodes), codes_to_cell(codes["reduce"], self.n_nodes))

    @torch.no_grad()
    def expected_active_ops(self) -> dict[str, float]:
        """Expected number of executed (non-zero) ops per edge under p: sum_k 1 - (1 - p_k)^M."""
        out = {}
        for kind, p in self.probabilities().items():
            incl = 1 - (1 - p.double()) ** self.M
            out[kind] = float(incl[:, 1:].sum(-1).mean()) if CONV_OPS[0] == ZERO else float(incl.sum(-1).mean())
        return out

    @torch.no_grad()
    def edge_entropy(self) -> dict[str, list[float]]:
        """Entropy (nats) of p on every edge, per cell type."""
        return {kind: (-(p * p.clamp_min(1e-12).log()).sum(-1)).tolist()
                for kind, p in self.probabilities().items()}
