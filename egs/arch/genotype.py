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

Files are JSON with ``"schema": "egs.genotype/2"`` (the architecture and its provenance: space, M,
lambda, derivation rule, search run and seed), written atomically; ``egs.genotype/1`` files (no
provenance) are still read.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from egs.core.checks import check_int
from egs.core.errors import EGSError
from egs.core.files import JSONFileError, parse_json, read_json, write_text
from egs.arch.space import ZERO, Edge, SearchSpace, check_n_nodes, check_op, get_space

SCHEMA = "egs.genotype/2"
READABLE_SCHEMAS = ("egs.genotype/1", SCHEMA)  # /1 files (no provenance) still read


@dataclass(frozen=True, eq=False)
class CellGenotype:
    """One cell: ``edges[(i, j)]`` is the tuple of active ops on edge i -> j (registry order).

    Args:
        space: the search space's name ("conv", "rnn" or a declared one, :func:`egs.arch.space.declare_space`).
        n_nodes: numbered nodes, inputs included (conv: 6 = 2 inputs + 4 intermediates; rnn: 9 = node 0..8).
        edges: ``{(i, j): ops}`` for i < j, j an intermediate node; "none" is dropped, empty edges absent.
        concat: the intermediate nodes the output combines (concatenated, or averaged for rnn).
    """

    space: str
    n_nodes: int
    edges: Mapping[Edge, tuple[str, ...]]
    concat: tuple[int, ...]

    def __post_init__(self) -> None:
        layout = get_space(self.space)
        n = check_n_nodes(self.n_nodes, layout)  # bounded before anything is built from it
        if not isinstance(self.edges, Mapping):
            raise EGSError(f"edges must map (i, j) pairs to op names, got {type(self.edges).__name__}.")
        clean: dict[Edge, tuple[str, ...]] = {}
        for key, names in self.edges.items():
            i, j = self._check_edge(key, n, layout.n_inputs)
            if isinstance(names, (str, Mapping)) or not isinstance(names, Iterable):
                raise EGSError(f"ops of edge ({i}, {j}) must be a list or set of op names, got {names!r}.")
            names = [check_op(name, self.space) for name in names]
            twice = sorted(name for name, n in Counter(names).items() if n > 1)  # linear: a hostile list can be long
            if twice:
                raise EGSError(f"edge ({i}, {j}) lists {', '.join(twice)} more than once; an op is on an edge or "
                               "not, so list each op once.")
            active = set(names) - {ZERO}
            if active:
                clean[(i, j)] = tuple(op for op in get_space(self.space).ops if op in active)
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
    def layout(self) -> SearchSpace:
        """The :class:`egs.arch.space.SearchSpace` of the cell (inputs, labels, op list)."""
        return get_space(self.space)

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
                f"output = {self.layout.output}{list(self.concat)}")
        lines = [f"  {i} -> {j}: {' + '.join(ops)}" for (i, j), ops in self.edges.items()]
        return "\n".join([head, *lines])

    def to_dict(self) -> dict[str, Any]:
        """The cell as JSON-ready data (edges as ``{from, to, ops}`` objects)."""
        return {"space": self.space, "n_nodes": self.n_nodes,
                "edges": [{"from": i, "to": j, "ops": list(ops)} for (i, j), ops in self.edges.items()],
                "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, data: object) -> CellGenotype:
        """The cell of :meth:`to_dict`'s ``data``; malformed data raises one EGSError naming the value."""
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
    """A full architecture: one cell per cell type of its space (conv: normal and reduction cells;
    recurrent: one cell, ``reduce=None``), and where it came from.

    ``provenance`` (not part of equality) records how it was made: for a searched genotype the
    space, M, lambda, derivation rule, the search run's id and seed (see :meth:`with_provenance`);
    for a published one its name and source.
    """

    normal: CellGenotype
    reduce: CellGenotype | None = None
    provenance: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.normal, CellGenotype):
            raise EGSError(f"normal must be a CellGenotype, got {self.normal!r}; every genotype has a normal cell.")
        space = self.normal.layout
        if len(space.cell_types) == 2:
            if not isinstance(self.reduce, CellGenotype) or self.reduce.space != self.normal.space:
                raise EGSError(f"a {space.name} genotype needs a {space.name} reduction cell, got reduce={self.reduce!r}.")
        elif self.reduce is not None:
            raise EGSError(f"a {self.normal.space} genotype has no reduction cell; pass reduce=None.")
        if self.provenance is not None:
            if not isinstance(self.provenance, Mapping) or not all(isinstance(k, str) for k in self.provenance):
                raise EGSError(f"provenance must map names to values, got {self.provenance!r}.")
            object.__setattr__(self, "provenance", dict(self.provenance))

    @property
    def space(self) -> str:
        """The search space's name (that of its cells)."""
        return self.normal.space

    def with_provenance(self, **fields: Any) -> Genotype:
        """This architecture with ``fields`` added to its provenance (e.g. M=7, rule="node", run_id=...)."""
        return Genotype(self.normal, self.reduce, {**(self.provenance or {}), **fields})

    def cells(self) -> dict[str, CellGenotype]:
        """The cells by name: {"normal": ..., "reduce": ...} (no "reduce" for rnn)."""
        return {"normal": self.normal} | ({} if self.reduce is None else {"reduce": self.reduce})

    def num_active_ops(self) -> int:
        """Active (non-zero) ops over all cells."""
        return sum(cell.num_active_ops() for cell in self.cells().values())

    def __str__(self) -> str:
        return "\n".join(f"{name}: {cell}" for name, cell in self.cells().items())

    def to_dict(self) -> dict[str, Any]:
        """The genotype as JSON-ready data (schema egs.genotype/2, with its provenance)."""
        return {"schema": SCHEMA, "provenance": None if self.provenance is None else dict(self.provenance),
                "normal": self.normal.to_dict(), "reduce": None if self.reduce is None else self.reduce.to_dict()}

    def to_json(self) -> str:
        """JSON text with one line per edge (readable in diffs)."""
        def cell(c: CellGenotype | None) -> str:
            if c is None:
                return "null"
            d = c.to_dict()
            edges = ",\n".join(f"      {json.dumps(e)}" for e in d.pop("edges"))
            return f"{json.dumps(d)[:-1]},\n    \"edges\": [\n{edges}\n    ]}}"
        provenance = json.dumps(None if self.provenance is None else dict(self.provenance), sort_keys=True)
        return (f'{{\n  "schema": {json.dumps(SCHEMA)},\n  "provenance": {provenance},\n'
                f'  "normal": {cell(self.normal)},\n  "reduce": {cell(self.reduce)}\n}}\n')

    @classmethod
    def from_dict(cls, data: object) -> Genotype:
        """The genotype of :meth:`to_dict`'s ``data`` (schema /1 or /2); malformed data raises one EGSError."""
        if not isinstance(data, dict):
            raise EGSError(f"a genotype must be a JSON object, got {type(data).__name__}.")
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise EGSError(f"schema {schema!r} is not supported: this file must declare "
                           f'"schema": "{SCHEMA}" (write it with egs.arch.genotype.save_genotype).')
        _check_keys({k: v for k, v in data.items() if k != "provenance" or schema != SCHEMA},
                    {"schema", "normal", "reduce"}, "genotype")  # /2 may add a provenance
        cells = {}
        for name in ("normal", "reduce"):
            try:
                cells[name] = None if data[name] is None else CellGenotype.from_dict(data[name])
            except EGSError as err:
                raise EGSError(f"{name} cell: {err}") from None
        return cls(**cells, provenance=data.get("provenance"))

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<string>") -> Genotype:
        """Parse JSON text; every error (not UTF-8, malformed or too deeply nested JSON, a wrong value) is one
        EGSError naming ``source`` (a file path) and the offending value."""
        return _genotype_of(lambda: parse_json(text, source, _WHAT), source)


_WHAT = "genotype JSON file"
MAX_GENOTYPE_BYTES = 4 * 2**20  # the largest cell allowed (MAX_NODES nodes, every op on every edge) is far less


def _genotype_of(read: Callable[[], Any], source: str) -> Genotype:
    """The genotype of the JSON value ``read()`` returns; one EGSError naming ``source`` for any fault in it."""
    try:
        data = read()
    except JSONFileError as err:
        raise EGSError(f"{err}; fix the file or write it again with egs.arch.genotype.save_genotype.") from None
    try:
        return Genotype.from_dict(data)
    except EGSError as err:
        raise EGSError(f"{source}: {err}") from None


def save_genotype(genotype: Genotype, path: str | os.PathLike) -> Path:
    """Write ``genotype`` as JSON (schema egs.genotype/2, with its provenance) to ``path``, atomically."""
    return write_text(path, genotype.to_json())


def load_genotype(path: str | os.PathLike) -> Genotype:
    """Read the genotype JSON file at ``path``; any fault in it (unreadable, not UTF-8, malformed, a wrong value)
    raises one EGSError naming the file and the value."""
    path = Path(path)
    try:
        return _genotype_of(lambda: read_json(path, _WHAT, MAX_GENOTYPE_BYTES), str(path))
    except OSError as err:
        raise EGSError(f"cannot read genotype file {str(path)!r} ({err.strerror or err}); check the path.") from None
