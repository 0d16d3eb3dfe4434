"""Genotypes: canonical form, JSON files, DARTS import, random architectures."""
from __future__ import annotations

import json
import pickle
import random
from collections import namedtuple

import pytest

from egs.core.errors import EGSError
from egs.arch.genotype import SCHEMA, CellGenotype, Genotype, load_genotype, save_genotype
from egs.arch.baselines import random_genotype
from egs.arch.published import DARTS_V1, DARTS_V2, DARTS_V2_CONV_LISTS, DARTS_V2_RNN
from egs.arch.formats import darts_cell, from_darts
from egs.arch.space import CONV_OPS, RNN_OPS

DartsConv = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
DartsRnn = namedtuple("Genotype", "recurrent concat")


def multi_op_genotype() -> Genotype:
    normal = CellGenotype("conv", 6, {(0, 2): {"skip_connect", "sep_conv_3x3"},
                                      (1, 2): ["max_pool_3x3", "none"],
                                      (2, 3): ["none"], (1, 3): [],
                                      (0, 3): ("dil_conv_5x5", "avg_pool_3x3", "sep_conv_5x5"),
                                      (3, 5): ["skip_connect"], (1, 4): ["sep_conv_3x3"]}, [2, 3, 4, 5])
    return Genotype(normal, DARTS_V2.reduce)


def test_darts_v2_import():
    normal = DARTS_V2.normal
    assert normal.n_nodes == 6 and normal.concat == (2, 3, 4, 5)
    assert dict(normal.edges) == {
        (0, 2): ("sep_conv_3x3",), (1, 2): ("sep_conv_3x3",),
        (0, 3): ("sep_conv_3x3",), (1, 3): ("sep_conv_3x3",),
        (0, 4): ("skip_connect",), (1, 4): ("sep_conv_3x3",),
        (0, 5): ("skip_connect",), (2, 5): ("dil_conv_3x3",)}
    assert dict(DARTS_V2.reduce.edges) == {
        (0, 2): ("max_pool_3x3",), (1, 2): ("max_pool_3x3",),
        (1, 3): ("max_pool_3x3",), (2, 3): ("skip_connect",),
        (0, 4): ("max_pool_3x3",), (2, 4): ("skip_connect",),
        (1, 5): ("max_pool_3x3",), (2, 5): ("skip_connect",)}
    assert DARTS_V2.num_active_ops() == 16
    assert DARTS_V1.normal.edges[(2, 5)] == ("skip_connect",)
    assert DARTS_V1.reduce.edges[(0, 5)] == ("avg_pool_3x3",)


def test_darts_recurrent_import():
    cell = DARTS_V2_RNN.normal
    assert DARTS_V2_RNN.reduce is None and cell.space == "rnn"
    assert cell.n_nodes == 9 and cell.concat == tuple(range(1, 9))
    assert dict(cell.edges) == {(0, 1): ("sigmoid",), (1, 2): ("relu",), (1, 3): ("relu",),
                                (1, 4): ("identity",), (2, 5): ("tanh",), (5, 6): ("sigmoid",),
                                (3, 7): ("tanh",), (5, 8): ("relu",)}
    rnn = DartsRnn(recurrent=[("sigmoid", 0), ("relu", 1)], concat=range(1, 3))
    assert from_darts(rnn) == from_darts({"recurrent": rnn.recurrent, "concat": [1, 2]}) \
        == from_darts(tuple(rnn))


def test_darts_import_accepts_namedtuple_dict_tuple_and_lists():
    lists = DARTS_V2_CONV_LISTS
    nt = DartsConv(**lists)
    assert from_darts(nt) == from_darts(dict(lists)) == from_darts(tuple(nt)) == DARTS_V2
    assert darts_cell(lists["normal"], lists["normal_concat"]) == DARTS_V2.normal


def test_darts_import_errors():
    with pytest.raises(EGSError, match="repeats op 'avg_pool_3x3' on edge \\(0, 5\\)"):
        darts_cell([("skip_connect", 0), ("skip_connect", 1)] * 3
                   + [("avg_pool_3x3", 0), ("avg_pool_3x3", 0)], [2, 3, 4, 5])
    with pytest.raises(EGSError, match="'sep_conv_7x7'"):
        darts_cell([("sep_conv_7x7", 0), ("skip_connect", 1)], [2])
    with pytest.raises(EGSError, match="3 entries"):
        darts_cell([("skip_connect", 0)] * 3, [2])
    with pytest.raises(EGSError, match="cannot read"):
        from_darts({"normal": []})


def test_canonical_form_multi_op_edges():
    cell = multi_op_genotype().normal
    # "none" dropped, empty / none-only edges absent, ops in registry order, edges sorted by (j, i)
    assert list(cell.edges) == [(0, 2), (1, 2), (0, 3), (1, 4), (3, 5)]
    assert cell.edges[(0, 2)] == ("skip_connect", "sep_conv_3x3")
    assert cell.edges[(0, 3)] == ("avg_pool_3x3", "sep_conv_5x5", "dil_conv_5x5")
    assert cell.num_active_ops() == 8
    assert "0 -> 2: skip_connect + sep_conv_3x3" in str(cell)
    with pytest.raises(TypeError):
        cell.edges[(0, 4)] = ("skip_connect",)  # read-only


def test_equality_and_hashing_ignore_construction_order():
    a = CellGenotype("conv", 6, {(0, 2): ["sep_conv_3x3", "skip_connect"], (1, 3): ["none", "max_pool_3x3"]},
                     [5, 4, 3, 2])
    b = CellGenotype("conv", 6, {(1, 3): {"max_pool_3x3"}, (0, 2): ("skip_connect", "sep_conv_3x3")},
                     (2, 3, 4, 5))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != CellGenotype("conv", 6, {(0, 2): ["sep_conv_3x3"]}, [2, 3, 4, 5])
    assert Genotype(a, b) == Genotype(b, a) and len({Genotype(a, b), Genotype(b, a)}) == 1
    assert pickle.loads(pickle.dumps(DARTS_V2)) == DARTS_V2


@pytest.mark.parametrize("genotype", [DARTS_V2, DARTS_V1, DARTS_V2_RNN, multi_op_genotype()],
                         ids=["darts_v2", "darts_v1", "darts_v2_rnn", "multi_op"])
def test_json_round_trip(tmp_path, genotype):
    path = save_genotype(genotype, tmp_path / "sub" / "g.json")
    assert load_genotype(path) == genotype
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA and data == genotype.to_dict()
    assert [p.name for p in path.parent.iterdir()] == ["g.json"]  # no temp file left behind
    save_genotype(DARTS_V1, path)                                  # overwrite in place
    assert load_genotype(path) == DARTS_V1


def test_multi_op_edge_in_json(tmp_path):
    path = save_genotype(multi_op_genotype(), tmp_path / "g.json")
    edges = json.loads(path.read_text())["normal"]["edges"]
    assert {"from": 0, "to": 3, "ops": ["avg_pool_3x3", "sep_conv_5x5", "dil_conv_5x5"]} in edges


def _cell(**override):
    cell = {"space": "conv", "n_nodes": 6, "concat": [2, 3, 4, 5],
            "edges": [{"from": 0, "to": 2, "ops": ["sep_conv_3x3"]}]}
    return {**cell, **override}


def _doc(**override):
    return {"schema": SCHEMA, "normal": _cell(), "reduce": _cell(), **override}


MALFORMED = {
    "not_json": ('{"schema": "egs.genotype/1", "normal": ', "malformed JSON"),
    "not_object": ([1, 2], "list"),
    "missing_schema": ({"normal": _cell(), "reduce": _cell()}, "schema None"),
    "wrong_schema": (_doc(schema="egs.genotype/0"), "egs.genotype/0"),
    "unknown_key": (_doc(extra=1), "'extra'"),
    "missing_key": ({"schema": SCHEMA, "normal": _cell()}, "'reduce'"),
    "unknown_op": (_doc(normal=_cell(edges=[{"from": 0, "to": 2, "ops": ["conv_9x9"]}])), "'conv_9x9'"),
    "edge_backwards": (_doc(normal=_cell(edges=[{"from": 3, "to": 2, "ops": ["skip_connect"]}])), r"\(3, 2\)"),
    "edge_self_loop": (_doc(normal=_cell(edges=[{"from": 2, "to": 2, "ops": ["skip_connect"]}])), r"\(2, 2\)"),
    "node_out_of_range": (_doc(normal=_cell(edges=[{"from": 0, "to": 9, "ops": ["skip_connect"]}])), r"\(0, 9\)"),
    "edge_into_input": (_doc(normal=_cell(edges=[{"from": 0, "to": 1, "ops": ["skip_connect"]}])), r"\(0, 1\)"),
    "negative_node": (_doc(normal=_cell(edges=[{"from": -1, "to": 2, "ops": ["skip_connect"]}])), r"\(-1, 2\)"),
    "n_nodes_string": (_doc(normal=_cell(n_nodes="six")), "'six'"),
    "from_float": (_doc(normal=_cell(edges=[{"from": 0.5, "to": 2, "ops": ["skip_connect"]}])), "0.5"),
    "ops_string": (_doc(normal=_cell(edges=[{"from": 0, "to": 2, "ops": "skip_connect"}])), "'skip_connect'"),
    "edges_not_list": (_doc(normal=_cell(edges={"0-2": ["skip_connect"]})), "'0-2'"),
    "edge_twice": (_doc(normal=_cell(edges=[{"from": 0, "to": 2, "ops": ["skip_connect"]}] * 2)), "listed twice"),
    "concat_out_of_range": (_doc(normal=_cell(concat=[2, 7])), r"\[2, 7\]"),
    "concat_duplicate": (_doc(normal=_cell(concat=[2, 2])), r"\[2, 2\]"),
    "unknown_space": (_doc(normal=_cell(space="transformer")), "'transformer'"),
    "conv_without_reduce": (_doc(reduce=None), "reduce=None"),
    "rnn_with_reduce": (_doc(normal=_cell(space="rnn", n_nodes=3, concat=[1, 2],
                                          edges=[{"from": 0, "to": 1, "ops": ["tanh"]}])), "reduce=None"),
    "normal_none": (_doc(normal=None), "normal must be a CellGenotype"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_file_raises_naming_path_and_value(tmp_path, case):
    content, pattern = MALFORMED[case]
    path = tmp_path / f"{case}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(EGSError, match=pattern) as info:
        load_genotype(path)
    assert str(path) in str(info.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(EGSError, match="nope.json"):
        load_genotype(tmp_path / "nope.json")


def test_constructor_rejects_unknown_op():
    with pytest.raises(EGSError, match=r"'conv_9x9'.*sep_conv_3x3"):
        CellGenotype("conv", 6, {(0, 2): ["conv_9x9"]}, [2])
    with pytest.raises(EGSError, match=r"'sep_conv_3x3'.*tanh"):
        CellGenotype("rnn", 3, {(0, 1): ["sep_conv_3x3"]}, [1, 2])


def test_random_genotype_egs_style():
    g = random_genotype("conv", 0, style="edge")
    assert g == random_genotype("conv", random.Random(0), style="edge") and g != random_genotype("conv", 1, style="edge")
    for cell in (g.normal, g.reduce):
        assert cell.n_nodes == 6 and len(cell.all_edges()) == 14 and cell.concat == (2, 3, 4, 5)
        assert all(1 <= len(ops) <= 7 for ops in cell.edges.values())
    single = random_genotype("conv", 3, M=1, style="edge")
    assert all(len(ops) == 1 for cell in single.cells().values() for ops in cell.edges.values())
    rnn = random_genotype("rnn", 0, n_nodes=5, M=2, style="edge")
    assert rnn.reduce is None and set().union(*rnn.normal.edges.values()) <= set(RNN_OPS)


def test_random_genotype_darts_style():
    g = random_genotype("conv", 7, style="darts")
    for cell in g.cells().values():
        for j in range(2, 6):
            incoming = [ops for (i, t), ops in cell.edges.items() if t == j]
            assert len(incoming) == 2 and all(len(ops) == 1 and ops[0] in CONV_OPS[1:] for ops in incoming)
    rnn = random_genotype("rnn", 7, style="darts").normal
    assert rnn.n_nodes == 9 and sorted(j for _, j in rnn.edges) == list(range(1, 9))
    with pytest.raises(EGSError, match="'nas'"):
        random_genotype("conv", 0, style="nas")


def test_op_matched_random_cells_have_the_reference_picks_into_every_node():
    from egs.arch.baselines import op_matched_random
    from egs.arch.published import DATA_M7, DARTS_V2_RNN

    def picks(genotype):
        return {kind: [sum(len(ops) for (_, j), ops in cell.edges.items() if j == n) for n in range(cell.n_nodes)]
                for kind, cell in genotype.cells().items()}
    for reference in (DATA_M7, DARTS_V2_RNN):  # several ops per edge (M = 7), and one op per node
        cells = [op_matched_random(reference, seed) for seed in range(5)]
        assert all(picks(g) == picks(reference) for g in cells)
        assert all("none" not in ops and "zero" not in ops for g in cells for c in g.cells().values()
                   for ops in c.edges.values())
        assert len({str(g.to_dict()["normal"]) for g in cells}) == 5  # random: the seeds differ
        assert op_matched_random(reference, 3).to_dict() == cells[3].to_dict()  # and reproducible
        assert cells[0].provenance["rule"] == "op-matched" and cells[0].provenance["seed"] == 0
