"""The architecture half every EGS search supernet shares, whatever its network family.

:class:`EGSSupernet` holds, for each cell type of its search space (:mod:`egs.arch.space`), logits
``alpha`` of shape (E, K), registered parameters saved in the ``state_dict``, and the efficiency
credit ``l`` as a buffer. From them it computes the probabilities of Eq. 3-5, samples one binary
code per edge with a single batched ensemble Gumbel-softmax call per cell type (Definition 1),
derives the final architecture with any rule of :mod:`egs.method.derivation`, and turns codes into
genotypes. The conv :class:`egs.conv.supernet.Supernet` and the recurrent :class:`egs.rnn.supernet.RNNSupernet`
add only their networks and forward passes.

The effectiveness credit ``h`` comes from ``alpha`` by ``softmax`` (DARTS) or, as in the authors'
released code, by ``relu`` normalisation ``h = relu(alpha) / sum relu(alpha)`` (logits then start
at 1 + noise, the authors' initialisation, so that no op starts at zero probability).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from egs.core.checks import check_choice, check_lam, check_M, check_tau
from egs.method.derivation import argmax_codes, check_rule, edge_codes, node_codes, select
from egs.core.errors import EGSError
from egs.arch.genotype import CellGenotype, Genotype
from egs.method.sampler import ensemble_gumbel_softmax
from egs.arch.space import ZERO, SearchSpace, check_n_nodes, get_space
from egs.method.options import EFFECTIVENESS

_TINY = 1e-12  # floor of p before its log: a relu credit can make p exactly zero


def active_ops(codes: torch.Tensor, space: SearchSpace) -> list[list[str]]:
    """Names of the non-zero ops whose bit is set, per edge, from (E, K) codes (one host sync)."""
    bits = (codes.detach() > 0.5).cpu().tolist()
    return [[space.ops[k] for k, on in enumerate(row) if on and space.ops[k] != ZERO] for row in bits]


def active_ops_of(codes: Mapping[str, torch.Tensor], space: SearchSpace) -> dict[str, list[list[str]]]:
    """:func:`active_ops` of every cell type's codes, read to the host together (one sync for all)."""
    kinds = list(codes)
    bits = (torch.stack([codes[k].detach() for k in kinds]) > 0.5).cpu().tolist()
    return {kind: [[space.ops[k] for k, on in enumerate(row) if on and space.ops[k] != ZERO] for row in rows]
            for kind, rows in zip(kinds, bits)}


def codes_to_cell(codes: torch.Tensor, space: SearchSpace | str, n_nodes: int) -> CellGenotype:
    """The cell genotype that binary codes (E, K) describe (the output combines every intermediate node)."""
    space = get_space(space)
    edges = space.edges(n_nodes)
    if tuple(codes.shape) != (len(edges), space.K):
        raise EGSError(f"codes of shape {tuple(codes.shape)} do not fit a {n_nodes}-node {space.name} cell; "
                       f"expected ({len(edges)}, {space.K}).")
    return CellGenotype(space.name, n_nodes, dict(zip(edges, active_ops(codes, space))), space.concat(n_nodes))


class EGSSupernet(nn.Module):
    """Architecture logits, probabilities (Eq. 3-5), sampling (Definition 1) and derivation of a space.

    Args:
        space: the search space (name or :class:`egs.arch.space.SearchSpace`).
        n_nodes: numbered nodes of its cells, the inputs included (None: the space's; conv: 6 = 2 inputs
            + 4 intermediates, recurrent: 9).
        M: ensemble size of the sampler (paper: 7 for CIFAR-10, 4 for PTB).
        lam: weight of the effectiveness credit in ``p = lam * h + (1 - lam) * l`` (Eq. 5).
        tau: temperature of each Gumbel-softmax draw (Eq. 7: towards one-hot as tau -> 0; the search loop
            anneals it every epoch).
        credits: the efficiency credit ``l`` per cell type, (E, K) rows summing to 1 (None: uniform).
        effectiveness: how ``alpha`` becomes ``h``: "softmax" or "relu" (module docstring).
    """

    def __init__(self, space: SearchSpace | str, n_nodes: int | None, M: int, lam: float, tau: float,
                 credits: Mapping[str, torch.Tensor] | None = None, effectiveness: str = "softmax") -> None:
        super().__init__()
        self.space = get_space(space)
        self.n_nodes = self.space.n_nodes if n_nodes is None else check_n_nodes(n_nodes, self.space)
        self.M, self.tau, self.lam = check_M(M), check_tau(tau), check_lam(lam, "lambda")
        self.effectiveness = check_choice(effectiveness, "effectiveness", EFFECTIVENESS)
        E, K = len(self.space.edges(self.n_nodes)), self.space.K
        for kind in self.space.cell_types:
            start = 1.0 if self.effectiveness == "relu" else 0.0  # the authors' relu logits start at 1
            self.register_parameter(f"alpha_{kind}", nn.Parameter(start + 1e-3 * torch.randn(E, K)))
            credit = None if credits is None else credits[kind]
            self.register_buffer(f"credit_{kind}", _check_credit(credit, E, K))

    # ------------------------------------------------------------------ parameters and probabilities
    def alphas(self) -> dict[str, nn.Parameter]:
        """The logits alpha (E, K) per cell type."""
        return {kind: getattr(self, f"alpha_{kind}") for kind in self.space.cell_types}

    def credits(self) -> dict[str, torch.Tensor]:
        """The efficiency credit l (E, K) per cell type (Eq. 5)."""
        return {kind: getattr(self, f"credit_{kind}") for kind in self.space.cell_types}

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture logits (what the architecture optimiser updates)."""
        return list(self.alphas().values())

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the logits (what the weight optimiser updates)."""
        arch = {id(a) for a in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def effectiveness_credits(self) -> dict[str, torch.Tensor]:
        """``h`` per cell type: softmax(alpha), or relu(alpha) normalised per edge."""
        if self.effectiveness == "softmax":
            return {kind: torch.softmax(a, -1) for kind, a in self.alphas().items()}
        return {kind: (r := F.relu(a)) / r.sum(-1, keepdim=True).clamp_min(_TINY) for kind, a in self.alphas().items()}

    def probabilities(self) -> dict[str, torch.Tensor]:
        """``p = lam * h + (1 - lam) * l`` per cell type, (E, K) each (Eq. 3-5)."""
        credit = self.credits()
        return {kind: self.lam * h + (1 - self.lam) * credit[kind] for kind, h in self.effectiveness_credits().items()}

    def log_probabilities(self) -> dict[str, torch.Tensor]:
        """log p per cell type, the sampler's logits (exact log-softmax when lambda = 1 with softmax credits)."""
        if self.lam == 1.0 and self.effectiveness == "softmax":
            return {kind: torch.log_softmax(a, -1) for kind, a in self.alphas().items()}
        return {kind: p.clamp_min(_TINY).log() for kind, p in self.probabilities().items()}

    # ------------------------------------------------------------------ sampling and derivation
    def sample(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Straight-through EGS codes (E, K) per cell type: one batched sampler call each (Definition 1).

        Args:
            generator: the random generator of the Gumbel noise (None: torch's global one).
        """
        return {kind: ensemble_gumbel_softmax(logp, self.M, self.tau, hard=True, generator=generator,
                                              check_finite=False)  # the loops check alpha once an epoch
                for kind, logp in self.log_probabilities().items()}

    @torch.no_grad()
    def derivation_codes(self, rule: str = "node", generator: torch.Generator | None = None,
                         score: Callable[[dict[str, torch.Tensor]], float] | None = None,
                         candidates: int = 8) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        """The codes of the final architecture under ``rule``, and for ``select`` every candidate's record.

        Args:
            rule: "node" (top-M per node), "edge" (top-M per edge), "argmax" (one op per edge) or "select"
                (:mod:`egs.method.derivation`).
            generator: the random generator of the candidates ``select`` samples (None: torch's global one).
            score: ``select`` only (required there): a candidate's codes (E, K) per cell type -> its score,
                higher is better (e.g. search-val accuracy with the shared weights).
            candidates: ``select`` only: how many sampled architectures it scores.

        Returns:
            The codes (E, K) per cell type, and the candidates' records (empty unless ``select``).
        """
        rule = check_rule(rule)
        p = self.probabilities()
        if rule == "node":
            return {k: node_codes(v, self.space, self.n_nodes, self.M) for k, v in p.items()}, []
        if rule == "edge":
            return {k: edge_codes(v, self.M) for k, v in p.items()}, []
        if rule == "argmax":
            return {k: argmax_codes(v) for k, v in p.items()}, []
        if score is None:
            raise EGSError("rule='select' scores candidates on search-val batches with the shared weights; derive "
                           "it from a search run (egs derive RUN --rule select) or pass score=.")
        best, records = select(lambda: {k: c.detach() for k, c in self.sample(generator).items()}, score, candidates)
        return records[best]["codes"], records

    def derive(self, rule: str = "node", generator: torch.Generator | None = None,
               score: Callable[[dict[str, torch.Tensor]], float] | None = None, candidates: int = 8) -> Genotype:
        """The final architecture under ``rule`` ("node", "select", "edge" or "argmax"), as a genotype.

        ``generator``, ``score`` and ``candidates`` are those of :meth:`derivation_codes` (``select`` only).
        """
        return self.codes_to_genotype(self.derivation_codes(rule, generator, score, candidates)[0])

    def genotype_codes(self, genotype: Genotype) -> dict[str, torch.Tensor]:
        """The binary codes (one (E, K) tensor per cell type, on the logits' device) of ``genotype``."""
        edges = {e: k for k, e in enumerate(self.space.edges(self.n_nodes))}
        out = {}
        for kind, cell in genotype.cells().items():
            if cell.space != self.space.name or cell.n_nodes != self.n_nodes:
                raise EGSError(f"the {kind} cell is a {cell.n_nodes}-node {cell.space} cell; this supernet searches "
                               f"{self.n_nodes}-node {self.space.name} cells.")
            codes = torch.zeros(len(edges), self.space.K)
            for edge, ops in cell.edges.items():
                codes[edges[edge], [self.space.ops.index(op) for op in ops]] = 1.0
            out[kind] = codes.to(self.alphas()[kind].device)
        return out

    def codes_to_genotype(self, codes: Mapping[str, torch.Tensor]) -> Genotype:
        """The genotype that binary codes (one (E, K) tensor per cell type) describe."""
        return Genotype(*(codes_to_cell(codes[kind], self.space, self.n_nodes) for kind in self.space.cell_types))

    # ------------------------------------------------------------------ diagnostics and regulariser
    @torch.no_grad()
    def expected_active_ops(self) -> dict[str, float]:
        """Expected number of executed (non-zero) ops per edge under p: sum_k 1 - (1 - p_k)^M."""
        zero = self.space.ops.index(ZERO)
        return {kind: float(torch.cat([incl[:, :zero], incl[:, zero + 1:]], 1).sum(-1).mean())
                for kind, p in self.probabilities().items() for incl in [1 - (1 - p.double()) ** self.M]}

    @torch.no_grad()
    def edge_entropy(self, of: str = "p") -> dict[str, list[float]]:
        """Entropy (nats) per edge of p (``of="p"``) or of the effectiveness credit h (``of="h"``)."""
        dists = self.probabilities() if of == "p" else self.effectiveness_credits()
        return {kind: (-(d * d.clamp_min(1e-12).log()).sum(-1)).tolist() for kind, d in dists.items()}

    def arch_regularizer(self, codes: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The authors' architecture regulariser, ``sum over cell types of mean |h - c / sum c|``.

        ``codes`` holds ``c``, the code (E, K) sampled for this step, per cell type; ``sum c`` counts its
        active entries per edge, "none" included, as the authors' code does (``model_search_relu.py``: the
        sampled code divided by its sum); ``h`` is the effectiveness credit. The caller weights it (authors: 0.1)
        and adds its gradient to the architecture update only.
        """
        h = self.effectiveness_credits()
        return sum((h[k] - (c := codes[k].detach()) / c.sum(-1, keepdim=True).clamp_min(1.0)).abs().mean()
                   for k in self.space.cell_types)


def _check_credit(credit: object, E: int, K: int) -> torch.Tensor:
    """An efficiency credit (E, K) or (K,) as float (E, K) rows summing to 1; None is uniform."""
    if credit is None:
        return torch.full((E, K), 1.0 / K)
    if not isinstance(credit, torch.Tensor) or tuple(credit.shape) not in ((E, K), (K,)):
        shape = tuple(credit.shape) if isinstance(credit, torch.Tensor) else type(credit).__name__
        raise EGSError(f"credit must be a tensor of shape ({E}, {K}) or ({K},), got {shape}.")
    c = credit.detach().float().expand(E, K).clone()
    sums_to_one = bool(((c.sum(-1) - 1).abs() < 1e-5).all())
    if not bool(torch.isfinite(c).all()) or bool((c < 0).any()) or not sums_to_one:
        raise EGSError("credit rows must be finite, non-negative and sum to 1 (a distribution over the space's ops).")
    return c
