"""Convolutional cells and networks (Chang et al., 2019, Sec. 3.1, Eq. 1-2; DARTS's macro structure).

One code path serves every conv network of the project:

* the **search supernet** (every op of ``CONV_OPS`` instantiated on every edge; which ones run is
  decided per forward pass by the sampled binary codes), and
* the **fixed network** built from a :class:`~egs.genotype.Genotype` (only the genotype's ops exist):
  the evaluation network, and the "fixed child" a sampled code describes.

A cell has two input nodes (outputs of cells k-2 and k-1, each preprocessed to C channels),
``n_nodes - 2`` intermediate nodes and an output that concatenates ``concat`` along channels.
Node j is ``x_j = sum_{i<j} sum_k a_k(i, j) * o_k(x_i) / n(i, j)`` (Eq. 1-2, with the edge
normalised by its number of active non-zero ops n(i, j)): **only ops whose code bit is set are
executed**; each output is multiplied by its code value (exactly 1 in the forward pass of the
straight-through estimator) so that the architecture logits receive gradients.

Decision (normalisation): Eq. 1-2 sum the active ops. With M = 7 about four ops are active per edge
and a node sums up to 20 of them, which made our CPU search diverge (training loss rising past 13
within 125 steps, measured). We therefore average the active ops of an edge, as the authors'
released code (DATA-NAS) does; an edge with one op, e.g. any DARTS genotype, is unchanged, so
parameter counts and DARTS equivalence are unaffected.

Decision (the paper is silent): a node that receives no active op is the zero tensor, and ops on
edges leaving a zero node are not executed (their input is zero). The output concat still has its
channels (zeros), so a network's shape never depends on the sampled code.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn as nn

from egs.errors import EGSError
from egs.genotype import CellGenotype, Edge, Genotype
from egs.ops import CONV_OPS, ZERO, FactorizedReduce, Identity, ReLUConvBN, make_conv_op

N_NODES = 6  # two inputs + four intermediate nodes (the paper's n = 7 also counts the output)
OP_INDEX = {name: k for k, name in enumerate(CONV_OPS)}


def cell_edges(n_nodes: int = N_NODES) -> list[Edge]:
    """All edges (i, j) of a conv cell in the canonical order (by target j, then source i)."""
    return [(i, j) for j in range(2, n_nodes) for i in range(j)]


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (DARTS drop-path)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class Cell(nn.Module):
    """One conv cell whose edge ``(i, j)`` holds the ops ``edge_ops[(i, j)]`` ("none" is skipped)."""

    def __init__(self, edge_ops: Mapping[Edge, Sequence[str]], concat: Sequence[int], C_pp: int,
                 C_p: int, C: int, reduction: bool, reduction_prev: bool, affine: bool,
                 search: bool, n_nodes: int = N_NODES) -> None:
        super().__init__()
        self.reduction, self.n_nodes, self.concat = reduction, n_nodes, tuple(concat)
        self.pre0 = (FactorizedReduce(C_pp, C, affine) if reduction_prev
                     else ReLUConvBN(C_pp, C, 1, 1, 0, affine))
        self.pre1 = ReLUConvBN(C_p, C, 1, 1, 0, affine)
        self.edges = cell_edges(n_nodes)
        self.ops = nn.ModuleList(
            nn.ModuleDict({name: make_conv_op(name, C, 2 if reduction and i < 2 else 1, affine, search)
                           for name in edge_ops.get((i, j), ()) if name != ZERO})
            for i, j in self.edges)
        self.C = C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor | None = None,
                active: Sequence[Sequence[str]] | None = None, drop_prob: float = 0.0) -> torch.Tensor:
        """Compute the cell.

        Args:
            weights: (E, K) code values multiplying each op's output (None: unweighted, fixed net).
            active: per edge, the names of the ops to execute (None: every op the edge holds).
            drop_prob: drop-path probability for non-identity ops (training only).
        """
        states: list[torch.Tensor | None] = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for j in range(2, self.n_nodes):
            node = None
            for i in range(j):
                x, ops = states[i], self.ops[e]
                names = list(ops.keys() if active is None else active[e]) if x is not None else []
                edge = None
                for name in names:
                    op = ops[name]
                    out = op(x)
                    if weights is not None:
                        out = out * weights[e, OP_INDEX[name]]
                    if drop_prob > 0 and self.training and not isinstance(op, Identity):
                        out = drop_path(out, drop_prob)
                    edge = out if edge is None else edge + out
                if edge is not None:
                    edge = edge / len(names) if len(names) > 1 else edge
                    node = edge if node is None else node + edge
                e += 1
            states.append(node)
        ref = states[1]
        N, _, H, W = ref.shape
        if self.reduction:
            H, W = -(-H // 2), -(-W // 2)
        zeros = None
        outs = []
        for c in self.concat:
            if states[c] is None:
                zeros = ref.new_zeros(N, self.C, H, W) if zeros is None else zeros
            outs.append(states[c] if states[c] is not None else zeros)
        return torch.cat(outs, dim=1)


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: at 1/3 and 2/3 of the depth (DARTS)."""
    return (layers // 3, 2 * layers // 3)


class Network(nn.Module):
    """Stem, ``layers`` cells (channels doubled at each reduction), global pooling, classifier.

    ``genotype=None`` builds the search supernet (every op on every edge, BN without affine, BN
    after pooling, as in DARTS's search network); a genotype builds the fixed network of its ops.
    """

    def __init__(self, C: int, num_classes: int, layers: int, genotype: Genotype | None = None,
                 stem_multiplier: int = 3, affine: bool | None = None, n_nodes: int = N_NODES) -> None:
        super().__init__()
        if layers < 3:
            raise EGSError(f"layers={layers} is too shallow: a conv network needs >= 3 cells "
                           "(two of them are reduction cells).")
        if genotype is not None and genotype.space != "conv":
            raise EGSError(f"a conv network needs a conv genotype, got space {genotype.space!r}.")
        self.search = genotype is None
        affine = (not self.search) if affine is None else affine
        full = {e: CONV_OPS for e in cell_edges(n_nodes)}
        cells = {"normal": (full, tuple(range(2, n_nodes))), "reduce": (full, tuple(range(2, n_nodes)))}
        if genotype is not None:
            for kind, cell in genotype.cells().items():
                if cell.n_nodes != n_nodes:
                    raise EGSError(f"the {kind} cell has {cell.n_nodes} nodes, the network expects {n_nodes}.")
                cells[kind] = (dict(cell.edges), cell.concat)
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for layer in range(layers):
            reduction = layer in reduction_layers(layers)
            C_curr = C_curr * 2 if reduction else C_curr
            edge_ops, concat = cells["reduce" if reduction else "normal"]
            cell = Cell(edge_ops, concat, C_pp, C_p, C_curr, reduction, reduction_prev, affine,
                        self.search, n_nodes)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, len(concat) * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        self.drop_prob = 0.0

    def forward(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor] | None = None,
                active: Mapping[str, Sequence[Sequence[str]]] | None = None) -> torch.Tensor:
        """Logits for images ``x``; ``weights``/``active`` per cell type ("normal", "reduce")."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, None if weights is None else weights[kind],
                              None if active is None else active[kind], self.drop_prob)
        return self.classifier(self.global_pooling(s1).flatten(1))


def active_ops(codes: torch.Tensor) -> list[list[str]]:
    """Names of the non-zero ops whose bit is set, per edge, from (E, K) codes (one host sync)."""
    bits = (codes.detach() > 0.5).cpu().tolist()
    return [[CONV_OPS[k] for k, on in enumerate(row) if on and CONV_OPS[k] != ZERO] for row in bits]


def codes_to_cell(codes: torch.Tensor, n_nodes: int = N_NODES) -> CellGenotype:
    """The conv cell genotype that binary codes (E, K) describe (all intermediates concatenated)."""
    edges = cell_edges(n_nodes)
    if codes.shape != (len(edges), len(CONV_OPS)):
        raise EGSError(f"codes of shape {tuple(codes.shape)} do not fit a {n_nodes}-node conv cell; "
                       f"expected ({len(edges)}, {len(CONV_OPS)}).")
    return CellGenotype("conv", n_nodes, dict(zip(edges, active_ops(codes))), tuple(range(2, n_nodes)))


def count_parameters(module: nn.Module, exclude: Sequence[str] = ()) -> int:
    """Number of parameters of ``module``, leaving out those whose name starts with ``exclude``."""
    return sum(p.numel() for name, p in module.named_parameters()
               if not any(name.startswith(prefix) for prefix in exclude))
