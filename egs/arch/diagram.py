"""Graphviz drawings of cell genotypes in the style of Figure 3 of Chang et al. (2019).

Inputs are green (c_{k-2}, c_{k-1} for conv cells; x_t, h_{t-1} for the recurrent cell), the output is
yellow (c_k / h_t), intermediate nodes are light blue and carry their genotype node number. Every
connected pair (i, j) is **one** arrow whose label lists all of the edge's active ops, one per line (an
edge with several ops, Eq. 1-2, reads as one connection, as in the paper's figure); plain grey arrows join
the output's nodes to the output (dashed and pale from an empty node: one that no op reaches, zero, drawn
dashed with "(empty)"), and, in the recurrent cell, x_t and h_{t-1} to node 0 (fixed, not
searched). Node names use real subscripts. A title names the cell and, where the genotype records them,
M, the derivation rule and the run (a published genotype: its name and source). Labels stay legible with
50+ ops: ops on one edge stack in one label instead of one arrow each.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import graphviz

from egs.core.errors import EGSError
from egs.core.files import write_bytes
from egs.arch.genotype import CellGenotype, Genotype
from egs.arch.space import get_space

INPUT_COLOR, OUTPUT_COLOR, NODE_COLOR = "darkseagreen2", "palegoldenrod", "lightblue"
_INSTALL_HINT = "install Graphviz: `apt-get install graphviz` (or `conda install graphviz`), or run `make setup`"
CELL_NAMES = {"normal": "normal cell", "reduce": "reduction cell"}


def _node_id(n: int) -> str:
    return f"n{n}"


def subscript_label(name: str) -> str:
    """A label like ``c_{k-2}`` as Graphviz HTML: c<sub>k-2</sub>."""
    html = re.sub(r"_\{([^}]*)\}", r"<sub>\1</sub>", name.replace("&", "&amp;").replace("<", "&lt;"))
    return f"<{html}>"


def title(genotype_or_cell: Genotype | CellGenotype, kind: str = "normal",
          provenance: Mapping[str, Any] | None = None) -> str:
    """The diagram title: which cell, and M / rule / run, or the published name and source.

    Args:
        genotype_or_cell: the genotype (its provenance titles it) or one of its cells.
        kind: the cell type drawn, "normal" or "reduce" (a recurrent-family space has one, recurrent, cell).
        provenance: overrides the genotype's provenance (None: the genotype's; a cell has none).
    """
    recurrent = get_space(genotype_or_cell.space).family == "rnn"  # the family, not the name: declared spaces too
    cell_name = "recurrent cell" if recurrent else CELL_NAMES.get(kind, f"{kind} cell")
    prov = dict(provenance or (genotype_or_cell.provenance if isinstance(genotype_or_cell, Genotype) else {}) or {})
    if "name" in prov:
        return f"{prov['name']}, {cell_name} ({prov.get('source', 'published')})"
    parts = [f"{k} = {prov[k]}" for k in ("M", "rule") if k in prov]
    if prov.get("source") == "random":
        parts.append(f"random, seed {prov.get('seed')}")
    elif "run_id" in prov:
        parts.append(f"run {prov['run_id'][:8]}, seed {prov.get('seed')}")
    return f"{genotype_or_cell.space} {cell_name}" + (f" ({', '.join(parts)})" if parts else "")


def cell_diagram(cell: CellGenotype, name: str = "cell", caption: str | None = None) -> graphviz.Digraph:
    """The graphviz graph of ``cell``: one arrow per connected (i, j), labelled with its ops, left to right."""
    if not isinstance(cell, CellGenotype):
        raise EGSError(f"cell_diagram needs a CellGenotype, got {type(cell).__name__}; pass "
                       "genotype.normal or genotype.reduce.")
    layout = cell.layout
    g = graphviz.Digraph(name, format="svg")
    g.attr(rankdir="LR", labelloc="t", fontsize="22", fontname="helvetica")
    if caption:
        g.attr(label=caption)
    g.attr("edge", fontsize="16", fontname="helvetica", labelfloat="false", decorate="false")
    g.attr("node", style="filled", shape="rect", align="center", fontsize="20", height="0.5",
           width="0.5", penwidth="2", fontname="helvetica")
    external = layout.family == "rnn"   # x_t and h_{t-1} are outside the numbered nodes
    for k, label in enumerate(layout.input_labels):
        g.node(f"in{k}" if external else _node_id(k), subscript_label(label), fillcolor=INPUT_COLOR)
    fed = {j for _, j in cell.edges} | ({0} if external else set())  # node 0 of the recurrent cell: x_t, h_{t-1}
    empty = [j for j in range(0 if external else layout.n_inputs, cell.n_nodes) if j not in fed]
    for j in range(0 if external else layout.n_inputs, cell.n_nodes):
        if j in empty:  # no op reaches it: it is zero, and adds nothing to the output
            g.node(_node_id(j), f"{j}\\n(empty)", fillcolor="white", style="dashed", color="gray", fontcolor="gray")
        else:
            g.node(_node_id(j), str(j), fillcolor=NODE_COLOR)
    if external:
        for k in range(len(layout.input_labels)):
            g.edge(f"in{k}", _node_id(0), color="gray")
    for (i, j), ops in cell.edges.items():
        g.edge(_node_id(i), _node_id(j), label="\\n".join(ops))  # DOT line breaks: one op per line
    g.node("out", subscript_label(layout.output_label), fillcolor=OUTPUT_COLOR)
    for j in cell.concat:
        g.edge(_node_id(j), "out", **({"color": "lightgray", "style": "dashed"} if j in empty else {"color": "gray"}))
    return g


def _require_dot() -> None:
    if shutil.which("dot") is None:
        raise EGSError(f"the Graphviz `dot` program is not on PATH, so diagrams cannot be rendered; "
                       f"{_INSTALL_HINT}.")


def render_cell(cell: CellGenotype, path_without_suffix: str | os.PathLike,
                formats: Sequence[str] = ("svg", "png"), caption: str | None = None) -> list[Path]:
    """Render ``cell`` (titled ``caption``) to ``<path_without_suffix>.<fmt>`` for each of ``formats`` (atomic
    writes); return the paths."""
    if isinstance(formats, str):
        formats = (formats,)
    for fmt in formats:
        if fmt not in graphviz.FORMATS:
            raise EGSError(f"format {fmt!r} is not a Graphviz output format; use e.g. 'svg', 'png' or 'pdf'.")
    _require_dot()
    g = cell_diagram(cell, caption=caption)
    base = Path(path_without_suffix)
    written = []
    for fmt in formats:
        try:
            data = g.pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise EGSError(f"the Graphviz `dot` program could not be run; {_INSTALL_HINT}.") from None
        written.append(write_bytes(base.with_name(f"{base.name}.{fmt}"), data))
    return written


def render_genotype(genotype: Genotype, folder: str | os.PathLike, stem: str = "",
                    formats: Sequence[str] = ("svg", "png")) -> list[Path]:
    """Every cell of ``genotype``, titled from its provenance, as ``<folder>/<stem><kind>_cell.<fmt>`` for each of
    ``formats`` (kind: normal and reduce, or recurrent)."""
    paths = []
    for kind, cell in genotype.cells().items():
        name = "recurrent" if cell.layout.family == "rnn" else kind
        paths += render_cell(cell, Path(folder) / f"{stem}{name}_cell", formats, caption=title(genotype, kind))
    return paths
