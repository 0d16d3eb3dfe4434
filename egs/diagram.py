"""Graphviz drawings of a cell genotype in the style of Figure 3 of Chang et al. (2019).

Inputs are green (c_{k-2}, c_{k-1} for conv cells; x_{t}, h_{t-1} for the recurrent cell), the
output is yellow (c_{k} / h_{t}), intermediate nodes are light blue and carry their genotype node
number. Every active op is one labelled arrow, so an edge with several ops (Eq. 1-2) shows
parallel arrows; plain arrows join the ``concat`` nodes to the output. In the recurrent cell,
x_{t} and h_{t-1} feed node 0 through fixed (unsearched) plain arrows.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import graphviz

from egs.errors import EGSError
from egs.files import write_bytes
from egs.genotype import CellGenotype

INPUT_COLOR, OUTPUT_COLOR, NODE_COLOR = "darkseagreen2", "palegoldenrod", "lightblue"
_INSTALL_HINT = "install Graphviz: `apt-get install graphviz` (or `conda install graphviz`)"


def _node_id(n: int) -> str:
    return f"n{n}"


def cell_diagram(cell: CellGenotype, name: str = "cell") -> graphviz.Digraph:
    """The graphviz graph of ``cell``: one labelled arrow per active op, left to right."""
    if not isinstance(cell, CellGenotype):
        raise EGSError(f"cell_diagram needs a CellGenotype, got {type(cell).__name__}; pass "
                       "genotype.normal or genotype.reduce.")
    layout = cell.layout
    g = graphviz.Digraph(name, format="svg")
    g.attr(rankdir="LR")
    g.attr("edge", fontsize="20", fontname="helvetica")
    g.attr("node", style="filled", shape="rect", align="center", fontsize="20", height="0.5",
           width="0.5", penwidth="2", fontname="helvetica")
    external = layout.family == "rnn"   # x_t and h_{t-1} are outside the numbered nodes
    for k, label in enumerate(layout.input_labels):
        g.node(f"in{k}" if external else _node_id(k), label, fillcolor=INPUT_COLOR)
    for j in range(0 if external else layout.n_inputs, cell.n_nodes):
        g.node(_node_id(j), str(j), fillcolor=NODE_COLOR)
    if external:
        for k in range(len(layout.input_labels)):
            g.edge(f"in{k}", _node_id(0), color="gray")
    for (i, j), ops in cell.edges.items():
        for op in ops:
            g.edge(_node_id(i), _node_id(j), label=op)
    g.node("out", layout.output_label, fillcolor=OUTPUT_COLOR)
    for j in cell.concat:
        g.edge(_node_id(j), "out", color="gray")
    return g


def _require_dot() -> None:
    if shutil.which("dot") is None:
        raise EGSError(f"the Graphviz `dot` program is not on PATH, so diagrams cannot be rendered; "
                       f"{_INSTALL_HINT}.")


def render_cell(cell: CellGenotype, path_without_suffix: str | os.PathLike,
                formats: Sequence[str] = ("svg", "png")) -> list[Path]:
    """Render ``cell`` to ``<path>.<fmt>`` for each format (atomic writes); return the paths."""
    if isinstance(formats, str):
        formats = (formats,)
    for fmt in formats:
        if fmt not in graphviz.FORMATS:
            raise EGSError(f"format {fmt!r} is not a Graphviz output format; use e.g. 'svg', 'png' or 'pdf'.")
    _require_dot()
    g = cell_diagram(cell)
    base = Path(path_without_suffix)
    written = []
    for fmt in formats:
        try:
            data = g.pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise EGSError(f"the Graphviz `dot` program could not be run; {_INSTALL_HINT}.") from None
        written.append(write_bytes(base.with_name(f"{base.name}.{fmt}"), data))
    return written
