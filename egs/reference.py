"""Published numbers the notebooks print beside measured ones, and the table renderer.

Source. The arXiv v1 text of DARTS-EGS (Chang et al., 2019, arXiv:1905.01786) was not accessible
when this module was written. The rows below are those of its published version by the same
authors, *DATA: Differentiable ArchiTecture Approximation* (Chang et al., NeurIPS 2019), as printed
in its Tables 1-5 (CIFAR-10, ImageNet mobile, PTB, WikiText-2, sensitivity to M); the method rows
are labelled "DATA (M = ...)" there. Where the arXiv tables differ, replace the rows here: every
notebook reads them from this one place.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

SOURCE = "DATA (Chang et al., NeurIPS 2019), published version of DARTS-EGS; arXiv v1 tables not accessible"

# Table 1: CIFAR-10. Columns: test error (%), params (M), search cost (GPU days), #ops, search method.
TABLE1_COLUMNS = ("Architecture", "Test Error (%)", "Params (M)", "Search Cost (GPU days)", "Ops", "Search")
TABLE1 = (
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

# Table 2: ImageNet, mobile setting. Columns as printed (FLOPs = multiply-adds, in millions).
TABLE2_COLUMNS = ("Architecture", "Top-1 (%)", "Top-5 (%)", "Params (M)", "FLOPs (M)", "Search Cost (GPU days)", "Search")
TABLE2 = (
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

# Table 3: PTB. Columns: perplexity valid / test, params (M), search cost (GPU days), #ops, search.
TABLE3_COLUMNS = ("Architecture", "Valid PPL", "Test PPL", "Params (M)", "Search Cost (GPU days)", "Ops", "Search")
TABLE3 = (
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

# Table 4: WikiText-2. Columns: perplexity valid / test, params (M), search cost (GPU days), search.
TABLE4_COLUMNS = ("Architecture", "Valid PPL", "Test PPL", "Params (M)", "Search Cost (GPU days)", "Search")
TABLE4 = (
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

# Table 5: sensitivity to the number of sampling times M on CIFAR-10.
TABLE5_COLUMNS = ("M", "Test Error (%)", "Params (M)")
TABLE5 = tuple((str(m), e, p) for m, e, p in zip(
    range(1, 10),
    ("2.94", "2.95", "2.78", "2.70", "2.72", "2.60", "2.59", "2.50", "2.45"),
    ("2.54", "2.68", "2.71", "3.24", "3.41", "3.49", "3.44", "3.79", "3.97"),
))

TABLES = {1: (TABLE1_COLUMNS, TABLE1), 2: (TABLE2_COLUMNS, TABLE2), 3: (TABLE3_COLUMNS, TABLE3),
          4: (TABLE4_COLUMNS, TABLE4), 5: (TABLE5_COLUMNS, TABLE5)}


def paper_table(number: int) -> pd.DataFrame:
    """Table ``number`` (1-5) exactly as printed, as strings, with a ``source`` column."""
    columns, rows = TABLES[number]
    frame = pd.DataFrame(list(rows), columns=list(columns))
    frame.insert(0, "source", "paper")
    return frame


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
