"""Published genotypes: the authors' per-node format, DATA's released cells, pinned parameter counts."""
from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

import pytest

from egs.conv.network import Network, count_parameters
from egs.core.errors import EGSError
from egs.arch.genotype import Genotype
from egs.arch.published import DARTS_V1, DARTS_V2, DARTS_V2_CONV_LISTS, DARTS_V2_RNN
from egs.conv.ops import conv_op_params
from egs.arch.published import DATA_M4, DATA_M4_LISTS, DATA_M7, DATA_M7_LISTS, PUBLISHED, SOURCES, published
from egs.arch.formats import authors_cell, from_authors

AuthorsGenotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

SMALL_NORMAL = [[("skip_connect", 0), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
                [("dil_conv_3x3", 2)],
                [("max_pool_3x3", 1), ("skip_connect", 3)],
                [("sep_conv_5x5", 0), ("avg_pool_3x3", 0), ("skip_connect", 4)]]
SMALL_REDUCE = [[("max_pool_3x3", 0), ("max_pool_3x3", 1)], [("skip_connect", 2)],
                [("dil_conv_5x5", 1)], [("sep_conv_3x3", 3), ("sep_conv_3x3", 4)]]

# Published CIFAR-10 sizes (millions of parameters, evaluation network, no auxiliary head).
DARTS_V2_PUBLISHED = 3_349_342          # DARTS (quark0/darts) NetworkCIFAR(36, 10, 20), DARTS_V2
DATA_M4_PARAMS, DATA_M7_PARAMS = 3_894_094, 3_410_038   # pinned here (egs Network == arithmetic)


def small(**changes: object) -> AuthorsGenotype:
    fields = dict(normal=SMALL_NORMAL, normal_concat=[2, 3, 4, 5], reduce=SMALL_REDUCE,
                  reduce_concat=range(2, 6))
    return AuthorsGenotype(**{**fields, **changes})


def test_small_example_converts_edge_by_edge():
    g = from_authors(small())
    assert g.normal.n_nodes == g.reduce.n_nodes == 6
    assert g.normal.concat == g.reduce.concat == (2, 3, 4, 5)
    assert dict(g.normal.edges) == {
        (0, 2): ("skip_connect", "sep_conv_3x3"), (1, 2): ("sep_conv_3x3",), (2, 3): ("dil_conv_3x3",),
        (1, 4): ("max_pool_3x3",), (3, 4): ("skip_connect",),
        (0, 5): ("avg_pool_3x3", "sep_conv_5x5"), (4, 5): ("skip_connect",)}
    assert dict(g.reduce.edges) == {(0, 2): ("max_pool_3x3",), (1, 2): ("max_pool_3x3",),
                                    (2, 3): ("skip_connect",), (1, 4): ("dil_conv_5x5",),
                                    (3, 5): ("sep_conv_3x3",), (4, 5): ("sep_conv_3x3",)}
    assert g.normal.num_active_ops() == 9 and g.reduce.num_active_ops() == 6


def test_dict_object_and_namedtuple_agree():
    fields = small()._asdict()
    assert from_authors(fields) == from_authors(SimpleNamespace(**fields)) == from_authors(small())


def test_one_pair_per_node_equals_the_darts_reading():
    """A DARTS cell regrouped two pairs per node reads the same through both converters."""
    lists = dict(DARTS_V2_CONV_LISTS)
    for kind in ("normal", "reduce"):
        flat = lists[kind]
        lists[kind] = [flat[k:k + 2] for k in range(0, len(flat), 2)]
    assert from_authors(lists) == DARTS_V2


@pytest.mark.parametrize("lists, genotype", [(DATA_M4_LISTS, DATA_M4), (DATA_M7_LISTS, DATA_M7)])
def test_data_cells_keep_every_listed_pair(lists, genotype):
    assert isinstance(genotype, Genotype) and genotype.space == "conv"
    for kind in ("normal", "reduce"):
        cell = getattr(genotype, kind)
        assert cell.n_nodes == 6 and cell.concat == (2, 3, 4, 5)
        pairs = [(src, k + 2, op) for k, node in enumerate(lists[kind]) for op, src in node]
        assert cell.num_active_ops() == len(pairs)
        assert sorted(pairs) == sorted((i, j, op) for (i, j), ops in cell.edges.items() for op in ops)


def test_data_m4_normal_cell_edges():
    assert dict(DATA_M4.normal.edges) == {
        (0, 2): ("skip_connect", "sep_conv_3x3"), (1, 2): ("sep_conv_3x3",),
        (1, 3): ("skip_connect",), (2, 3): ("skip_connect", "sep_conv_3x3"),
        (3, 4): ("skip_connect", "sep_conv_5x5"),
        (0, 5): ("skip_connect",), (1, 5): ("sep_conv_5x5",), (2, 5): ("sep_conv_3x3",)}
    assert (DATA_M4.num_active_ops(), DATA_M7.num_active_ops()) == (22, 26)


def test_published_lookup():
    assert set(PUBLISHED) == set(SOURCES) >= {"DATA_M4", "DATA_M7", "DARTS_V1", "DARTS_V2",
                                               "DARTS_V1_RNN", "DARTS_V2_RNN"}
    assert published("DATA_M7") is DATA_M7 and published("DARTS_V1") is DARTS_V1
    assert published("DARTS_V2_RNN") is DARTS_V2_RNN
    assert "DATA-NAS" in SOURCES["DATA_M4"] and "quark0/darts" in SOURCES["DARTS_V2"]
    with pytest.raises(EGSError, match="'DATA_M5'.*DARTS_V1, DARTS_V2, .*DATA_M4, DATA_M7"):
        published("DATA_M5")


@pytest.mark.parametrize("bad, message", [
    (small(normal=DARTS_V2_CONV_LISTS["normal"]), r"DARTS-format.*egs\.arch\.formats\.from_darts"),
    (small(normal=[[("skip_connect", 0), ("skip_connect", 0)], *SMALL_NORMAL[1:]]),
     r"'skip_connect' twice on edge \(0, 2\)"),
    (small(normal=[]), r"normal = \[\] must be a non-empty list"),
    (small(reduce="max_pool_3x3"), r"reduce = 'max_pool_3x3' must be a non-empty list"),
    (small(normal=[[], *SMALL_NORMAL[1:]]), r"normal node list 0 \(node 2\) = \[\] must be"),
    (small(normal=[("skip_connect", 0, 1), *SMALL_NORMAL[1:]]),
     r"normal node list 0 \(node 2\): entry 'skip_connect' must be"),
    (small(normal=[[("skip_connect",)], *SMALL_NORMAL[1:]]), r"entry \('skip_connect',\) must be an"),
    (small(normal=[[("conv_7x7", 0)], *SMALL_NORMAL[1:]]), r"unknown conv operation 'conv_7x7'"),
    (small(reduce=[[("skip_connect", 2)], *SMALL_REDUCE[1:]]), r"input 2 of \('skip_connect', 2\)"),
    (small(normal_concat=[2, 6]), r"normal cell: concat=\[2, 6\]"),
    ({"normal": SMALL_NORMAL, "reduce": SMALL_REDUCE}, r"\['normal_concat', 'reduce_concat'\] are missing"),
    ([SMALL_NORMAL, [2, 3, 4, 5]], r"fields .* are missing"),
])
def test_bad_input_raises_one_clear_error(bad, message):
    with pytest.raises(EGSError, match=message):
        from_authors(bad)


def test_cell_converter_names_the_cell():
    with pytest.raises(EGSError, match=r"reduce node list 1 \(node 3\)"):
        authors_cell([[("skip_connect", 0)], 7], [2, 3], "reduce")


def arithmetic_params(genotype: Genotype, C: int = 36, layers: int = 20, classes: int = 10) -> int:
    """Parameters of the CIFAR evaluation network counted op by op (DARTS NetworkCIFAR layout)."""
    C_stem = 3 * C
    total = 3 * C_stem * 3 * 3 + 2 * C_stem                      # stem conv (no bias) + BN
    C_pp, C_p, C_cur, reduction_prev = C_stem, C_stem, C, False
    for layer in range(layers):
        reduction = layer in (layers // 3, 2 * layers // 3)
        C_cur = 2 * C_cur if reduction else C_cur
        if reduction_prev:
            total += 2 * C_pp * (C_cur // 2) + 2 * C_cur            # FactorizedReduce
        else:
            total += C_pp * C_cur + 2 * C_cur                       # ReLUConvBN 1x1
        total += C_p * C_cur + 2 * C_cur                            # preprocess1
        cell = genotype.reduce if reduction else genotype.normal
        for (i, _), ops in cell.edges.items():
            stride = 2 if reduction and i < 2 else 1
            total += sum(conv_op_params(op, C_cur, stride, affine=True) for op in ops)
        C_pp, C_p, reduction_prev = C_p, len(cell.concat) * C_cur, reduction
    return total + C_p * classes + classes                         # classifier with bias


def test_arithmetic_reproduces_darts_v2_reference_count():
    assert arithmetic_params(DARTS_V2) == DARTS_V2_PUBLISHED
    assert count_parameters(Network(36, 10, 20, DARTS_V2)) == DARTS_V2_PUBLISHED
    assert arithmetic_params(DARTS_V1) == count_parameters(Network(36, 10, 20, DARTS_V1))


@pytest.mark.parametrize("genotype, pinned", [(DATA_M4, DATA_M4_PARAMS), (DATA_M7, DATA_M7_PARAMS)])
def test_data_evaluation_network_parameter_count(genotype, pinned):
    """20 cells, C = 36, 10 classes, no auxiliary head. DATA (NeurIPS 2019, Table 1) reports 3.2 M
    (M = 4) and 3.4 M (M = 7); this paper (arXiv 1905.01786, Table 1) 2.6 M / 2.9 M for its own
    unreleased cells. The authors' own model_gumbel.NetworkCIFAR gives the same counts as here."""
    net = Network(36, 10, 20, genotype)
    assert net.auxiliary_head is None
    assert count_parameters(net) == pinned == arithmetic_params(genotype)
