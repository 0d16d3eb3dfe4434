"""Published architectures by name: DARTS's cells (Liu et al., 2019) and the authors' released DATA cells.

Every genotype of :data:`PUBLISHED` carries its name and source as provenance; the lists are kept in their
projects' own formats (:mod:`egs.arch.formats`).
"""
from __future__ import annotations

from egs.arch.formats import from_authors, from_darts
from egs.arch.genotype import Genotype
from egs.core.errors import EGSError

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
_DARTS = "Liu et al., DARTS (ICLR 2019), github.com/quark0/darts"
DARTS_V1 = from_darts(DARTS_V1_CONV_LISTS).with_provenance(name="DARTS_V1", source=f"{_DARTS} cnn/genotypes.py DARTS_V1")
DARTS_V2 = from_darts(DARTS_V2_CONV_LISTS).with_provenance(name="DARTS_V2", source=f"{_DARTS} cnn/genotypes.py DARTS_V2")
DARTS_V1_RNN = from_darts(DARTS_V1_RNN_LISTS).with_provenance(name="DARTS_V1_RNN",
                                                               source=f"{_DARTS} rnn/genotypes.py DARTS_V1")
DARTS_V2_RNN = from_darts(DARTS_V2_RNN_LISTS).with_provenance(name="DARTS_V2_RNN",
                                                               source=f"{_DARTS} rnn/genotypes.py DARTS_V2")

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
