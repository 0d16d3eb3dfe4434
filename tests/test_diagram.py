"""Cell diagrams: one labelled arrow per active op, Figure-3 colours, SVG and PNG output."""
from __future__ import annotations

import re
from collections import Counter

import pytest

import egs.diagram as diagram
from egs.diagram import INPUT_COLOR, NODE_COLOR, OUTPUT_COLOR, cell_diagram, render_cell
from egs.errors import EGSError
from egs.genotype import DARTS_V2, DARTS_V2_RNN, CellGenotype

EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")
LABEL = re.compile(r'label="?([^" \]]+)"?')


def multi_op_cell() -> CellGenotype:
    return CellGenotype("conv", 6, {(0, 2): {"skip_connect", "sep_conv_3x3"}, (1, 2): ["max_pool_3x3"],
                                    (0, 3): ["avg_pool_3x3", "sep_conv_5x5", "dil_conv_5x5"],
                                    (2, 4): ["dil_conv_3x3"], (3, 5): ["skip_connect"]}, [2, 3, 4, 5])


def arrows(graph) -> tuple[Counter, list[tuple[str, str]]]:
    """(labelled arrows as (src, dst, label) counts, unlabelled arrows)."""
    labelled, plain = Counter(), []
    for line in graph.body:
        m = EDGE.match(line)
        if m:
            label = LABEL.search(m.group(3) or "")
            if label:
                labelled[(m.group(1), m.group(2), label.group(1))] += 1
            else:
                plain.append((m.group(1), m.group(2)))
    return labelled, plain


def node_line(graph, node_id: str) -> str:
    return next(line for line in graph.body if re.match(rf"^\s*{node_id} \[", line))


def test_one_arrow_per_active_op_and_output_arrows():
    cell = multi_op_cell()
    g = cell_diagram(cell)
    labelled, plain = arrows(g)
    expected = Counter((f"n{i}", f"n{j}", op) for (i, j), ops in cell.edges.items() for op in ops)
    assert labelled == expected and sum(labelled.values()) == cell.num_active_ops() == 8
    assert sum(1 for (s, d, _) in labelled if (s, d) == ("n0", "n3")) == 3  # parallel arrows
    assert sorted(plain) == [(f"n{j}", "out") for j in (2, 3, 4, 5)]


def test_conv_colours_and_labels():
    g = cell_diagram(DARTS_V2.normal)
    assert "c_{k-2}" in node_line(g, "n0") and INPUT_COLOR in node_line(g, "n0")
    assert "c_{k-1}" in node_line(g, "n1") and INPUT_COLOR in node_line(g, "n1")
    assert "c_{k}" in node_line(g, "out") and OUTPUT_COLOR in node_line(g, "out")
    for j in range(2, 6):
        assert NODE_COLOR in node_line(g, f"n{j}")
    assert sum(arrows(g)[0].values()) == 8


def test_recurrent_cell_diagram():
    cell = DARTS_V2_RNN.normal
    g = cell_diagram(cell)
    assert "x_{t}" in node_line(g, "in0") and "h_{t-1}" in node_line(g, "in1")
    assert "h_{t}" in node_line(g, "out") and NODE_COLOR in node_line(g, "n0")
    labelled, plain = arrows(g)
    assert sum(labelled.values()) == cell.num_active_ops() == 8
    assert sorted(plain) == sorted([("in0", "n0"), ("in1", "n0")] + [(f"n{j}", "out") for j in range(1, 9)])


def test_render_svg_and_png(tmp_path):
    paths = render_cell(multi_op_cell(), tmp_path / "figs" / "normal")
    assert [p.name for p in paths] == ["normal.svg", "normal.png"]
    svg = paths[0].read_text()
    assert "<svg" in svg and svg.count("sep_conv_3x3") == 1 and "dil_conv_5x5" in svg
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["normal.png", "normal.svg"]


def test_missing_dot_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(diagram.shutil, "which", lambda name: None)
    with pytest.raises(EGSError, match="apt-get install graphviz"):
        render_cell(DARTS_V2.normal, tmp_path / "cell")
    assert not list(tmp_path.iterdir())


def test_bad_arguments():
    with pytest.raises(EGSError, match="'jpeg2'"):
        render_cell(DARTS_V2.normal, "unused", formats=("jpeg2",))
    with pytest.raises(EGSError, match="CellGenotype"):
        cell_diagram(DARTS_V2)
