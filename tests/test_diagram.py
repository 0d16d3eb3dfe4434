"""Cell diagrams: one arrow per connected edge labelled with its ops, Figure-3 colours, titles, SVG and PNG."""
from __future__ import annotations

import html
import re
from collections import Counter

import pytest

import egs.arch.diagram as diagram
from egs.arch.diagram import INPUT_COLOR, NODE_COLOR, OUTPUT_COLOR, cell_diagram, render_cell, render_genotype, title
from egs.core.errors import EGSError
from egs.arch.genotype import CellGenotype
from egs.arch.published import DARTS_V2, DARTS_V2_RNN
from egs.arch.space import CONV_OPS

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


def test_one_arrow_per_edge_labelled_with_all_its_ops_and_output_arrows():
    cell = multi_op_cell()
    g = cell_diagram(cell)
    edges = [line for line in g.body if EDGE.match(line) and "label=" in line]
    assert len(edges) == len(cell.edges) == 5  # one arrow per connected (i, j), however many ops it holds
    for (i, j), ops in cell.edges.items():
        line = next(e for e in edges if EDGE.match(e).group(1, 2) == (f"n{i}", f"n{j}"))
        assert "\\n".join(ops) in line or "\n".join(ops) in line
    plain = [EDGE.match(line).group(1, 2) for line in g.body if EDGE.match(line) and "label=" not in line]
    assert sorted(plain) == [(f"n{j}", "out") for j in (2, 3, 4, 5)]


def test_conv_colours_labels_and_subscripts():
    g = cell_diagram(DARTS_V2.normal)
    assert "c<sub>k-2</sub>" in node_line(g, "n0") and INPUT_COLOR in node_line(g, "n0")
    assert "c<sub>k-1</sub>" in node_line(g, "n1") and INPUT_COLOR in node_line(g, "n1")
    assert "c<sub>k</sub>" in node_line(g, "out") and OUTPUT_COLOR in node_line(g, "out")
    for j in range(2, 6):
        assert NODE_COLOR in node_line(g, f"n{j}")
    assert sum(1 for line in g.body if EDGE.match(line) and "label=" in line) == len(DARTS_V2.normal.edges)


def test_recurrent_cell_diagram():
    cell = DARTS_V2_RNN.normal
    g = cell_diagram(cell)
    assert "x<sub>t</sub>" in node_line(g, "in0") and "h<sub>t-1</sub>" in node_line(g, "in1")
    assert "h<sub>t</sub>" in node_line(g, "out") and NODE_COLOR in node_line(g, "n0")
    plain = [EDGE.match(line).group(1, 2) for line in g.body if EDGE.match(line) and "label=" not in line]
    assert sum(1 for line in g.body if EDGE.match(line) and "label=" in line) == 8
    assert sorted(plain) == sorted([("in0", "n0"), ("in1", "n0")] + [(f"n{j}", "out") for j in range(1, 9)])


def varied_56_op_cell() -> CellGenotype:
    """Every edge of a conv cell with its own op set, 56 ops: edge e holds ``sizes[e]`` consecutive non-zero ops
    (cyclically) from op 3e mod 7, so edges of one size start at different ops and no two sets are equal."""
    sizes = (7, 6, 6, 5, 5, 4, 4, 4, 3, 3, 3, 2, 2, 2)
    edges = [(i, j) for j in range(2, 6) for i in range(j)]
    ops = {edge: [CONV_OPS[1 + (3 * e + t) % 7] for t in range(size)]
           for e, (edge, size) in enumerate(zip(edges, sizes))}
    return CellGenotype("conv", 6, ops, range(2, 6))


def svg_edges(svg: str) -> list[tuple[str, list[str]]]:
    """(title as "src->dst", the label's lines) of every edge group of a Graphviz SVG."""
    groups = re.findall(r'<g id="edge\d+" class="edge">\s*<title>(.*?)</title>(.*?)</g>', svg, re.S)
    return [(html.unescape(t), [html.unescape(x) for x in re.findall(r"<text[^>]*>([^<]*)</text>", body)])
            for t, body in groups]


def test_a_56_op_cell_renders_one_svg_edge_per_connection_with_exactly_its_ops_and_a_title(tmp_path):
    from egs.arch.genotype import Genotype
    from egs.arch.baselines import random_genotype
    cell = varied_56_op_cell()
    assert cell.num_active_ops() == 56 and len({frozenset(ops) for ops in cell.edges.values()}) == 14
    genotype = Genotype(cell, cell, provenance={"M": 7, "rule": "edge", "run_id": "abcdef1234", "seed": 3})
    caption = title(genotype, "normal")
    svg = render_cell(cell, tmp_path / "dense", formats=("svg",), caption=caption)[0].read_text()
    edges = svg_edges(svg)
    searched = [(t, label) for t, label in edges if not t.endswith("->out")]
    assert Counter(t for t, _ in searched) == Counter(f"n{i}->n{j}" for i, j in cell.edges)  # one arrow each
    for t, label in searched:
        i, j = (int(n) for n in re.fullmatch(r"n(\d+)->n(\d+)", t).groups())
        assert label == list(cell.edges[(i, j)]), t  # exactly this edge's ops, nothing from another edge
    assert sorted(e for e in edges if e[0].endswith("->out")) == [(f"n{j}->out", []) for j in range(2, 6)]
    assert caption == "conv normal cell (M = 7, rule = edge, run abcdef12, seed 3)"
    assert f">{html.escape(caption, quote=False)}</text>" in svg
    named = title(DARTS_V2, "reduce")
    assert named.startswith("DARTS_V2, reduction cell (") and "quark0/darts" in named
    assert "random, seed 5" in title(random_genotype("rnn", 5), "normal")


def test_a_declared_recurrent_space_is_titled_and_named_by_its_family(tmp_path):
    from egs.arch.baselines import random_genotype
    from egs.arch.space import declare_space
    declare_space("myrnn", "rnn", ("none", "tanh", "relu"), n_nodes=5, replace=True)
    declare_space("myconv", "conv", ("none", "skip_connect", "max_pool_3x3"), n_nodes=4, replace=True)
    rnn, conv = random_genotype("myrnn", 1), random_genotype("myconv", 1)
    assert title(rnn, "normal").startswith("myrnn recurrent cell (")
    assert title(conv, "reduce").startswith("myconv reduction cell (")
    drawn = sorted(p.name for p in render_genotype(rnn, tmp_path, formats=("svg",)))
    assert drawn == ["recurrent_cell.svg"]
    assert sorted(p.name for p in render_genotype(conv, tmp_path / "c", formats=("svg",))) == [
        "normal_cell.svg", "reduce_cell.svg"]


def test_render_svg_and_png(tmp_path):
    paths = render_cell(multi_op_cell(), tmp_path / "figs" / "normal")
    assert [p.name for p in paths] == ["normal.svg", "normal.png"]
    svg = paths[0].read_text()
    assert "<svg" in svg and svg.count(">sep_conv_3x3<") == 1 and "dil_conv_5x5" in svg
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


def test_egs_draw_published_names_json_files_and_bad_input(tmp_path, capsys):
    """`egs draw NAME|GENOTYPE.json|RUN_DIR`: conv and recurrent published cells by name, a JSON file, a clear error."""
    from egs.cli.main import main
    from egs.arch.genotype import save_genotype
    from egs.arch.published import PUBLISHED
    assert main(["draw", "DARTS_V2", "--out", str(tmp_path / "a")]) == 0
    assert main(["draw", "DARTS_V2_RNN", "--out", str(tmp_path / "a")]) == 0
    drawn = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert drawn == ["DARTS_V2_RNN_recurrent_cell.png", "DARTS_V2_RNN_recurrent_cell.svg", "DARTS_V2_normal_cell.png",
                     "DARTS_V2_normal_cell.svg", "DARTS_V2_reduce_cell.png", "DARTS_V2_reduce_cell.svg"]
    assert "DARTS_V2" in (tmp_path / "a" / "DARTS_V2_normal_cell.svg").read_text()  # titled by its name
    save_genotype(PUBLISHED["DATA_M7"], tmp_path / "mine.json")
    assert main(["draw", str(tmp_path / "mine.json"), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b" / "mine_normal_cell.png").is_file() and (tmp_path / "b" / "mine_reduce_cell.svg").is_file()
    capsys.readouterr()
    assert main(["draw", "NOT_A_CELL", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'NOT_A_CELL' is neither a published name (DARTS_V1, " in err


def test_egs_draw_a_search_run_directory_titles_its_cells_from_the_run(tmp_path, capsys):
    """`egs draw RUN_DIR` draws the run's genotype.json (what a finished search writes), titled with M, rule, run."""
    from egs.cli.main import main
    from egs.arch.genotype import Genotype, save_genotype
    from egs.arch.baselines import random_genotype
    run = tmp_path / "search-conv-smoke"
    prov = {"space": "conv", "M": 7, "lam": 0.5, "rule": "node", "effectiveness": "softmax", "run_id": "0123456789ab",
            "seed": 2, "search_run": str(run), "epochs": 1}
    genotype = Genotype(*random_genotype("conv", 4).cells().values(), provenance=prov)
    save_genotype(genotype, run / "genotype.json")
    assert main(["draw", str(run), "--out", str(tmp_path / "drawn")]) == 0
    printed = capsys.readouterr().out.splitlines()
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert drawn == ["normal_cell.png", "normal_cell.svg", "reduce_cell.png", "reduce_cell.svg"]
    assert printed == [f"drawn {tmp_path / 'drawn' / name}" for name in
                       ("normal_cell.svg", "normal_cell.png", "reduce_cell.svg", "reduce_cell.png")]
    svg = (tmp_path / "drawn" / "reduce_cell.svg").read_text()
    assert ">conv reduction cell (M = 7, rule = node, run 01234567, seed 2)</text>" in svg
    searched = [(t, label) for t, label in svg_edges(svg) if not t.endswith("->out")]
    expected = {f"n{i}->n{j}": list(ops) for (i, j), ops in genotype.reduce.edges.items()}
    assert len(searched) == len(expected) and dict(searched) == expected
    assert main(["draw", str(tmp_path / "drawn"), "--out", str(tmp_path / "x")]) == 2  # no genotype.json there
    assert "holds no genotype.json" in capsys.readouterr().err


def test_a_node_no_op_reaches_is_drawn_empty_with_a_pale_dashed_arrow_to_the_output():
    import dataclasses
    cell = dataclasses.replace(DARTS_V2.normal, edges={e: ops for e, ops in DARTS_V2.normal.edges.items() if e[1] != 3})
    lines = cell_diagram(cell).source.splitlines()
    assert any(line.strip().startswith('n3 [label="3\\n(empty)"') and "style=dashed" in line for line in lines)
    assert any("n3 -> out" in line and "style=dashed" in line for line in lines)
    assert not any("empty" in line for line in cell_diagram(DARTS_V2.normal).source.splitlines())
