"""Baseline cells for the tables: parameter-free twins and random cells matched in size.

* :func:`twin`: the same connections with every op replaced by one op, e.g. DARTS_V2 with every op
  ``max_pool_3x3`` (nothing to learn in its cells: a known-bad conv cell) or DARTS_V2's recurrent
  cell with every activation ``identity``. A protocol that cannot tell a cell from its twin cannot
  judge a search.
* :func:`matched_random`: a random cell of the derivation rule a search used (one draw from uniform
  p, :func:`egs.genotype.random_genotype`) whose paper-size parameter count lies within a tolerance
  of a reference cell's, so that a comparison is not a comparison of sizes; the seed that produced it
  is recorded in its provenance.
"""
from __future__ import annotations

from typing import Callable

import torch

from egs.checks import check_int, check_real
from egs.genotype import CellGenotype, Genotype, random_genotype
from egs.space import check_op

PAPER_CIFAR = {"C": 36, "layers": 20}  # the paper's CIFAR-10 evaluation network (Sec. 4.1.2)


def twin(genotype: Genotype, op: str, name: str | None = None) -> Genotype:
    """``genotype`` with every op of every edge replaced by ``op`` (same edges, one op each)."""
    check_op(op, genotype.space)
    cells = [CellGenotype(c.space, c.n_nodes, {e: [op] for e in c.edges}, c.concat) for c in genotype.cells().values()]
    source = (genotype.provenance or {}).get("name", "genotype")
    return Genotype(*cells, provenance={"name": name or f"{source} ({op} twin)", "source": f"{source} with every op {op}"})


def paper_params(genotype: Genotype) -> int:
    """Parameters of the paper-size evaluation network of a conv genotype (20 cells, C = 36, no auxiliary
    head) or of a recurrent genotype's PTB language model (embedding = hidden = 850), built on ``meta``."""
    from egs.cnn import Network, count_parameters
    from egs.space import get_space
    with torch.device("meta"):
        if get_space(genotype.space).family == "conv":
            return count_parameters(Network(PAPER_CIFAR["C"], 10, PAPER_CIFAR["layers"], genotype))
        from egs.rnn import RNNModel
        return count_parameters(RNNModel(10_000, 850, 850, genotype))


def matched_random(reference: Genotype, rule: str, M: int, first_seed: int = 0, tolerance: float = 0.15,
                   tries: int = 200, size: Callable[[Genotype], int] = paper_params) -> Genotype:
    """The first random cell (seeds ``first_seed``, ``first_seed + 1``, ...) of ``rule`` with M draws whose
    ``size`` is within ``tolerance`` (relative) of ``reference``'s. If none of ``tries`` seeds is, the
    closest one, with ``matched: False`` in its provenance (e.g. a reference cell with no op at all, whose
    size no random cell of M draws reaches). The provenance records the seed and both sizes."""
    check_int(tries, "tries")
    check_real(tolerance, "tolerance", 0.0, low_open=True)
    target, best = size(reference), None
    for seed in range(first_seed, first_seed + tries):
        g = random_genotype(reference.space, seed, n_nodes=reference.normal.n_nodes, style=rule, M=M)
        gap = abs(size(g) - target) / target
        if best is None or gap < best[0]:
            best = (gap, g)
        if gap <= tolerance:
            break
    gap, g = best
    return g.with_provenance(matched_to=target, params=size(g), tolerance=tolerance, matched=gap <= tolerance)
