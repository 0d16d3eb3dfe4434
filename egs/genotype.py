"""The discrete architecture: for every edge (i, j) of a cell, the set of active operations.

A binary code ``a(i, j)`` (Chang et al., 2019, Eq. 1-2) may switch on several ops on one edge; a
:class:`CellGenotype` stores the ops whose bit is 1. "none" is dropped from every set (it adds
nothing), and edges left empty are absent. ``n_nodes`` counts numbered nodes (not the output):

* ``conv``: nodes 0, 1 are the inputs (outputs of cells k-2, k-1), 2..n_nodes-1 intermediate;
  every i < j with j >= 2 is an edge (14 for 4 intermediates); output c_k = channel concat of
  ``concat``. The paper's n = 7 counts 2 inputs + 4 intermediates + output.
* ``rnn``: as in DARTS, node 0 is the first intermediate, computed from (x_t, h_{t-1}) outside
  the search; nodes 1..n_nodes-1 take edges from every earlier node; h_t = mean of ``concat``.
  The paper's n = 12 counts x_t, h_{t-1}, node 0, 8 intermediates and h_t.

Files are JSON with ``"schema": "egs.genotype/1"``, written atomically.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from egs.checks import check_int
from egs.errors import EGSError
from egs.files import write_text
from egs.ops import ZERO, check_op, space_ops

SCHEMA = "egs.genotype/1"

Edge = tuple[int, int]


@dataclass(frozen=True)
class CellSpace:
    """Topology conventions of a search space: how many leading nodes are inputs, and labels."""

    name: str
    n_inputs: int                    # leading nodes that receive no searched edge
    default_n_nodes: int             # the paper's cell size, numbered nodes only
    input_labels: tuple[str, ...]    # external inputs, for diagrams
    output_label: str
    darts_inputs: int                # (op, input) pairs per node in a DARTS genotype


CELL_SPACES: dict[str, CellSpace] = {
    "conv": CellSpace("conv", 2, 6, ("c_{k-2}", "c_{k-1}"), "c_{k}", 2),
    "rnn": CellSpace("rnn", 1, 9, ("x_{t}", "h_{t-1}"), "h_{t}", 1),
}


def cell_space(space: str) -> CellSpace:
    """The :class:`CellSpace` of ``space`` ("conv" or "rnn")."""
    space_ops(space)  # one message for an unknown space
    return CELL_SPACES[space]


@dataclass(frozen=True, eq=False)
class CellGenotype:
    """One cell: ``edges[(i, j)]`` is the tuple of active ops on edge i -> j (registry order)."""

    space: str
    n_nodes: int
    edges: Mapping[Edge, tuple[str, ...]]
    concat: tuple[int, ...]

    def __post_init__(self) -> None:
        layout = cell_space(self.space)
        n = check_int(self.n_nodes, "n_nodes", None)
        if n <= layout.n_inputs:
            raise EGSError(f"n_nodes={n} leaves no intermediate node in a {self.space} cell; use "
                           f"n_nodes > {layout.n_inputs} (the paper uses {layout.default_n_nodes}).")
        if not isinstance(self.edges, Mapping):
            raise EGSError(f"edges must map (i, j) pairs to op names, got {type(self.edges).__name__}.")
        clean: dict[Edge, tuple[str, ...]] = {}
        for key, names in self.edges.items():
            i, j = self._check_edge(key, n, layout.n_inputs)
            if isinstance(names, str) or not isinstance(names, Iterable):
                raise EGSError(f"ops of edge ({i}, {j}) must be a list or set of op names, got {names!r}.")
            active = {check_op(name, self.space) for name in names} - {ZERO}
            if active:
                clean[(i, j)] = tuple(op for op in space_ops(self.space) if op in active)
        if isinstance(self.concat, (str, bytes)) or not isinstance(self.concat, Iterable):
            raise EGSError(f"concat={self.concat!r} must be a list of node numbers.")
        raw = [check_int(c, "concat node", None) for c in self.concat]
        concat = tuple(sorted(set(raw)))
        if not concat or len(concat) != len(raw) or any(not layout.n_inputs <= c < n for c in concat):
            raise EGSError(f"concat={raw!r} must list distinct intermediate nodes "
                           f"{layout.n_inputs}..{n - 1} of this {self.space} cell.")
        object.__setattr__(self, "n_nodes", n)
        object.__setattr__(self, "edges", MappingProxyType(dict(sorted(clean.items(),
                                                                      key=lambda e: e[0][::-1]))))
        object.__setattr__(self, "concat", concat)

    @staticmethod
    def _check_edge(key: object, n: int, n_inputs: int) -> Edge:
        if not isinstance(key, tuple) or len(key) != 2:
            raise EGSError(f"edge key {key!r} must be a pair (i, j) of node numbers.")
        i, j = check_int(key[0], "edge source", None), check_int(key[1], "edge target", None)
        if not 0 <= i < j:
            raise EGSError(f"edge ({i}, {j}) is invalid: an edge goes from an earlier node i to a "
                           f"later node j, 0 <= i < j.")
        if not n_inputs <= j < n:
            raise EGSError(f"edge ({i}, {j}) targets node {j}, outside intermediate nodes "
                           f"{n_inputs}..{n - 1}; fix the node number or n_nodes.")
        return i, j

    def __reduce__(self) -> tuple:  # the read-only edge view does not pickle by itself
        return (type(self), (self.space, self.n_nodes, dict(self.edges), self.concat))

    @property
    def layout(self) -> CellSpace:
        return CELL_SPACES[self.space]

    def all_edges(self) -> list[Edge]:
        """Every edge of the search space for this cell size, in (j, i) order."""
        return [(i, j) for j in range(self.layout.n_inputs, self.n_nodes) for i in range(j)]

    def num_active_ops(self) -> int:
        """Total number of active (non-zero) ops over all edges."""
        return sum(len(ops) for ops in self.edges.values())

    def _key(self) -> tuple:
        return (self.space, self.n_nodes, tuple(self.edges.items()), self.concat)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CellGenotype) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"CellGenotype({self.space!r}, {self.n_nodes}, {dict(self.edges)!r}, {self.concat!r})"

    def __str__(self) -> str:
        head = (f"{self.space} cell, {self.n_nodes} nodes, {self.num_active_ops()} active ops, "
                f"output = {'concat' if self.space == 'conv' else 'mean'}{list(self.concat)}")
        lines = [f"  {i} -> {j}: {' + '.join(ops)}" for (i, j), ops in self.edges.items()]
        return "\n".join([head, *lines])

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "n_nodes": self.n_nodes,
                "edges": [{"from": i, "to": j, "ops": list(ops)} for (i, j), ops in self.edges.items()],
                "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, data: object) -> CellGenotype:
        if not isinstance(data, dict):
            raise EGSError(f"a cell must be a JSON object, got {data!r}.")
        _check_keys(data, {"space", "n_nodes", "edges", "concat"}, "cell")
        if not isinstance(data["edges"], list):
            raise EGSError(f"cell edges must be a list of {{from, to, ops}} objects, got {data['edges']!r}.")
        edges: dict[Edge, tuple[str, ...]] = {}
        for item in data["edges"]:
            if not isinstance(item, dict):
                raise EGSError(f"edge {item!r} must be an object with keys from, to, ops.")
            _check_keys(item, {"from", "to", "ops"}, "edge")
            key = (check_int(item["from"], "edge from", None), check_int(item["to"], "edge to", None))
            if key in edges:
                raise EGSError(f"edge {key} is listed twice; list each edge once with all its ops.")
            edges[key] = item["ops"]
        return cls(data["space"], data["n_nodes"], edges, data["concat"])


def _check_keys(data: dict, expected: set[str], what: str) -> None:
    missing, extra = sorted(expected - data.keys()), sorted(data.keys() - expected)
    if missing or extra:
        problem = " and ".join(f"{kind} keys {keys}" for kind, keys in (("missing", missing), ("unknown", extra))
                               if keys)
        raise EGSError(f"{what} has {problem}; a {what} has exactly the keys {sorted(expected)}.")


@dataclass(frozen=True)
class Genotype:
    """A full architecture: a normal and a reduction cell (conv) or one recurrent cell (reduce=None)."""

    normal: CellGenotype
    reduce: CellGenotype | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.normal, CellGenotype):
            raise EGSError(f"normal must be a CellGenotype, got {self.normal!r}; every genotype has a normal cell.")
        if self.normal.space == "conv":
            if not isinstance(self.reduce, CellGenotype) or self.reduce.space != "conv":
                raise EGSError(f"a conv genotype needs a conv reduction cell, got reduce={self.reduce!r}.")
        elif self.reduce is not None:
            raise EGSError(f"a {self.normal.space} genotype has no reduction cell; pass reduce=None.")

    @property
    def space(self) -> str:
        return self.normal.space

    def cells(self) -> dict[str, CellGenotype]:
        """The cells by name: {"normal": ..., "reduce": ...} (no "reduce" for rnn)."""
        return {"normal": self.normal} | ({} if self.reduce is None else {"reduce": self.reduce})

    def num_active_ops(self) -> int:
        return sum(cell.num_active_ops() for cell in self.cells().values())

    def __str__(self) -> str:
        return "\n".join(f"{name}: {cell}" for name, cell in self.cells().items())

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "normal": self.normal.to_dict(),
                "reduce": None if self.reduce is None else self.reduce.to_dict()}

    def to_json(self) -> str:
        """JSON text with one line per edge (readable in diffs)."""
        def cell(c: CellGenotype | None) -> str:
            if c is None:
                return "null"
            d = c.to_dict()
            edges = ",\n".join(f"      {json.dumps(e)}" for e in d.pop("edges"))
            return f"{json.dumps(d)[:-1]},\n    \"edges\": [\n{edges}\n    ]}}"
        return (f'{{\n  "schema": {json.dumps(SCHEMA)},\n  "normal": {cell(self.normal)},\n'
                f'  "reduce": {cell(self.reduce)}\n}}\n')

    @classmethod
    def from_dict(cls, data: object) -> Genotype:
        if not isinstance(data, dict):
            raise EGSError(f"a genotype must be a JSON object, got {type(data).__name__}.")
        if data.get("schema") != SCHEMA:
            raise EGSError(f"schema {data.get('schema')!r} is not supported: this file must declare "
                           f'"schema": "{SCHEMA}" (write it with egs.genotype.save_genotype).')
        _check_keys(data, {"schema", "normal", "reduce"}, "genotype")
        cells = {}
        for name in ("normal", "reduce"):
            try:
                cells[name] = None if data[name] is None else CellGenotype.from_dict(data[name])
            except EGSError as err:
                raise EGSError(f"{name} cell: {err}") from None
        return cls(**cells)

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> Genotype:
        """Parse JSON text; every error names ``source`` (a file path) and the offending value."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise EGSError(f"{source}: malformed JSON ({err}); fix the file or write it again "
                           "with egs.genotype.save_genotype.") from None
        try:
            return cls.from_dict(data)
        except EGSError as err:
            raise EGSError(f"{source}: {err}") from None


def save_genotype(genotype: Genotype, path: str | os.PathLike) -> Path:
    """Write ``genotype`` as JSON (schema egs.genotype/1), atomically."""
    return write_text(path, genotype.to_json())


def load_genotype(path: str | os.PathLike) -> Genotype:
    """Read a genotype JSON file; malformed content raises EGSError naming the file and value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise EGSError(f"cannot read genotype file {str(path)!r} ({err}); check the path.") from None
    return Genotype.from_json(text, source=str(path))


# ---- DARTS genotypes (Liu et al., 2019): lists of (op, input node) pairs ----

def darts_cell(pairs: Iterable, concat: Iterable[int], space: str = "conv") -> CellGenotype:
    """Convert one DARTS cell list of (op, input) pairs.

    conv: entry e feeds node e // 2 + 2 (two entries per intermediate node). rnn: entry e feeds
    node e + 1. An op listed twice on the same edge cannot be a set member and raises EGSError.
    """
    layout = cell_space(space)
    per_node = layout.darts_inputs
    pairs = list(pairs)
    if not pairs or len(pairs) % per_node:
        raise EGSError(f"a DARTS {space} cell needs a non-empty list with {per_node} (op, input) "
                       f"pair(s) per node, got {len(pairs)} entries.")
    edges: dict[Edge, set[str]] = {}
    for e, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise EGSError(f"DARTS entry {e} = {pair!r} must be an (op, input node) pair.")
        op, src = check_op(pair[0], space), check_int(pair[1], f"input node of DARTS entry {e}", None)
        key = (src, e // per_node + layout.n_inputs)
        if op in edges.setdefault(key, set()):
            raise EGSError(f"DARTS entry {e} repeats op {op!r} on edge {key}; an egs edge holds a "
                           "set of ops, so each op may appear once per edge.")
        edges[key].add(op)
    return CellGenotype(space, layout.n_inputs + len(pairs) // per_node, edges, tuple(concat))


def from_darts(genotype: object) -> Genotype:
    """Convert a DARTS genotype: its namedtuple, an object or dict with the same fields, or a tuple.

    Conv fields: normal, normal_concat, reduce, reduce_concat. Recurrent: recurrent, concat.
    """
    conv_fields = ("normal", "normal_concat", "reduce", "reduce_concat")
    for fields in (conv_fields, ("recurrent", "concat")):
        if isinstance(genotype, Mapping) and set(fields) <= genotype.keys():
            values = [genotype[f] for f in fields]
        elif all(hasattr(genotype, f) for f in fields):
            values = [getattr(genotype, f) for f in fields]
        elif isinstance(genotype, (tuple, list)) and len(genotype) == len(fields) \
                and not hasattr(genotype, "_fields"):
            values = list(genotype)
        else:
            continue
        if fields is conv_fields:
            return Genotype(darts_cell(values[0], values[1], "conv"), darts_cell(values[2], values[3], "conv"))
        return Genotype(darts_cell(values[0], values[1], "rnn"))
    raise EGSError(f"cannot read {genotype!r} as a DARTS genotype: pass Genotype(normal, normal_concat, "
                   "reduce, reduce_concat) or Genotype(recurrent, concat), as a namedtuple, dict or tuple.")


# Published DARTS genotypes, as listed in cnn/genotypes.py and rnn/genotypes.py of
# github.com/quark0/darts (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search",
# ICLR 2019). V1 = first-order, V2 = second-order search. Data, kept in DARTS's own format.
DARTS_V1_CONV_LISTS = dict(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    normal_concat=[2, 3, 4, 5], reduce_concat=[2, 3, 4, 5])
DARTS_V2_CONV_LISTS = dict(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    normal_concat=[2, 3, 4, 5], reduce_concat=[2, 3, 4, 5])
DARTS_V1_RNN_LISTS = dict(recurrent=[("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3), ("relu", 4),
                                     ("identity", 1), ("relu", 5), ("relu", 1)], concat=range(1, 9))
DARTS_V2_RNN_LISTS = dict(recurrent=[("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1),
                                     ("tanh", 2), ("sigmoid", 5), ("tanh", 3), ("relu", 5)],
                          concat=range(1, 9))
DARTS_V1 = from_darts(DARTS_V1_CONV_LISTS)
DARTS_V2 = from_darts(DARTS_V2_CONV_LISTS)
DARTS_V1_RNN = from_darts(DARTS_V1_RNN_LISTS)
DARTS_V2_RNN = from_darts(DARTS_V2_RNN_LISTS)


# ---- Random architectures (the random-search baseline) ----

def _random_cell(space: str, n_nodes: int, rng: random.Random, style: str, M: int) -> CellGenotype:
    layout = cell_space(space)
    ops = space_ops(space)
    edges: dict[Edge, list[str]] = {}
    for j in range(layout.n_inputs, n_nodes):
        if style == "egs":
            for i in range(j):
                edges[(i, j)] = [rng.choice(ops) for _ in range(M)]
        else:
            for i in rng.sample(range(j), min(j, layout.darts_inputs)):
                edges[(i, j)] = [rng.choice([op for op in ops if op != ZERO])]
    return CellGenotype(space, n_nodes, edges, range(layout.n_inputs, n_nodes))


def random_genotype(space: str, rng: random.Random | int, n_nodes: int | None = None,
                    style: str = "egs", M: int = 7) -> Genotype:
    """A random architecture of ``space`` for the random-search baseline.

    style="egs": every edge's code is the set of ops hit by M uniform draws over all K ops
    (zero included) -- exactly what Ensemble Gumbel-Softmax samples at alpha = 0 (Definition 1).
    style="darts": every intermediate node takes one uniformly drawn non-zero op from each of
    2 (conv) or 1 (rnn) distinct uniformly drawn predecessors, as in DARTS's random baseline.
    ``rng`` is a random.Random or an integer seed; the same seed gives the same genotype.
    """
    if style not in ("egs", "darts"):
        raise EGSError(f"style={style!r} is unknown: use 'egs' (ensemble codes) or 'darts' (one op "
                       "on each of a fixed number of input edges).")
    check_int(M, "M", 1, "the number of draws per edge")
    n_nodes = cell_space(space).default_n_nodes if n_nodes is None else check_int(n_nodes, "n_nodes", None)
    if not isinstance(rng, random.Random):
        rng = random.Random(check_int(rng, "seed", None))
    cells = [_random_cell(space, n_nodes, rng, style, M) for _ in range(2 if space == "conv" else 1)]
    return Genotype(*cells)
