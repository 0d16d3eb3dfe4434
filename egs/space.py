"""Search spaces: one protocol for conv cells, recurrent cells and the ones you declare.

A :class:`SearchSpace` says everything the rest of the package needs to know about a cell space:
its candidate operations (``"none"``, the zero op, first), how many leading nodes are inputs
(no searched edge enters them), the paper's node count, which cell types share a code (conv:
normal and reduction cells; recurrent: one cell), the network family that builds it (``conv``:
:mod:`egs.cnn`; ``rnn``: :mod:`egs.rnn`), labels for diagrams, and the paper's M. Supernets,
genotypes, the derivation rules (:mod:`egs.derivation`), random baselines, diagrams and the CLI
all dispatch on it, so one code path serves every space.

Edges: every pair ``i < j`` with ``j`` an intermediate node (``n_inputs <= j < n_nodes``), ordered
by target then source (DARTS's order). Node counts exclude the output (the paper's n = 7 conv
nodes are 2 inputs + 4 intermediates + the output; its n = 12 recurrent nodes are x_t, h_{t-1},
node 0, 8 intermediates and h_t, of which egs numbers node 0..8 as DARTS does).

Declaring your own space (no edit of :mod:`egs.ops` needed)::

    egs.declare_space("tiny", family="conv", ops=("none", "skip_connect", "conv_1x1"),
                      builders={"conv_1x1": lambda C, stride, affine: MyConv(C, stride, affine)},
                      n_nodes=4)

Ops of the built-in registry (``egs.ops``) need no builder; new conv ops need a builder
``(C, stride, affine) -> nn.Module`` mapping C channels to C channels at stride 1 or 2, new
recurrent ops an activation ``tensor -> tensor``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from egs.checks import check_choice, check_int
from egs.errors import EGSError

ZERO = "none"
"""Name of the zero operation in every space; it contributes nothing and is never executed sparsely."""

CONV_OPS: tuple[str, ...] = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                             "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
RNN_OPS: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")
FAMILIES = ("conv", "rnn")
Edge = tuple[int, int]


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
    output: str                        # how the output combines the nodes: "concat" or "mean"
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
        """The intermediate nodes the output combines (all of them) of an ``n_nodes``-node cell (inputs
        included; None: the space's)."""
        return tuple(range(self.n_inputs, self.n_nodes if n_nodes is None else n_nodes))

    def op_index(self, name: str) -> int:
        """The position of op ``name`` in :attr:`ops`."""
        return self.ops.index(check_op(name, self.name))


CONV = SearchSpace("conv", "conv", CONV_OPS, 6, 2, ("normal", "reduce"), ("c_{k-2}", "c_{k-1}"), "c_{k}",
                   "concat", 2, 7)
RNN = SearchSpace("rnn", "rnn", RNN_OPS, 9, 1, ("normal",), ("x_{t}", "h_{t-1}"), "h_{t}", "mean", 1, 4)
_SPACES: dict[str, SearchSpace] = {"conv": CONV, "rnn": RNN}
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


def space_ops(space: str | SearchSpace) -> tuple[str, ...]:
    """The ordered operation names of ``space``."""
    return get_space(space).ops


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
        family: "conv" (cells of :mod:`egs.cnn`, two inputs, normal and reduction cells) or "rnn"
            (the recurrent cell of :mod:`egs.rnn`).
        ops: candidate op names, "none" first. Names of the built-in registry need no builder.
        n_nodes: numbered nodes (inputs included; default: the family's, 6 or 9).
        builders: for conv ops that are not built in, ``name -> (C, stride, affine) -> nn.Module``.
        activations: for recurrent ops that are not built in, ``name -> callable(tensor) -> tensor``.
        paper_M: the ensemble size baselines default to (default: the family's, 7 or 4).
        replace: allow re-declaring an existing name (never the built-in "conv"/"rnn").
    """
    base = get_space(check_choice(family, "family", FAMILIES))
    ops = tuple(ops)
    builders, activations = dict(builders or {}), dict(activations or {})
    if not isinstance(name, str) or not name or (name in _SPACES and (not replace or name in FAMILIES)):
        raise EGSError(f"space name {name!r} is taken or empty; choose a new name (or replace=True for your own).")
    if not ops or ops[0] != ZERO or len(set(ops)) != len(ops) or not all(isinstance(o, str) for o in ops):
        raise EGSError(f"ops={list(ops)!r} must be distinct names with {ZERO!r} first.")
    known = set(base.ops) | set(builders if family == "conv" else activations)
    unknown = [o for o in ops if o not in known]
    if unknown:
        what = "builders={name: (C, stride, affine) -> module}" if family == "conv" else "activations={name: fn}"
        raise EGSError(f"ops {unknown} are not built in for {family} cells; give them with {what}.")
    n = base.n_nodes if n_nodes is None else check_int(n_nodes, "n_nodes", base.n_inputs + 1)
    space = SearchSpace(name, family, ops, n, base.n_inputs, base.cell_types, base.input_labels, base.output_label,
                        base.output, base.darts_inputs, base.paper_M if paper_M is None else check_int(paper_M, "paper_M"),
                        MappingProxyType(builders), MappingProxyType(activations))
    _SPACES[name] = space
    return space
