"""Derivation rules: the discrete architecture read from a search's probabilities p (Eq. 5).

The paper says the final architecture "is identified by sampling with p_alpha(A)" (Sec. 3.4) and
that the best cells are found "according to their validation performance" (Sec. 4); the authors'
released code (XinbangZhang/DATA-NAS, ``model_infer.py``) derives each intermediate node exactly.
Three rules, every one exact or seeded:

* ``node`` (the authors' rule): for every intermediate node, pool the probabilities of all its
  (incoming edge, op) pairs, each edge's row divided by the node's number of incoming edges, with
  the "none" entries merged into one; the node keeps the most probable set of pairs that M
  categorical draws from this pooled distribution can hit (at most M pairs), "none" dropped.
  For recurrent cells (the authors released no recurrent code) a node pools its (predecessor,
  activation) pairs the same way, "none" merged.
* ``select`` (the paper's text): draw N architectures with ensemble Gumbel-softmax from p, score
  each with the supernet's shared weights on fixed search-val batches, keep the best
  (:func:`select`).
* ``edge``: every edge's most probable code under M draws from its own p (the rule egs used first).

**Why a top-i prefix suffices (exactness of ``node`` and ``edge``).** Let q be the pooled vector
(entries q_1..q_n, summing to at most 1) and S a set of entries. The M draws hit exactly S with

    P(S) = sum over m_k >= 1 (k in S), sum m_k = M, of  M! / prod m_k!  prod_{k in S} q_k^{m_k},

a polynomial with non-negative coefficients that is symmetric in the q_k of S and does not
involve entries outside S. It is therefore non-decreasing in each q_k, k in S: replacing an
entry of S by a larger entry outside S never lowers P. So among sets of size i the best is the i
largest entries, and P(S) = 0 for |S| > M. The mode is the top-i prefix of the entries sorted by
q, for the i <= min(M, n) that maximises P(prefix). :func:`prefix_log_probabilities` computes
P(prefix_i) for every i in one pass: a_n^{(j)}, the probability that n draws land exactly on
entries 1..j, obeys a_n^{(j)} = sum_{m=1..n} C(n, m) q_j^m a_{n-m}^{(j-1)} (choose the m draws that
hit entry j), evaluated in log space, so any M works (no M!, no 2^K enumeration).

**Ties** (equal q, common at alpha = 0): entries are sorted by decreasing q, equal values in their
pooled order (for ``node``: the merged "none" first, then edges by source node, ops in registry
order); among prefix sizes with equal probability the smallest wins, as in the authors' code
(a strict ``>``). A rule is a pure function of p and M.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from egs.core.checks import check_choice, check_int, check_M
from egs.method.sampler import log_hit_weights
from egs.arch.space import ZERO, SearchSpace, get_space
from egs.method.options import DERIVATION_RULES


def prefix_log_probabilities(q: torch.Tensor, M: int) -> torch.Tensor:
    """log P(M draws land exactly on entries 0..i-1 of ``q``), for i = 1..min(M, len(q)) (float64).

    ``q`` (n,) holds the probabilities of the entries (its sum may be below 1: the rest of the mass
    lies elsewhere). See the module docstring for the recursion.
    """
    M = check_M(M)
    q = torch.as_tensor(q, dtype=torch.float64).detach().cpu().reshape(-1)
    log_a = torch.full((M + 1,), -math.inf, dtype=torch.float64)
    log_a[0] = 0.0  # no entry yet: zero draws
    out = []
    for qj in q[: min(M, len(q))]:
        log_a = torch.logsumexp(log_hit_weights(qj.log(), M) + log_a[:, None], dim=0)
        out.append(log_a[M])
    return torch.stack(out)


def most_probable_prefix(q: torch.Tensor, M: int) -> list[int]:
    """Indices of the most probable set of entries hit by M draws from ``q`` (sorted, ties as above)."""
    q = torch.as_tensor(q, dtype=torch.float64).detach().cpu().reshape(-1)
    order = sorted(range(len(q)), key=lambda k: (-float(q[k]), k))
    logp = prefix_log_probabilities(q[order], M)
    best = max(range(len(logp)), key=lambda i: (float(logp[i]), -i))  # the smallest size among equal ones
    return sorted(order[: best + 1])


def edge_codes(p: torch.Tensor, M: int) -> torch.Tensor:
    """``edge`` rule: each row's most probable code under M draws from it, (E, K) floats on p's device."""
    codes = torch.zeros(p.shape, dtype=torch.float32)
    for e, row in enumerate(p.detach().double().cpu()):
        codes[e, most_probable_prefix(row, M)] = 1.0
    return codes.to(p.device)


def pooled(p_node: torch.Tensor, zero: int = 0) -> tuple[torch.Tensor, list[tuple[int, int] | None]]:
    """A node's pooled distribution: rows (its incoming edges, K ops) divided by their number, the
    zero-op column merged into one first entry; returns it and, per entry, (edge row, op) or None."""
    rows = p_node.detach().double().cpu() / len(p_node)
    ops = [k for k in range(rows.shape[1]) if k != zero]
    values = [rows[:, zero].sum()] + [rows[r, k] for r in range(len(rows)) for k in ops]
    where: list[tuple[int, int] | None] = [None] + [(r, k) for r in range(len(rows)) for k in ops]
    return torch.stack(values), where


def node_codes(p: torch.Tensor, space: SearchSpace | str, n_nodes: int, M: int) -> torch.Tensor:
    """``node`` rule: per intermediate node, its most probable pooled set ("none" dropped), as (E, K) codes."""
    space = get_space(space)
    zero = space.ops.index(ZERO)
    codes = torch.zeros(p.shape, dtype=torch.float32)
    for _, edges in space.node_edges(n_nodes):
        q, where = pooled(p[edges], zero)
        for k in most_probable_prefix(q, M):
            if where[k] is not None:
                row, op = where[k]
                codes[edges[row], op] = 1.0
    return codes.to(p.device)


def select(sample: Callable[[], Any], score: Callable[[Any], float], n: int) -> tuple[int, list[dict[str, Any]]]:
    """``select`` rule: draw ``n`` candidates with ``sample()`` (seeded by its caller), score each with
    ``score(codes)`` (higher is better, e.g. search-val accuracy with shared weights); returns the
    index of the best (the first among equal scores) and every candidate's record (codes, score)."""
    n = check_int(n, "select_candidates")
    records = []
    for i in range(n):
        codes = sample()
        records.append({"index": i, "codes": codes, "score": float(score(codes))})
    best = max(range(n), key=lambda i: (records[i]["score"], -i))
    return best, records


def argmax_codes(p: torch.Tensor) -> torch.Tensor:
    """``argmax`` rule: each edge's single most probable op, "none" included, ties to the first in op order (as
    NAS-Bench-201's own DARTS derives a cell), (E, K) one-hot floats on p's device."""
    codes = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
    return codes.scatter_(1, p.detach().argmax(1, keepdim=True), 1.0)  # argmax returns the first of equal maxima


def check_rule(rule: object) -> str:
    return check_choice(rule, "rule", DERIVATION_RULES, "node: the authors' per-node rule; select: sample N and keep the "
                        "best on search-val; edge: each edge's most probable code; argmax: each edge's most probable op")

