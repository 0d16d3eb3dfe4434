"""Checks of the sampler's claims (Figure 1, Propositions 2 and 3) as tables.

Each function returns a :class:`pandas.DataFrame` computed from the exact distribution of
:mod:`egs.method.sampler` and, where useful, from Monte-Carlo draws of the sampler itself.

What we check (the statements are worded in notebook 01; the arXiv text of the
propositions was not at hand verbatim, so the notebook says which reading is tested):

* Proposition 2 -- how the probability that op k is switched on depends on ``p_k``. Exactly,
  ``P(code_k = 1) = 1 - (1 - p_k)^M``: monotone increasing in ``p_k`` (so ops keep their ranking),
  equal to ``p_k`` for ``M = 1``, but *not* proportional to ``p_k`` for ``M > 1``.
* Proposition 3 -- how many distinct codes EGS can produce. With every ``p_k > 0`` it is
  ``sum_{m=1}^{M} C(K, m)`` (codes with 1..M ones; terms with m > K vanish), which saturates at
  ``2^K - 1`` once ``M >= K``. The number of distinct *multisets* of draws, ``C(K + M - 1, M)``,
  is larger: different draws collapse to the same code.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import torch

from egs.method.sampler import code_distribution, empirical_code_distribution, inclusion_probability


def code_label(code: torch.Tensor) -> str:
    """``[1,0,1]``-style label of a binary code."""
    return "[" + ",".join(str(int(b)) for b in code.tolist()) + "]"


def code_table(p: Sequence[float], Ms: Sequence[int], mc_samples: int, seed: int = 0) -> pd.DataFrame:
    """Probability of every non-empty code for each M: exact and Monte Carlo (Figure 1's data)."""
    rows = []
    for M in Ms:
        exact = code_distribution(p, M)
        gen = torch.Generator().manual_seed(seed + M)
        mc = empirical_code_distribution(p, M, mc_samples, generator=gen)
        for i, code in enumerate(exact.codes):
            if code.any():
                rows.append({"M": M, "code": code_label(code), "exact": float(exact.probs[i]),
                             "monte_carlo": float(mc[i]),
                             "mc_stderr": math.sqrt(max(float(exact.probs[i] * (1 - exact.probs[i])), 0.0)
                                                    / mc_samples)})
    return pd.DataFrame(rows)


def proposition2_table(p: Sequence[float], Ms: Sequence[int]) -> pd.DataFrame:
    """P(code_k = 1) for each op and M: enumerated, closed form, and its ratio to ``p_k``."""
    rows = []
    for M in Ms:
        marg = code_distribution(p, M).marginals()
        closed = inclusion_probability(p, M)
        for k, pk in enumerate(p):
            rows.append({"M": M, "op": k, "p_k": float(pk), "P(code_k=1) exact": float(marg[k]),
                         "1-(1-p_k)^M": float(closed[k]),
                         "ratio to p_k": float(marg[k]) / pk if pk > 0 else float("nan")})
    return pd.DataFrame(rows)


def is_monotone_in_p(p: Sequence[float], M: int) -> bool:
    """Whether sorting ops by ``p_k`` also sorts them by ``P(code_k = 1)`` (ties kept as ties)."""
    marg = code_distribution(p, M).marginals()
    pairs = sorted(zip(p, marg.tolist()))
    return all(a[1] <= b[1] + 1e-15 for a, b in zip(pairs, pairs[1:]))


def proposition3_table(Ks: Sequence[int], Ms: Sequence[int], count_samples: int,
                       seed: int = 0) -> pd.DataFrame:
    """Distinct codes for K ops and M draws under uniform p: formula, exact support, Monte Carlo."""
    rows = []
    for K in Ks:
        p = [1.0 / K] * K
        for M in Ms:
            dist = code_distribution(p, M)
            row = {"K": K, "M": M,
                   "formula sum_{m<=M} C(K,m)": sum(math.comb(K, m) for m in range(1, M + 1)),
                   "exact support": int(dist.support().sum()),
                   "multisets C(K+M-1,M)": math.comb(K + M - 1, M),
                   "all non-empty 2^K-1": 2 ** K - 1}
            if count_samples:
                gen = torch.Generator().manual_seed(seed + 1000 * K + M)
                mc = empirical_code_distribution(p, M, count_samples, generator=gen)
                row[f"seen in {count_samples} draws"] = int((mc > 0).sum())
                # Expected number of distinct codes seen: sum_S 1 - (1 - P(S))^n.
                row["expected seen"] = float((1 - (1 - dist.probs) ** count_samples).sum())
            rows.append(row)
    return pd.DataFrame(rows)


def num_active_table(K: int, Ms: Sequence[int], p: Sequence[float] | None = None) -> pd.DataFrame:
    """Distribution of the number of active ops per edge for each M (uniform ``p`` by default)."""
    p = list(p) if p is not None else [1.0 / K] * K
    rows = []
    for M in Ms:
        dist = code_distribution(p, M)
        for n, prob in enumerate(dist.num_active().tolist()):
            if n > 0:
                rows.append({"M": M, "active ops": n, "probability": prob,
                             "expected": float(dist.expected_active())})
    return pd.DataFrame(rows)


def proposition1_table(n_inputs: int = 2, n_nodes: int = 2, K: int = 3) -> pd.DataFrame:
    """Proposition 1 (one and only one code per network) checked by enumeration on a small cell: ``n_inputs``
    inputs, ``n_nodes`` ordered intermediate nodes (node j reads every earlier node), ``K`` ops, with and without a
    "zero" op among them. Every code is built into its network, the set of (edge, non-zero op) pairs it switches on;
    the table counts codes, distinct networks, codes per network and networks up to a relabelling of the
    intermediate nodes (the same computation, its nodes numbered otherwise: a permutation of channels)."""
    import itertools
    edges = [(i, j) for j in range(n_inputs, n_inputs + n_nodes) for i in range(j)]
    middle = list(range(n_inputs, n_inputs + n_nodes))
    rows = []
    for zero in (True, False):
        ops = range(1, K) if zero else range(K)  # op 0 is "zero" in the first setting
        networks: dict[frozenset, int] = {}
        for bits in itertools.product((0, 1), repeat=len(edges) * K):
            net = frozenset((e, k) for n, e in enumerate(edges) for k in ops if bits[n * K + k])
            networks[net] = networks.get(net, 0) + 1

        def canonical(net: frozenset) -> tuple:  # the smallest form over relabellings that keep edges forward
            forms = []
            for perm in itertools.permutations(middle):
                relabel = {**{i: i for i in range(n_inputs)}, **dict(zip(middle, perm))}
                moved = {((relabel[i], relabel[j]), k) for (i, j), k in net}
                if all(i < j for (i, j), _ in moved):
                    forms.append(tuple(sorted(moved)))
            return min(forms)
        per = set(networks.values())
        rows.append({"ops": f"K = {K}, " + ("'zero' among them" if zero else "no 'zero'"), "edges": len(edges),
                     "codes": 2 ** (len(edges) * K), "distinct networks": len(networks),
                     "codes per network": per.pop() if len(per) == 1 else f"{min(per)}-{max(per)}",
                     "networks up to node relabelling": len({canonical(n) for n in networks})})
    return pd.DataFrame(rows)
