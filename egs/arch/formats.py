"""Genotypes in other projects' formats: DARTS's lists of (op, input) pairs, and the authors' per-node lists.

* DARTS (Liu et al., 2019, ``cnn/genotypes.py``, ``rnn/genotypes.py`` of quark0/darts): one flat list of
  (op, input node) pairs per cell, a fixed number per intermediate node; :func:`from_darts`.
* The authors' released code for the later published version of the method, DATA (Chang et al., "DATA:
  Differentiable ArchiTecture Approximation", NeurIPS 2019, github.com/XinbangZhang/DATA-NAS): its
  ``genotypes.py`` writes a multi-op cell as one list per intermediate node, each a list of any length of
  (op, input) pairs; :func:`from_authors` reads it. In its evaluation network (``model_gumbel.py``) every listed
  pair is its own op module and a node sums their outputs, so the converted genotype holds the same op modules
  (hence the same parameter count) in :class:`egs.conv.network.Network`, which sums them too (Eq. 1-2; checked:
  the same logits as the authors' network with the same weights, to 6e-8).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from egs.arch.genotype import CellGenotype, Genotype
from egs.arch.space import Edge, check_op, get_space
from egs.core.checks import check_int
from egs.core.errors import EGSError


def darts_cell(pairs: Iterable, concat: Iterable[int], space: str = "conv") -> CellGenotype:
    """Convert one DARTS cell list of (op, input) pairs.

    conv: entry e feeds node e // 2 + 2 (two entries per intermediate node). rnn: entry e feeds
    node e + 1. An op listed twice on the same edge cannot be a set member and raises EGSError.
    """
    layout = get_space(space)
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


FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _is_pair(item: object) -> bool:
    """True for an (op name, input) pair, the entry of a DARTS-format flat list."""
    return isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)


def _node_edges(k: int, node: object, edges: dict[Edge, set[str]], kind: str) -> None:
    """Add the (op, input) pairs of node list ``k`` (feeding node k + 2) to ``edges``."""
    where = f"{kind} node list {k} (node {k + 2})"
    if _is_pair(node):
        raise EGSError(f"{kind} entry {k} = {node!r} is a single (op, input) pair: this is a DARTS-format "
                       "flat list; read it with egs.arch.formats.from_darts, or give one list of pairs per node.")
    if isinstance(node, (str, bytes)) or not isinstance(node, Sequence) or not node:
        raise EGSError(f"{where} = {node!r} must be a non-empty list of (op, input) pairs.")
    for pair in node:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise EGSError(f"{where}: entry {pair!r} must be an (op, input node) pair.")
        op = check_op(pair[0], "conv")
        src = check_int(pair[1], f"input node of {where}", None)
        if not 0 <= src < k + 2:
            raise EGSError(f"{where}: input {src} of {pair!r} must be an earlier node 0..{k + 1}.")
        if op in edges.setdefault((src, k + 2), set()):
            raise EGSError(f"{where} lists {op!r} twice on edge ({src}, {k + 2}); an egs edge holds a "
                           "set of ops, so each op may appear once per edge.")
        edges[(src, k + 2)].add(op)


def authors_cell(nodes: object, concat: object, kind: str = "normal") -> CellGenotype:
    """Convert one cell in the authors' format: list k holds the (op, input) pairs into node k + 2."""
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence) or not nodes:
        raise EGSError(f"{kind} = {nodes!r} must be a non-empty list with one list of (op, input) pairs "
                       "per intermediate node.")
    edges: dict[Edge, set[str]] = {}
    for k, node in enumerate(nodes):
        _node_edges(k, node, edges, kind)
    try:
        return CellGenotype("conv", len(nodes) + 2, edges, concat)
    except EGSError as err:
        raise EGSError(f"{kind} cell: {err}") from None


def from_authors(genotype: object) -> Genotype:
    """Convert a genotype in DATA-NAS's per-node format into an egs :class:`Genotype`.

    ``genotype`` is a namedtuple, object or dict with fields normal, normal_concat, reduce,
    reduce_concat; normal/reduce hold, per intermediate node k, a list of (op, input) pairs, each
    pair becoming ``op`` on edge (input, k + 2). Bad shapes, a repeated op on one edge and DARTS's
    flat format (use :func:`egs.arch.formats.from_darts`) raise EGSError.
    """
    if isinstance(genotype, Mapping):
        missing = [f for f in FIELDS if f not in genotype]
        values = [genotype.get(f) for f in FIELDS]
    else:
        missing = [f for f in FIELDS if not hasattr(genotype, f)]
        values = [getattr(genotype, f, None) for f in FIELDS]
    if missing:
        raise EGSError(f"cannot read {genotype!r} as an authors' genotype: fields {missing} are missing; "
                       f"pass a namedtuple, object or dict with fields {list(FIELDS)}.")
    normal, normal_concat, reduce, reduce_concat = values
    return Genotype(authors_cell(normal, normal_concat, "normal"),
                    authors_cell(reduce, reduce_concat, "reduce"))


# The two CIFAR-10 cells released with DATA (Chang et al., "DATA: Differentiable ArchiTecture
# Approximation", NeurIPS 2019), copied as data from genotypes.py of github.com/XinbangZhang/DATA-NAS
# (variables Gumbel_model_M4 and Gumbel_model_M7, commit 29691ea). They are DATA's cells, NOT the
# cells of this paper (DARTS-EGS, arXiv 1905.01786), which were never released.
