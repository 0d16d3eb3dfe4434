"""Derivation rules (egs.method.derivation): exact node/edge modes against brute force, select, random cells."""
from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from egs.method.derivation import edge_codes, most_probable_prefix, node_codes, pooled, prefix_log_probabilities, select
from egs.core.errors import EGSError
from egs.arch.baselines import random_genotype
from egs.method.sampler import code_distribution
from egs.arch.space import CONV, RNN


def _brute_force_mode(q: torch.Tensor, M: int) -> tuple[float, set[frozenset[int]]]:
    """Probability of every set hit by M draws from q (entries may not sum to 1), by enumerating draws."""
    probs: dict[frozenset[int], float] = {}
    for draws in itertools.product(range(len(q)), repeat=M):
        key = frozenset(draws)
        probs[key] = probs.get(key, 0.0) + math.prod(float(q[d]) for d in draws)
    best = max(probs.values())
    return best, {s for s, p in probs.items() if abs(p - best) < 1e-12}


@pytest.mark.parametrize("seed", range(40))
def test_most_probable_prefix_is_the_mode_of_the_draws(seed):
    """On small cases the prefix rule finds a most probable set, checked by enumerating every draw."""
    g = torch.Generator().manual_seed(seed)
    n, M = 2 + seed % 4, 1 + seed % 4
    q = torch.rand(n, generator=g, dtype=torch.float64) ** 2
    q = q / q.sum() * (0.6 if seed % 3 == 0 else 1.0)  # a pooled node may leave mass elsewhere
    if seed % 5 == 0:
        q = torch.full((n,), 1.0 / n, dtype=torch.float64)  # ties
    best, modes = _brute_force_mode(q, M)
    got = frozenset(most_probable_prefix(q, M))
    assert got in modes and len(got) <= M
    order = sorted(range(n), key=lambda k: (-float(q[k]), k))
    logp = prefix_log_probabilities(q[order], M)
    for i in range(len(logp)):  # every prefix probability is exact
        exact = sum(math.prod(float(q[d]) for d in draws) for draws in itertools.product(range(n), repeat=M)
                    if set(draws) == set(order[: i + 1]))
        assert math.exp(float(logp[i])) == pytest.approx(exact, rel=1e-9, abs=1e-15)


def test_prefix_probabilities_agree_with_the_exact_code_distribution():
    p = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    dist = code_distribution(p, 5)
    for i, logp in enumerate(prefix_log_probabilities(p, 5)):
        code = torch.zeros(4, dtype=torch.bool)
        code[: i + 1] = True
        assert math.exp(float(logp)) == pytest.approx(float(dist.probs[(dist.codes == code).all(1)]), rel=1e-12)


def test_ties_and_large_M():
    assert most_probable_prefix(torch.tensor([0.5, 0.5]), 1) == [0]  # equal size-1 sets: the lower index
    assert most_probable_prefix(torch.tensor([0.5, 0.5]), 2) == [0, 1]  # {both} (0.5) beats {one} (0.25)
    logp = prefix_log_probabilities(torch.full((36,), 1 / 36), 200)  # far past 2^K enumeration and M!
    assert torch.isfinite(logp).all() and len(logp) == 36


def test_node_rule_pools_each_nodes_edges_and_merges_none():
    p = torch.full((14, 8), 0.01)
    p[:, 0] = 0.93  # "none" dominates every edge ...
    p[2:5, 4] = 0.3  # ... but node 3's edges (rows 2..4) favour sep_conv_3x3
    p = p / p.sum(-1, keepdim=True)
    q, where = pooled(p[2:5])
    assert where[0] is None and len(q) == 1 + 3 * 7 and float(q.sum()) == pytest.approx(1.0)
    assert float(q[0]) == pytest.approx(float(p[2:5, 0].mean()))  # the merged "none"
    codes = node_codes(p, CONV, 6, M=3)
    assert codes.shape == (14, 8) and codes[:, 0].sum() == 0  # "none" is never a chosen op
    assert codes[:2].sum() == 0  # node 2: the merged none alone is the most probable set
    for _, edges in CONV.node_edges():
        assert codes[edges].sum() <= 3  # at most M picks per node
    rnn = node_codes(torch.full((36, 5), 0.2), RNN, 9, M=4)
    assert rnn.shape == (36, 5) and all(rnn[e].sum() <= 4 for _, e in RNN.node_edges())


def test_edge_rule_equals_the_exact_distributions_mode():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(torch.randn(14, 8, generator=g, dtype=torch.float64) * 2, -1)
    for M in (1, 3, 7):
        codes = edge_codes(p, M)
        dist = code_distribution(p, M)
        assert torch.allclose(dist.probs[torch.arange(14), (dist.codes[None] == (codes[:, None] > 0.5)).all(-1).int()
                                         .argmax(1)], dist.probs.max(-1).values)


def test_select_keeps_the_best_scored_candidate_and_records_all():
    draws = iter([3.0, 9.0, 1.0, 9.0])
    best, records = select(lambda: next(draws), lambda codes: codes, 4)
    assert best == 1 and [r["score"] for r in records] == [3.0, 9.0, 1.0, 9.0]
    with pytest.raises(EGSError, match="select_candidates=0"):
        select(lambda: 0, lambda c: 0.0, 0)


def test_random_cells_follow_their_rule():
    node = random_genotype("conv", 5, style="node", M=3)
    assert all(sum(len(ops) for (i, j), ops in cell.edges.items() if j == t) <= 3
               for cell in node.cells().values() for t in range(2, 6))
    assert node.provenance["rule"] == "node" and node.provenance["M"] == 3 and node.provenance["seed"] == 5
    assert random_genotype("conv", 5, style="node", M=3) == node != random_genotype("conv", 6, style="node", M=3)
    edge = random_genotype("rnn", random.Random(1), style="edge")
    assert edge.provenance["M"] == 4  # the paper's M for the recurrent space
