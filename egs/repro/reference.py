"""Published numbers the notebooks print beside measured ones, and the table renderer.

Source. ``TABLES`` (and everything named "paper" here) holds Tables 1-5 of the paper this project
implements, *Differentiable Architecture Search with Ensemble Gumbel-Softmax* (Chang et al.,
arXiv:1905.01786, 2019), copied cell by cell from its text (``shared/paper/`` beside the checkout):
CIFAR-10 (Table 1), ImageNet in the mobile setting (Table 2), PTB (Table 3), WikiText-2 (Table 4)
and the sensitivity to the number of sampling times M (Table 5). Every cell is the printed string:
numbers keep their printed precision, and dashes, "~" and "×" are kept. Only three things differ
from the printed text, all of them layout:

* row labels drop their citation in parentheses ("PNAS (Liu et al., 2018a)" -> "PNAS") and the
  LaTeX in the method labels is made plain ("DARTS-EGS ( $M = 4$ )" -> "DARTS-EGS (M = 4)");
* two-row headers are flattened into one column name each ("Test Error" over "(%)" ->
  "Test Error (%)"; "Test Error (%)" over "Top 1" -> "Test Error Top-1 (%)"; "Perplexity" over
  "valid" -> "Perplexity valid");
* Table 5, printed transposed (one row per quantity, one column per M), is held one row per M.

The paper contradicts itself between Tables 1 and 5 (see ``NOTES``); both are kept as printed.

A second source, clearly apart: the same authors later published the method as *DATA:
Differentiable ArchiTecture Approximation* (NeurIPS 2019), whose tables have other rows and other
numbers. They are kept in ``DATA_TABLES`` (same structure as ``TABLES``, read by :func:`data_table`)
for comparison only; they are not this paper's numbers and nothing here prints them as such.

Every notebook reads the published rows from this one module.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

SOURCE = ("Differentiable Architecture Search with Ensemble Gumbel-Softmax "
          "(Chang et al., arXiv:1905.01786, 2019), Tables 1-5 as printed")

# The paper's own inconsistencies between Table 1 (the method rows) and Table 5 (sensitivity to M),
# for notebooks to print beside the tables. Both tables are kept exactly as printed.
NOTES = (
    "The paper contradicts itself on M = 4: Table 1 gives DARTS-EGS (M = 4) 3.01 % test error, "
    "Table 5 gives 3.05 % (Table 5's 3.01 is at M = 5); params are 2.6 M in Table 1 and 2.60 M in "
    "Table 5 (same value, other precision).",
    "The paper contradicts itself on M = 7: Table 1 gives DARTS-EGS (M = 7) 2.9 M params, Table 5 "
    "gives 2.79 M (the same digits as its 2.79 % test error, which agrees with Table 1).",
    "Table 5 is printed transposed in the paper (one column per M); it is held here one row per M.",
)

# Table 1: CIFAR-10. Printed header: "Test Error / (%)", "Params / (M)", "Search Cost / (GPU days)".
TABLE1_COLUMNS = ("Architecture", "Test Error (%)", "Params (M)", "Search Cost (GPU days)", "Ops", "Search")
TABLE1 = (
    ("DenseNet-BC", "3.46", "25.6", "-", "-", "manual"),
    ("NASNet-A + cutout", "2.65", "3.3", "2000", "13", "RL"),
    ("BlockQNN", "3.54", "39.8", "96", "8", "RL"),
    ("ENAS + cutout", "2.89", "4.6", "0.5", "6", "RL"),
    ("AmoebaNet-A", "3.34", "3.2", "3150", "19", "evolution"),
    ("AmoebaNet-B + cutout", "2.55", "2.8", "3150", "19", "evolution"),
    ("Hierarchical evolution", "3.75", "15.7", "300", "6", "evolution"),
    ("PNAS", "3.41", "3.2", "225", "8", "SMBO"),
    ("DARTS (1-th order) + cutout", "3.00", "3.3", "1.5", "7", "gradient-based"),
    ("DARTS (2-th order) + cutout", "2.76", "3.3", "4", "7", "gradient-based"),
    ("SNAS + mild + cutout", "2.98", "2.9", "1.5", "-", "gradient-based"),
    ("SNAS + moderate + cutout", "2.85", "2.8", "1.5", "-", "gradient-based"),
    ("SNAS + aggressive + cutout", "3.10", "2.3", "1.5", "-", "gradient-based"),
    ("Random search baseline + cutout", "3.29", "3.2", "4", "7", "random"),
    ("DARTS-EGS (M = 4)", "3.01", "2.6", "1", "7", "gradient-based"),  # Table 5, M = 4: 3.05, 2.60
    ("DARTS-EGS (M = 7)", "2.79", "2.9", "1", "7", "gradient-based"),  # Table 5, M = 7: 2.79, 2.79
)

# Table 2: ImageNet, mobile setting. Printed header: "Test Error (%)" spanning "Top 1" and "Top 5",
# then "Params / (M)", "Search Cost / (GPU days)", "Search". No multiply-add column is printed.
TABLE2_COLUMNS = ("Architecture", "Test Error Top-1 (%)", "Test Error Top-5 (%)", "Params (M)",
                  "Search Cost (GPU days)", "Search")
TABLE2 = (
    ("Inception-v1", "30.2", "10.1", "6.6", "-", "manual"),
    ("MobileNet", "29.4", "10.5", "4.2", "-", "manual"),
    ("ShuffleNet-v1 2×", "26.3", "-", "~5", "-", "manual"),
    ("ShuffleNet-v2 2×", "25.1", "-", "~5", "-", "manual"),
    ("AmoebaNet-A", "25.5", "8.0", "5.1", "3150", "evolution"),
    ("AmoebaNet-B", "26.0", "8.5", "5.3", "3150", "evolution"),
    ("AmoebaNet-C", "24.3", "7.6", "6.4", "3150", "evolution"),
    ("PNAS", "25.8", "8.1", "5.1", "~225", "SMBO"),
    ("DARTS (searched on CIFAR-10)", "26.7", "8.7", "4.7", "4", "gradient-based"),
    ("SNAS (mild constraint)", "27.3", "9.2", "4.3", "1.5", "gradient-based"),
    ("NASNet-A", "26.0", "8.4", "5.3", "2000", "RL"),
    ("NASNet-B", "27.2", "8.7", "5.3", "2000", "RL"),
    ("NASNet-C", "27.5", "9.0", "4.9", "2000", "RL"),
    ("DARTS-EGS (M = 4)", "25.7", "8.5", "4.3", "1.5", "gradient-based"),
    ("DARTS-EGS (M = 7)", "24.9", "8.1", "4.7", "1.5", "gradient-based"),
)

# Table 3: PTB. Printed header: "Perplexity" spanning "valid" and "test", then params (M), search
# cost (GPU days), #ops, search method.
TABLE3_COLUMNS = ("Architecture", "Perplexity valid", "Perplexity test", "Params (M)",
                  "Search Cost (GPU days)", "Ops", "Search")
TABLE3 = (
    ("Variational RHN", "67.9", "65.4", "23", "-", "-", "manual"),
    ("LSTM", "60.7", "58.8", "24", "-", "-", "manual"),
    ("LSTM + skip connections", "60.9", "58.3", "24", "-", "-", "manual"),
    ("LSTM + 15 softmax experts", "58.1", "56.0", "22", "-", "-", "manual"),
    ("DARTS (first order)", "60.2", "57.6", "23", "0.5", "4", "gradient-based"),
    ("DARTS (second order)", "58.1", "55.7", "23", "1", "4", "gradient-based"),
    ("NAS", "-", "64.0", "25", "1e4 CPU days", "4", "RL"),
    ("ENAS", "68.3", "63.1", "24", "0.5", "4", "RL"),
    ("Random search baseline", "61.8", "59.4", "23", "2", "4", "random"),
    ("DARTS-EGS (M = 4)", "58.3", "56.2", "22", "0.5", "4", "gradient-based"),
    ("DARTS-EGS (M = 7)", "57.1", "55.3", "23", "0.5", "4", "gradient-based"),
)

# Table 4: WikiText-2 (WT2). Header as Table 3's, without the #ops column.
TABLE4_COLUMNS = ("Architecture", "Perplexity valid", "Perplexity test", "Params (M)",
                  "Search Cost (GPU days)", "Search")
TABLE4 = (
    ("LSTM + augmented loss", "91.5", "87.0", "28", "-", "manual"),
    ("LSTM + cache pointer", "-", "68.9", "-", "-", "manual"),
    ("LSTM", "69.1", "66.0", "33", "-", "manual"),
    ("LSTM + skip connections", "69.1", "65.9", "24", "-", "manual"),
    ("LSTM + 15 softmax experts", "66.0", "63.3", "33", "-", "manual"),
    ("DARTS (searched on PTB)", "69.5", "66.9", "33", "1", "gradient-based"),
    ("ENAS (searched on PTB)", "72.4", "70.4", "33", "0.5", "RL"),
    ("DARTS-EGS (M = 4)", "67.3", "64.6", "33", "1", "gradient-based"),
    ("DARTS-EGS (M = 7)", "66.5", "64.2", "33", "1", "gradient-based"),
)

# Table 5: sensitivity to the number of sampling times M on CIFAR-10. The paper prints it
# transposed: rows "Number of Sampling Times ( $M$ )", "Test Error (%)", "Params (M)" and one
# column per M = 1..9; it is held here one row per M, which is what the notebooks need.
# As printed, it contradicts Table 1 (see NOTES): M = 4 is 3.05 % / 2.60 M here but 3.01 % / 2.6 M
# there, and M = 7 is 2.79 M params here but 2.9 M there. Both are kept as printed.
TABLE5_COLUMNS = ("M", "Test Error (%)", "Params (M)")
TABLE5 = (
    ("1", "3.38", "2.29"),
    ("2", "3.22", "2.51"),
    ("3", "3.09", "2.56"),
    ("4", "3.05", "2.60"),
    ("5", "3.01", "2.72"),
    ("6", "2.84", "2.84"),
    ("7", "2.79", "2.79"),
    ("8", "2.74", "2.90"),
    ("9", "2.73", "3.02"),
)

TABLES = {1: (TABLE1_COLUMNS, TABLE1), 2: (TABLE2_COLUMNS, TABLE2), 3: (TABLE3_COLUMNS, TABLE3),
          4: (TABLE4_COLUMNS, TABLE4), 5: (TABLE5_COLUMNS, TABLE5)}


# --- Second source, not this paper --------------------------------------------------------------
# DATA (NeurIPS 2019), the same authors' later version of the method, Tables 1-5 as transcribed
# earlier into this module (not checked against this paper's text, which does not hold them).
# Column names follow the ones above; its Table 2 has a multiply-add column ("FLOPs (M)") that
# this paper's Table 2 lacks. Its method rows are labelled "DATA (M = ...)".
DATA_SOURCE = ("DATA: Differentiable ArchiTecture Approximation (Chang et al., NeurIPS 2019), the "
               "authors' later version of the method; a second source, not the arXiv:1905.01786 paper")

DATA_TABLE1 = (
    ("DenseNet-BC", "3.46", "25.6", "-", "-", "manual"),
    ("PNAS", "3.41", "3.2", "225", "8", "SMBO"),
    ("Hierarchical evolution", "3.75", "15.7", "300", "6", "evolution"),
    ("AmoebaNet-A", "3.34", "3.2", "3150", "19", "evolution"),
    ("AmoebaNet-B + cutout", "2.55", "2.8", "3150", "19", "evolution"),
    ("NASNet-A + cutout", "2.65", "3.3", "2000", "13", "RL"),
    ("ENAS + cutout", "2.89", "4.6", "0.5", "6", "RL"),
    ("DARTS (1-th order) + cutout", "3.00", "3.3", "1.5", "7", "gradient-based"),
    ("DARTS (2-th order) + cutout", "2.76", "3.3", "4", "7", "gradient-based"),
    ("SNAS + mild + cutout", "2.98", "2.9", "1.5", "-", "gradient-based"),
    ("SNAS + moderate + cutout", "2.85", "2.8", "1.5", "-", "gradient-based"),
    ("SNAS + aggressive + cutout", "3.10", "2.3", "1.5", "-", "gradient-based"),
    ("Random search baseline + cutout", "3.29", "3.2", "4", "7", "random"),
    ("DATA (M = 4) + cutout", "2.70", "3.2", "1", "7", "gradient-based"),
    ("DATA (M = 7) + cutout", "2.59", "3.4", "1", "7", "gradient-based"),
)

DATA_TABLE2_COLUMNS = ("Architecture", "Test Error Top-1 (%)", "Test Error Top-5 (%)", "Params (M)",
                       "FLOPs (M)", "Search Cost (GPU days)", "Search")
DATA_TABLE2 = (
    ("Inception-v1", "30.2", "10.1", "6.6", "1448", "-", "manual"),
    ("MobileNet", "29.4", "10.5", "4.2", "569", "-", "manual"),
    ("ShuffleNet-v2 2x", "25.1", "-", "~5", "591", "-", "manual"),
    ("PNAS", "25.8", "8.1", "5.1", "588", "~225", "SMBO"),
    ("AmoebaNet-A", "25.5", "8.0", "5.1", "555", "3150", "evolution"),
    ("AmoebaNet-B", "26.0", "8.5", "5.3", "555", "3150", "evolution"),
    ("AmoebaNet-C", "24.3", "7.6", "6.4", "570", "3150", "evolution"),
    ("NASNet-A", "26.0", "8.4", "5.3", "564", "2000", "RL"),
    ("NASNet-B", "27.2", "8.7", "5.3", "488", "2000", "RL"),
    ("NASNet-C", "27.5", "9.0", "4.9", "558", "2000", "RL"),
    ("DARTS (on CIFAR-10)", "26.7", "8.7", "4.7", "574", "4", "gradient-based"),
    ("SNAS (mild constraint)", "27.3", "9.2", "4.3", "522", "1.5", "gradient-based"),
    ("GDAS", "26.0", "8.5", "5.3", "581", "0.21", "gradient-based"),
    ("DATA (M = 4)", "25.5", "8.3", "4.9", "568", "1", "gradient-based"),
    ("DATA (M = 7)", "24.9", "8.0", "5.0", "588", "1", "gradient-based"),
)

DATA_TABLE3 = (
    ("Variational RHN", "67.9", "65.4", "23", "-", "-", "manual"),
    ("LSTM", "60.7", "58.8", "24", "-", "-", "manual"),
    ("LSTM + skip connections", "60.9", "58.3", "24", "-", "-", "manual"),
    ("LSTM + 15 softmax experts", "58.1", "56.0", "22", "-", "-", "manual"),
    ("DARTS (first order)", "60.2", "57.6", "23", "0.5", "4", "gradient-based"),
    ("DARTS (second order)", "58.1", "55.7", "23", "1", "4", "gradient-based"),
    ("ENAS", "68.3", "63.1", "24", "0.5", "4", "RL"),
    ("Random search baseline", "61.8", "59.4", "23", "2", "4", "random"),
    ("DATA (M = 4)", "58.3", "56.2", "23", "0.5", "4", "gradient-based"),
    ("DATA (M = 7)", "57.1", "55.3", "23", "0.5", "4", "gradient-based"),
)

DATA_TABLE4 = (
    ("LSTM + augmented loss", "91.5", "87.0", "28", "-", "manual"),
    ("LSTM + cache pointer", "-", "68.9", "-", "-", "manual"),
    ("LSTM", "69.1", "66.0", "33", "-", "manual"),
    ("LSTM + skip connections", "69.1", "65.9", "24", "-", "manual"),
    ("LSTM + 15 softmax experts", "66.0", "63.3", "33", "-", "manual"),
    ("DARTS (searched on PTB)", "69.5", "66.9", "33", "1", "gradient-based"),
    ("ENAS (searched on PTB)", "72.4", "70.4", "33", "0.5", "RL"),
    ("DATA (M = 4)", "67.3", "64.6", "33", "1", "gradient-based"),
    ("DATA (M = 7)", "66.5", "64.2", "33", "1", "gradient-based"),
)

DATA_TABLE5 = (
    ("1", "2.94", "2.54"),
    ("2", "2.95", "2.68"),
    ("3", "2.78", "2.71"),
    ("4", "2.70", "3.24"),
    ("5", "2.72", "3.41"),
    ("6", "2.60", "3.49"),
    ("7", "2.59", "3.44"),
    ("8", "2.50", "3.79"),
    ("9", "2.45", "3.97"),
)

DATA_TABLES = {1: (TABLE1_COLUMNS, DATA_TABLE1), 2: (DATA_TABLE2_COLUMNS, DATA_TABLE2),
               3: (TABLE3_COLUMNS, DATA_TABLE3), 4: (TABLE4_COLUMNS, DATA_TABLE4),
               5: (TABLE5_COLUMNS, DATA_TABLE5)}


# NAS-Bench-201 (Dong & Yang, ICLR 2020): search results on its space as quoted from its Table by later papers
# (the ReLIZO and TE-NAS papers; the two disagree on RSPS and on GDAS's ImageNet16-120 figure, the alternatives kept),
# mean ± std over 3 searches; GDAS's search ran 240 epochs, the others 50 (the benchmark's configs).
NB201_COLUMNS = ("Method", "CIFAR-10 valid", "CIFAR-10 test", "CIFAR-100 test", "ImageNet16-120 test")
NB201_QUOTED = (
    ("DARTS-V1 / DARTS-V2", "39.77 ± 0.00", "54.30 ± 0.00", "15.61 ± 0.00", "16.32 ± 0.00"),
    ("GDAS (240-epoch search)", "89.89 ± 0.08", "93.61 ± 0.09", "70.70 ± 0.30", "41.71 ± 0.98 (or 41.84 ± 0.90)"),
    ("SETN", "84.04 ± 0.28", "87.64 ± 0.00", "59.05 ± 0.24", "32.52 ± 0.21"),
    ("ENAS", "37.51 ± 3.19", "53.89 ± 0.58 (or 54.30)", "13.96 ± 2.33", "14.84 ± 2.10"),
    ("RSPS", "80.42 ± 3.58", "84.07 ± 3.61 (or 87.66 ± 1.69)", "52.31 ± 5.77", "26.28 ± 3.09"),
)
NB201_SOURCE = ("NAS-Bench-201 (Dong & Yang, ICLR 2020), Table of search results, as quoted by the ReLIZO and TE-NAS "
                "papers (../shared/data/nas-bench-201/README.md)")


def _frame(tables: dict, number: int, source: str) -> pd.DataFrame:
    columns, rows = tables[number]
    frame = pd.DataFrame(list(rows), columns=list(columns))
    frame.insert(0, "source", source)
    return frame


def paper_table(number: int) -> pd.DataFrame:
    """Table ``number`` (1-5) of this paper exactly as printed, as strings, with a ``source`` column."""
    return _frame(TABLES, number, "paper")


def data_table(number: int) -> pd.DataFrame:
    """Table ``number`` (1-5) of the second source, DATA (NeurIPS 2019), as strings, with a
    ``source`` column reading ``DATA (NeurIPS 2019)``; not this paper's numbers."""
    return _frame(DATA_TABLES, number, "DATA (NeurIPS 2019)")


def beside_paper(number: int, measured: Sequence[dict], profile: str) -> pd.DataFrame:
    """The paper's rows, then measured rows (dicts keyed by the table's columns, plus ``run``),
    each labelled ``measured (<profile>)`` and with its run; missing cells are ``-``.

    Keys of the measured rows beyond the table's columns become extra columns before ``run``
    (``-`` in the paper's rows), for quantities the paper does not print.
    """
    columns, _ = TABLES[number]
    extra = list(dict.fromkeys(k for row in measured for k in row if k not in columns and k != "run"))
    rows = [{"source": f"measured ({profile})", **{c: row.get(c, "-") for c in (*columns, *extra)},
             "run": row.get("run", "-")} for row in measured]
    paper = paper_table(number)
    for column in (*extra, "run"):
        paper[column] = "-"
    return pd.concat([paper, pd.DataFrame(rows, columns=list(paper.columns))], ignore_index=True)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    cells = frame.astype(str).values.tolist()
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    return "\n".join([head, rule, *("| " + " | ".join(r) + " |" for r in cells)]) + "\n"
