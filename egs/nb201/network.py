"""NAS-Bench-201's cell and network skeleton (Dong & Yang, ICLR 2020, Sec. 2), for search and for fixed cells.

* :class:`Cell`: node 0 is the cell's input; node j = 1, 2, 3 sums, over every earlier node i, the ops on edge
  (i, j); the cell's output is node 3. With a code (``weights`` (E, K) and the ``active`` op names per edge) only
  the active ops run, each multiplied by its code value (the straight-through EGS code, or DARTS's softmax weight);
  without one, every op the cell holds runs (a fixed cell of a genotype). A node with no active input is zeros.
* :class:`Network`: a 3x3 convolution stem (C channels) with BatchNorm, three stages of N cells at C, 2C and 4C
  channels with a :class:`egs.nb201.ops.ResidualReduction` before the second and third, then BatchNorm, ReLU,
  global average pooling and a linear classifier (benchmark: C = 16, N = 5).

``genotype=None`` builds the search network: every op on every edge, one code shared by all cells (as the
benchmark's weight-sharing searches), its cells' BatchNorms without affine parameters (as the benchmark's search
cells; the reduction blocks and the stem keep theirs). A genotype builds the benchmark's trained network: its ops
only, affine BatchNorms. Both track running statistics.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from egs.arch.genotype import Genotype
from egs.arch.space import NB201, ZERO, Edge
from egs.core.checks import check_int
from egs.core.errors import EGSError
from egs.nb201.ops import ResidualReduction, build_op


class Cell(nn.Module):
    """A NAS-Bench-201 cell holding ``edge_ops[(i, j)]`` (op names) on C channels."""

    def __init__(self, edge_ops: Mapping[Edge, Sequence[str]], C: int, affine: bool) -> None:
        super().__init__()
        self.edges = NB201.edges()
        self.ops = nn.ModuleDict({f"{e}_{name}": build_op(name, C, affine)
                                  for e, edge in enumerate(self.edges) for name in edge_ops.get(edge, ())
                                  if name != ZERO})
        self.held = [[name for name in NB201.ops if f"{e}_{name}" in self.ops] for e in range(len(self.edges))]

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None,
                active: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
        nodes = [x]
        for _, incoming in NB201.node_edges():
            total = None
            for e in incoming:
                source = nodes[self.edges[e][0]]
                for name in (self.held[e] if active is None else active[e]):
                    out = self.ops[f"{e}_{name}"](source)
                    if weights is not None:
                        out = out * weights[e, NB201.ops.index(name)]
                    total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[-1]


def _cell_ops(genotype: Genotype | None) -> dict[Edge, Sequence[str]]:
    if genotype is None:
        return {edge: [op for op in NB201.ops if op != ZERO] for edge in NB201.edges()}
    if not isinstance(genotype, Genotype) or genotype.space != NB201.name:
        space = genotype.space if isinstance(genotype, Genotype) else type(genotype).__name__
        raise EGSError(f"a NAS-Bench-201 network needs a genotype of the nb201 space, got {space}.")
    several = [edge for edge, ops in genotype.normal.edges.items() if len(ops) > 1]
    if several:
        raise EGSError(f"edge {several[0]} holds {len(genotype.normal.edges[several[0]])} ops; a NAS-Bench-201 cell "
                       "has one op per edge (derive it with rule='argmax').")
    return dict(genotype.normal.edges)


class Network(nn.Module):
    """The benchmark's network: stem, 3 stages of ``N`` cells (C, 2C, 4C channels), pooling, classifier."""

    def __init__(self, C: int, N: int, num_classes: int, genotype: Genotype | None = None) -> None:
        super().__init__()
        C, N = check_int(C, "C"), check_int(N, "N", 1, "cells per stage")
        num_classes = check_int(num_classes, "num_classes")
        edge_ops, search = _cell_ops(genotype), genotype is None
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage:
                layers.append(ResidualReduction(width // 2, width))
            layers += [Cell(edge_ops, width, affine=not search) for _ in range(N)]
        self.layers = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(4 * C, num_classes)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None,
                active: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
        """Class logits of images ``x`` (B, 3, H, W); ``weights``/``active`` as :meth:`Cell.forward`."""
        h = self.stem(x)
        for layer in self.layers:
            h = layer(h, weights, active) if isinstance(layer, Cell) else layer(h)
        return self.classifier(self.lastact(h).mean((2, 3)))


def paper_params(genotype: Genotype) -> int:
    """Parameters of the benchmark's network of ``genotype`` (C = 16, N = 5, 10 classes), built on ``meta``."""
    with torch.device("meta"):
        return sum(p.numel() for p in Network(16, 5, 10, genotype).parameters())
