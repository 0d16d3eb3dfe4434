"""The tables behind notebook 01: Figure 1's data, Propositions 2 and 3."""
from __future__ import annotations

import math

import pytest

from egs.repro import propositions


def test_figure1_code_probabilities():
    table = propositions.code_table([0.5, 0.5], [1, 2], mc_samples=20_000, seed=0)
    exact = {(r.M, r.code): r.exact for r in table.itertuples()}
    assert exact[(1, "[1,0]")] == exact[(1, "[0,1]")] == 0.5 and exact[(1, "[1,1]")] == 0
    assert exact[(2, "[1,0]")] == exact[(2, "[0,1]")] == pytest.approx(0.25)
    assert exact[(2, "[1,1]")] == pytest.approx(0.5)
    assert ((table.monte_carlo - table.exact).abs() <= 5 * table.mc_stderr + 1e-12).all()


def test_proposition2_monotone_but_not_proportional():
    p = [0.4, 0.3, 0.2, 0.1]
    table = propositions.proposition2_table(p, [1, 2, 7])
    m1 = table[table.M == 1]["ratio to p_k"]
    assert m1.sub(1).abs().max() < 1e-12  # M = 1: exactly p_k
    m7 = table[table.M == 7]["ratio to p_k"]
    assert m7.max() - m7.min() > 1  # M = 7: far from proportional
    assert all(propositions.is_monotone_in_p(p, M) for M in range(1, 10))


def test_proposition3_counts():
    table = propositions.proposition3_table([2, 5, 8], range(1, 10), count_samples=0)
    assert (table["formula sum_{m<=M} C(K,m)"] == table["exact support"]).all()
    assert (table["multisets C(K+M-1,M)"] >= table["exact support"]).all()
    k8 = table[table.K == 8].set_index("M")["exact support"]
    assert k8[1] == 8 and k8[2] == 36 and k8[7] == 254 and k8[8] == 255 == k8[9]


def test_num_active_distribution_for_K8():
    table = propositions.num_active_table(8, [1, 7])
    m7 = table[table.M == 7]
    assert m7.probability.sum() == pytest.approx(1.0)
    assert m7.expected.iloc[0] == pytest.approx(8 * (1 - (7 / 8) ** 7))
    assert m7.set_index("active ops").probability[8] == 0  # 7 draws cannot switch on 8 ops
    assert m7.set_index("active ops").probability[7] == pytest.approx(math.factorial(8) / 8 ** 7 / 1)


def test_proposition1_holds_only_without_zero_and_only_up_to_node_numbering():
    table = propositions.proposition1_table(n_inputs=2, n_nodes=2, K=3).set_index("ops")
    zero, plain = table.iloc[0], table.iloc[1]
    assert zero["codes"] == plain["codes"] == 2 ** 15
    assert zero["distinct networks"] == 2 ** 10 and zero["codes per network"] == 2 ** 5  # the zero bits are free
    assert plain["distinct networks"] == 2 ** 15 and plain["codes per network"] == 1  # one and only one
    assert plain["networks up to node relabelling"] < plain["distinct networks"]  # but not up to isomorphism
