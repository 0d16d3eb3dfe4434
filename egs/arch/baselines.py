"""Baseline cells: random architectures (the random-search baseline), parameter-free twins, random cells matched in size.

* :func:`random_genotype`: a derivation rule applied to one draw from uniform p (what EGS samples at alpha = 0).
* :func:`twin`: the same connections with every op replaced by one op, e.g. DARTS_V2 with every op
  ``max_pool_3x3`` (nothing to learn in its cells: a known-bad conv cell) or DARTS_V2's recurrent
  cell with every activation ``identity``. A protocol that cannot tell a cell from its twin cannot
  judge a search.
* :func:`matched_random`: a random cell of the derivation rule a search used whose ``size`` (e.g. the paper-size
  parameter count, :func:`egs.families.paper_params`) lies within a tolerance of a reference cell's, so that a
  comparison is not a comparison of sizes; the seed that produced it is recorded in its provenance.
* :func:`op_matched_random`: a random cell with exactly as many distinct (edge, op) picks into every node as a
  reference (searched) cell, so that a comparison is not one of density: the node rule's random cells have about
  twice the ops of a searched one.
"""
from __future__ import annotations

import random
from typing import Callable

from egs.arch.genotype import CellGenotype, Genotype
from egs.arch.space import ZERO, Edge, SearchSpace, check_n_nodes, check_op, get_space
from egs.core.checks import check_int, check_real
from egs.core.errors import EGSError


RANDOM_STYLES = ("node", "edge", "select", "darts")


def _random_cell(space: SearchSpace, n_nodes: int, rng: random.Random, style: str, M: int) -> CellGenotype:
    ops, K = space.ops, space.K
    edges: dict[Edge, set[str]] = {}
    for j in range(space.n_inputs, n_nodes):
        if style in ("edge", "select"):  # M uniform draws over the K ops of every edge
            for i in range(j):
                edges[(i, j)] = {rng.choice(ops) for _ in range(M)}
        elif style == "node":  # M uniform draws over the node's pooled (edge, op) entries, "none" merged
            entries = [None] + [(i, op) for i in range(j) for op in ops if op != ZERO]
            weights = [1.0 / K] + [1.0 / (K * j)] * (len(entries) - 1)
            for entry in rng.choices(entries, weights=weights, k=M):
                if entry is not None:
                    edges.setdefault((entry[0], j), set()).add(entry[1])
        else:
            for i in rng.sample(range(j), min(j, space.darts_inputs)):
                edges[(i, j)] = {rng.choice([op for op in ops if op != ZERO])}
    return CellGenotype(space.name, n_nodes, edges, range(space.n_inputs, n_nodes))


def random_genotype(space: str | SearchSpace, rng: random.Random | int, n_nodes: int | None = None,
                    style: str = "node", M: int | None = None) -> Genotype:
    """A random architecture of ``space`` for the random-search baseline: a derivation rule applied to
    one draw from uniform p (what EGS samples at alpha = 0, Definition 1).

    ``n_nodes`` defaults to the space's paper cell size. style="node": each intermediate node keeps the (incoming edge, op) pairs hit by M uniform draws
    over its pooled entries, "none" merged (the ``node`` rule's sampling); "edge" (or "select"): every
    edge's code is the set of ops hit by M uniform draws over all K ops, zero included; "darts": every
    intermediate node takes one uniformly drawn non-zero op from each of 2 (conv) or 1 (rnn) distinct
    uniformly drawn predecessors, as in DARTS's random baseline. M defaults to the space's paper M.
    ``rng`` is a random.Random or an integer seed; the same seed gives the same genotype, whose
    provenance records how it was drawn.
    """
    space = get_space(space)
    if style not in RANDOM_STYLES:
        raise EGSError(f"style={style!r} is unknown: use one of {', '.join(RANDOM_STYLES)} (a derivation rule, "
                       "or darts: one op on each of a fixed number of input edges).")
    M = space.paper_M if M is None else check_int(M, "M", 1, "the number of draws per node or edge")
    n_nodes = space.n_nodes if n_nodes is None else check_n_nodes(n_nodes, space)
    seed = rng if not isinstance(rng, random.Random) else None
    if not isinstance(rng, random.Random):
        rng = random.Random(check_int(rng, "seed", None))
    cells = [_random_cell(space, n_nodes, rng, style, M) for _ in space.cell_types]
    return Genotype(*cells, provenance={"space": space.name, "source": "random", "rule": style, "M": M,
                                        "seed": seed})


def twin(genotype: Genotype, op: str, name: str | None = None) -> Genotype:
    """``genotype`` with every op of every edge replaced by ``op`` (same edges, one op each)."""
    check_op(op, genotype.space)
    cells = [CellGenotype(c.space, c.n_nodes, {e: [op] for e in c.edges}, c.concat) for c in genotype.cells().values()]
    source = (genotype.provenance or {}).get("name", "genotype")
    return Genotype(*cells, provenance={"name": name or f"{source} ({op} twin)", "source": f"{source} with every op {op}"})


def matched_random(reference: Genotype, rule: str, M: int, first_seed: int = 0, tolerance: float = 0.15,
                   tries: int = 200, *, size: Callable[[Genotype], int]) -> Genotype:
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


def op_matched_random(reference: Genotype, seed: int) -> Genotype:
    """A random cell with the same number of distinct (edge, op) picks into every node as ``reference``: for each
    cell type and each intermediate node j that receives k_j (edge, op) pairs in ``reference``, k_j distinct pairs
    drawn uniformly from node j's inputs x the non-zero ops (edges uniform over the node's inputs, ops uniform over
    the non-zero ops). The same seed gives the same cell; its provenance records the seed and the reference."""
    rng = random.Random(check_int(seed, "seed", None))
    space = get_space(reference.space)
    ops = [op for op in space.ops if op != ZERO]
    cells = []
    for cell in reference.cells().values():
        into = {j: sum(len(o) for (i, k), o in cell.edges.items() if k == j and o) for j in range(space.n_inputs, cell.n_nodes)}
        edges: dict[Edge, set[str]] = {}
        for j, count in into.items():
            for i, op in rng.sample([(i, op) for i in range(j) for op in ops], min(count, j * len(ops))):
                edges.setdefault((i, j), set()).add(op)
        cells.append(CellGenotype(space.name, cell.n_nodes, edges, cell.concat))
    prov = reference.provenance or {}
    return Genotype(*cells, provenance={"space": space.name, "source": "random", "rule": "op-matched", "seed": seed,
                                        "matched_to": prov.get("name") or prov.get("run_id") or "reference",
                                        "M": prov.get("M")})
