"""Search spaces: one protocol for conv cells, recurrent cells and the ones you declare.

A :class:`SearchSpace` says everything the rest of the package needs to know about a cell space:
its candidate operations (``"none"``, the zero op, first), how many leading nodes are inputs
(no searched edge enters them), the paper's node count, which cell types share a code (conv:
normal and reduction cells; recurrent: one cell), the network family that builds it (``conv``:
:mod:`egs.conv.network`; ``rnn``: :mod:`egs.rnn.model`), labels for diagrams, and the paper's M. Supernets,
genotypes, the derivation rules (:mod:`egs.method.derivation`), random baselines, diagrams and the CLI
all dispatch on it, so one code path serves every space.

Edges: every pair ``i < j`` with ``j`` an intermediate node (``n_inputs <= j < n_nodes``), ordered
by target then source (DARTS's order). Node counts exclude the output (the paper's n = 7 conv
nodes are 2 inputs + 4 intermediates + the output; its n = 12 recurrent nodes are x_t, h_{t-1},
node 0, 8 intermediates and h_t, of which egs numbers node 0..8 as DARTS does).

Declaring your own space (no edit of :mod:`egs.conv.ops` needed)::

    egs.declare_space("tiny", family="conv", ops=("none", "skip_connect", "conv_1x1"),
                      builders={"conv_1x1": lambda C, stride, affine: MyConv(C, stride, affine)},
                      n_nodes=4)

Ops of the built-in registry (``egs.conv.ops``) need no builder; new conv ops need a builder
``(C, stride, affine) -> nn.Module`` mapping C channels to C channels at stride 1 or 2, new
recurrent ops an activation ``tensor -> tensor``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from egs.core.checks import check_choice, check_int
from egs.core.errors import EGSError

ZERO = "none"
"""Name of the zero operation in every space; it contributes nothing and is never executed sparsely."""

CONV_OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                             "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
RNN_OPS: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
# NAS-Bench-201 (Dong & Yang, ICLR 2020): its own op names and order, as its architecture strings write them
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
Edge = tuple[int, int]
MAX_NODES = 32
"""The most numbered nodes a cell may have (496 edges; the paper's cells have 6 and 9): a bound checked when a
genotype is read or a space declared, before anything is built from the count (edge lists, networks, drawings)."""


@dataclass(frozen=True)
class SearchSpace:
    """A cell search space (see the module docstring); build one with :func:`declare_space`.

    Fields: ``name``, ``family`` ("conv"/"rnn"), ``ops`` ("none" first), ``n_nodes`` (inputs included),
    ``n_inputs``, ``cell_types``, ``input_labels``/``output_label``/``output`` (diagrams, combination),
    ``darts_inputs`` (pairs per node in DARTS's format), ``paper_M``, and ``builders``/``activations``
    for ops that are not built in.
    """

    name: str
    family: str                        # "conv" or "rnn": the network family that builds its cells
    ops: tuple[str, ...]               # candidate ops, "none" first
    n_nodes: int                       # the paper's numbered nodes (inputs + intermediates)
    n_inputs: int                      # leading nodes that receive no searched edge
    cell_types: tuple[str, ...]        # cell types with their own code: ("normal", "reduce") or ("normal",)
    input_labels: tuple[str, ...]      # external inputs, for diagrams (LaTeX-free, with subscripts as _{...})
    output_label: str
    output: str                        # how the output combines the nodes: "concat", "mean" or "last" (the last node)
    darts_inputs: int                  # (op, input) pairs per node in a DARTS genotype
    paper_M: int                       # the paper's ensemble size for this space
    builders: Mapping[str, Callable[..., Any]] = field(default_factory=dict)  # new conv ops
    activations: Mapping[str, Callable[..., Any]] = field(default_factory=dict)  # new recurrent ops

    @property
    def K(self) -> int:
        """The number of candidate ops."""
        return len(self.ops)

    def edges(self, n_nodes: int | None = None) -> list[Edge]:
        """Every searched edge (i, j), by target then source, of an ``n_nodes``-node cell (inputs included;
        None: the space's)."""
        n = self.n_nodes if n_nodes is None else n_nodes
        return [(i, j) for j in range(self.n_inputs, n) for i in range(j)]

    def node_edges(self, n_nodes: int | None = None) -> list[tuple[int, list[int]]]:
        """Per intermediate node j, the indices (into :meth:`edges`) of its incoming edges, for ``n_nodes``
        numbered nodes (inputs included; None: the space's)."""
        n = self.n_nodes if n_nodes is None else n_nodes
        out, start = [], 0
        for j in range(self.n_inputs, n):
            out.append((j, list(range(start, start + j))))
            start += j
        return out

    def concat(self, n_nodes: int | None = None) -> tuple[int, ...]:
        """The intermediate nodes the output combines (all of them; "last": the last one) of an ``n_nodes``-node cell (inputs
        included; None: the space's)."""
        n = self.n_nodes if n_nodes is None else n_nodes
        return (n - 1,) if self.output == "last" else tuple(range(self.n_inputs, n))

    def op_index(self, name: str) -> int:
        """The position of op ``name`` in :attr:`ops`."""
        return self.ops.index(check_op(name, self.name))


CONV = SearchSpace("conv", "conv", CONV_OPS, 6, 2, ("normal", "reduce"), ("c_{k-2}", "c_{k-1}"), "c_{k}",
                   "concat", 2, 7)
RNN = SearchSpace("rnn", "rnn", RNN_OPS, 9, 1, ("normal",), ("x_{t}", "h_{t-1}"), "h_{t}", "mean", 1, 4)
# NAS-Bench-201's cell: node 0 is the cell's input, nodes 1..3 sum every earlier node's edge op, the output is node 3;
# one op per edge (its benchmark holds every one of the 5^6 cells); M has no paper value here (chosen by a study).
NB201 = SearchSpace("nb201", "nb201", NB201_OPS, 4, 1, ("normal",), ("x_{in}",), "x_{out}", "last", 1, 4)
_SPACES: dict[str, SearchSpace] = {"conv": CONV, "rnn": RNN, "nb201": NB201}
SPACES = MappingProxyType(_SPACES)
"""Every known space by name (read-only view; add yours with :func:`declare_space`)."""


def get_space(space: str | SearchSpace) -> SearchSpace:
    """The :class:`SearchSpace` named ``space`` (a space passes through)."""
    if isinstance(space, SearchSpace):
        return space
    try:
        return _SPACES[space]
    except (KeyError, TypeError):
        raise EGSError(f"unknown search space {space!r}: use one of {sorted(_SPACES)}, or declare yours with "
                       "egs.declare_space(...).") from None


def register_space(space: SearchSpace, replace: bool = False) -> SearchSpace:
    """Add ``space`` to the known spaces under its name (the same object again is a no-op). A family's base space
    (name = family) is registered with its family (:func:`egs.families.register_family`); declare the spaces of
    your own op sets with :func:`declare_space`."""
    if not isinstance(space, SearchSpace):
        raise EGSError(f"register_space takes a SearchSpace, got {type(space).__name__}.")
    if _SPACES.get(space.name, space) is not space and not replace:
        raise EGSError(f"space name {space.name!r} is taken; choose a new name (or replace=True for your own).")
    _SPACES[space.name] = space
    return space


def base_spaces() -> dict[str, SearchSpace]:
    """The base space of every family: the spaces named after their own family ("conv", "rnn", ...)."""
    return {name: s for name, s in _SPACES.items() if s.family == name}


def check_n_nodes(value: object, space: str | SearchSpace, what: str = "n_nodes") -> int:
    """``value`` if it is a node count a ``space`` cell can have: at least one intermediate node after the inputs,
    at most :data:`MAX_NODES`; otherwise one EGSError naming the value and the range."""
    s = get_space(space)
    n = check_int(value, what, None)
    if not s.n_inputs < n <= MAX_NODES:
        raise EGSError(f"{what}={n} is not a {s.name} cell size: a cell has {s.n_inputs} input node(s) and 1 to "
                       f"{MAX_NODES - s.n_inputs} intermediate nodes, so use {s.n_inputs + 1} <= {what} <= "
                       f"{MAX_NODES} (the paper's is {s.n_nodes}).")
    return n


def check_op(name: object, space: str | SearchSpace) -> str:
    """Return ``name`` if it is an operation of ``space``; otherwise raise one clear EGSError."""
    s = get_space(space)
    if not isinstance(name, str) or name not in s.ops:
        raise EGSError(f"unknown {s.name} operation {name!r}: valid names are {', '.join(s.ops)}.")
    return name


def declare_space(name: str, family: str, ops: tuple[str, ...] | list[str], *, n_nodes: int | None = None,
                  builders: Mapping[str, Callable[..., Any]] | None = None,
                  activations: Mapping[str, Callable[..., Any]] | None = None, paper_M: int | None = None,
                  replace: bool = False) -> SearchSpace:
    """Register a search space of ``family`` ("conv" or "rnn") with your own op set and node count.

    Args:
        name: the space's name, as genotypes record it.
        family: "conv" (cells of :mod:`egs.conv.network`, two inputs, normal and reduction cells) or "rnn"
            (the recurrent cell of :mod:`egs.rnn.model`).
        ops: candidate op names, "none" first. Names of the built-in registry need no builder.
        n_nodes: numbered nodes (inputs included; default: the family's, 6 or 9).
        builders: for conv ops that are not built in, ``name -> (C, stride, affine) -> nn.Module``.
        activations: for recurrent ops that are not built in, ``name -> callable(tensor) -> tensor``.
        paper_M: the ensemble size baselines default to (default: the family's, 7 or 4).
        replace: allow re-declaring an existing name (never the built-in "conv"/"rnn").
    """
    bases = base_spaces()
    base = bases[check_choice(family, "family", bases)]
    ops = tuple(ops)
    builders, activations = dict(builders or {}), dict(activations or {})
    if not isinstance(name, str) or not name or (name in _SPACES and (not replace or name in bases)):
        raise EGSError(f"space name {name!r} is taken or empty; choose a new name (or replace=True for your own).")
    if not ops or ops[0] != ZERO or len(set(ops)) != len(ops) or not all(isinstance(o, str) for o in ops):
        raise EGSError(f"ops={list(ops)!r} must be distinct names with {ZERO!r} first.")
    known = set(base.ops) | set(builders if family == "conv" else activations)
    unknown = [o for o in ops if o not in known]
    if unknown:
        what = "builders={name: (C, stride, affine) -> module}" if family == "conv" else "activations={name: fn}"
        raise EGSError(f"ops {unknown} are not built in for {family} cells; give them with {what}.")
    n = base.n_nodes if n_nodes is None else check_n_nodes(n_nodes, base)
    space = SearchSpace(name, family, ops, n, base.n_inputs, base.cell_types, base.input_labels, base.output_label,
                        base.output, base.darts_inputs, base.paper_M if paper_M is None else check_int(paper_M, "paper_M"),
                        MappingProxyType(builders), MappingProxyType(activations))
    return register_space(space, replace=True)
