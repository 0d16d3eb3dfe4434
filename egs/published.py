"""Published architectures by name, and the authors' per-node genotype format.

The authors released code only for the later published version of the method, DATA
(Chang et al., "DATA: Differentiable ArchiTecture Approximation", NeurIPS 2019), in
github.com/XinbangZhang/DATA-NAS. Its ``genotypes.py`` writes a multi-op cell as one list per
intermediate node, each a list of any length of (op, input) pairs; :func:`from_authors` reads it.
In its evaluation network (``model_gumbel.py``) every listed pair is its own op module and a node
sums their outputs, so the converted genotype holds the same op modules (hence the same parameter
count) in :class:`egs.cnn.Network`, which sums them too (Eq. 1-2; checked: the same logits as the
authors' network with the same weights, to 6e-8).

Every genotype of :data:`PUBLISHED` carries its name and source as provenance.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from egs.checks import check_int
from egs.errors import EGSError
from egs.genotype import (DARTS_V1, DARTS_V1_RNN, DARTS_V2, DARTS_V2_RNN, CellGenotype, Edge,
                          Genotype)
from egs.space import check_op

FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def _is_pair(item: object) -> bool:
    """True for an (op name, input) pair, the entry of a DARTS-format flat list."""
    return isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)


def _node_edges(k: int, node: object, edges: dict[Edge, set[str]], kind: str) -> None:
    """Add the (op, input) pairs of node list ``k`` (feeding node k + 2) to ``edges``."""
    where = f"{kind} node list {k} (node {k + 2})"
    if _is_pair(node):
        raise EGSError(f"{kind} entry {k} = {node!r} is a single (op, input) pair: this is a DARTS-format "
                       "flat list; read it with egs.genotype.from_darts, or give one list of pairs per node.")
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
    flat format (use :func:`egs.genotype.from_darts`) raise EGSError.
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
DATA_M4_LISTS = dict(
    normal=[[('skip_connect', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1)],
            [('skip_connect', 2), ('skip_connect', 1), ('sep_conv_3x3', 2)],
            [('sep_conv_5x5', 3), ('skip_connect', 3)],
            [('skip_connect', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 2)]], normal_concat=[2, 3, 4, 5],
    reduce=[[('skip_connect', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 1)],
            [('sep_conv_5x5', 0), ('dil_conv_5x5', 2), ('skip_connect', 1)],
            [('max_pool_3x3', 0), ('skip_connect', 2)],
            [('dil_conv_3x3', 1), ('dil_conv_5x5', 1), ('skip_connect', 3)]], reduce_concat=[2, 3, 4, 5])
DATA_M7_LISTS = dict(
    normal=[[('skip_connect', 0), ('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 1)],
            [('skip_connect', 0), ('sep_conv_3x3', 2), ('skip_connect', 1)],
            [('skip_connect', 0), ('dil_conv_3x3', 3), ('skip_connect', 2)],
            [('skip_connect', 1), ('sep_conv_3x3', 2), ('skip_connect', 2)]], normal_concat=[2, 3, 4, 5],
    reduce=[[('sep_conv_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 1)],
            [('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 2)],
            [('dil_conv_3x3', 1), ('skip_connect', 2), ('dil_conv_3x3', 2), ('sep_conv_3x3', 2),
             ('dil_conv_3x3', 3)],
            [('skip_connect', 0), ('sep_conv_3x3', 0)]], reduce_concat=[2, 3, 4, 5])
_DATA = "Chang et al., DATA (NeurIPS 2019), XinbangZhang/DATA-NAS genotypes.py"
DATA_M4 = from_authors(DATA_M4_LISTS).with_provenance(name="DATA_M4", source=f"{_DATA} Gumbel_model_M4")
DATA_M7 = from_authors(DATA_M7_LISTS).with_provenance(name="DATA_M7", source=f"{_DATA} Gumbel_model_M7")

PUBLISHED: dict[str, Genotype] = {g.provenance["name"]: g for g in (DARTS_V1, DARTS_V2, DARTS_V1_RNN, DARTS_V2_RNN,
                                                                    DATA_M4, DATA_M7)}
SOURCES: dict[str, str] = {name: g.provenance["source"] for name, g in PUBLISHED.items()}


def published(name: str) -> Genotype:
    """The published genotype called ``name`` (a key of :data:`PUBLISHED`)."""
    if not isinstance(name, str) or name not in PUBLISHED:
        raise EGSError(f"unknown published genotype {name!r}: known names are {', '.join(PUBLISHED)}.")
    return PUBLISHED[name]
