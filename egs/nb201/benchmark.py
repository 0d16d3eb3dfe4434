"""NAS-Bench-201's ground truth: the 200-epoch accuracies of all 15,625 cells of its space (Dong & Yang, ICLR 2020).

The table is read from two public CSV exports of the benchmark (``egs data fetch nas-bench-201``; what each column
is: ``../shared/data/nas-bench-201/README.md``), both in the benchmark's index order:

* ``cifar10_valid``: the "cifar10-valid" setting's validation accuracy (trained on 25,000 CIFAR-10 training
  images, validated on the other 25,000; mean of 3 seeds), the column a search's choices may be made on;
* ``cifar10_test``, ``cifar100_test``, ``imagenet16_test``: the test accuracies of the "cifar10" (all 50,000
  training images), CIFAR-100 and ImageNet16-120 settings (NATS-Bench's topology space, the same cells).

A cell is named by its architecture string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node j's ops from nodes
0..j-1, the order of :meth:`egs.arch.space.SearchSpace.edges`); :func:`arch_string` and :func:`genotype_from_string`
convert it to and from an nb201 :class:`egs.arch.genotype.Genotype` (an edge whose op is ``none`` is absent there).
"""
from __future__ import annotations

import csv
import os
import re
from bisect import bisect_left
from pathlib import Path

import pandas as pd

from egs.arch.genotype import CellGenotype, Genotype
from egs.arch.space import NB201, ZERO
from egs.core.errors import EGSError
from egs.data.fetch import locate

VALID_FILE, TEST_FILE = "cifar10-valid_200epochs_mean3seeds.csv", "nats-tss_200epochs_test.csv"
COLUMNS = ("cifar10_valid", "cifar10_test", "cifar100_test", "imagenet16_test")
_TEST_COLUMNS = {"cifar10_test": "CIFAR10TestAccuracy200Epochs", "cifar100_test": "CIFAR100TestAccuracy200Epochs",
                 "imagenet16_test": "ImageNetTestAccuracy200Epochs"}
_NODE = re.compile(r"\|([a-z0-9_]+)~(\d+)")
_CACHE: dict[Path, tuple[pd.DataFrame, dict[str, int], dict[str, list[float]]]] = {}


def arch_string(cell: Genotype | CellGenotype) -> str:
    """The benchmark's architecture string of an nb201 genotype (or its cell); one op per edge."""
    cell = cell.normal if isinstance(cell, Genotype) else cell
    if not isinstance(cell, CellGenotype) or cell.space != NB201.name or cell.n_nodes != NB201.n_nodes:
        what = f"a {cell.n_nodes}-node {cell.space} cell" if isinstance(cell, CellGenotype) else type(cell).__name__
        raise EGSError(f"NAS-Bench-201 holds 4-node nb201 cells, got {what}; derive a cell of the nb201 space.")
    nodes = []
    for j in range(1, NB201.n_nodes):
        ops = []
        for i in range(j):
            on = cell.edges.get((i, j), ())
            if len(on) > 1:
                raise EGSError(f"edge ({i}, {j}) holds {len(on)} ops ({', '.join(on)}); a NAS-Bench-201 cell has one "
                               "op per edge (derive it with rule='argmax').")
            ops.append(f"{on[0] if on else ZERO}~{i}")
        nodes.append("|" + "|".join(ops) + "|")
    return "+".join(nodes)


def genotype_from_string(text: str) -> Genotype:
    """The nb201 genotype of an architecture string (``|nor_conv_3x3~0|+|...|``)."""
    parts = text.split("+") if isinstance(text, str) else []
    found = [_NODE.findall(p) for p in parts]
    expected = [[str(i) for i in range(j)] for j in range(1, NB201.n_nodes)]
    if len(parts) != 3 or [[src for _, src in node] for node in found] != expected or \
            any(p != "|" + "|".join(f"{op}~{src}" for op, src in node) + "|" for p, node in zip(parts, found)):
        raise EGSError(f"{text!r} is not a NAS-Bench-201 architecture string; write it as "
                       "|op~0|+|op~0|op~1|+|op~0|op~1|op~2| with one op per edge.")
    edges = {}
    for j, node in enumerate(found, 1):
        for op, src in node:
            if op not in NB201.ops:
                raise EGSError(f"unknown NAS-Bench-201 operation {op!r} in {text!r}: valid names are "
                               f"{', '.join(NB201.ops)}.")
            if op != ZERO:
                edges[(int(src), j)] = (op,)
    cell = CellGenotype(NB201.name, NB201.n_nodes, edges, NB201.concat())
    return Genotype(cell, provenance={"space": NB201.name, "source": "NAS-Bench-201", "arch": text})


def _load(root: str | os.PathLike | None) -> tuple[pd.DataFrame, dict[str, int], dict[str, list[float]]]:
    folder = locate("nas-bench-201", root)
    if folder not in _CACHE:
        try:
            with open(folder / VALID_FILE, newline="") as f:
                valid = list(csv.DictReader(f))
            with open(folder / TEST_FILE, newline="") as f:
                test = list(csv.DictReader(f))
            rows = [{"index": int(v["index"]), "arch": v["arch_str"], "cifar10_valid": float(v["valid-accuracy"]),
                     **{k: float(t[c]) for k, c in _TEST_COLUMNS.items()}}
                    for v, t in zip(valid, test, strict=True) if v["arch_str"] == t["ArchitectureString"]]
        except (OSError, KeyError, ValueError, UnicodeDecodeError) as err:
            raise EGSError(f"the NAS-Bench-201 table in {folder} cannot be read ({type(err).__name__}: {err}); "
                           "fetch it again with `egs data fetch nas-bench-201 --force`.") from None
        if len(rows) != len(valid) or [r["index"] for r in rows] != list(range(len(rows))) or len(rows) != 5 ** 6:
            raise EGSError(f"the NAS-Bench-201 files in {folder} do not hold the 15,625 cells in the benchmark's order "
                           "with the same architecture in both; fetch them again with `egs data fetch nas-bench-201 "
                           "--force`.")
        table = pd.DataFrame(rows)
        _CACHE[folder] = (table, {a: i for i, a in enumerate(table.arch)},
                          {c: sorted(table[c]) for c in COLUMNS})
    return _CACHE[folder]


def table(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """All 15,625 cells: ``index``, ``arch`` and the accuracies (%) of :data:`COLUMNS` (a copy; loaded once)."""
    return _load(root)[0].copy()


def lookup(cell: Genotype | CellGenotype | str, root: str | os.PathLike | None = None) -> dict:
    """The benchmark's record of ``cell`` (a genotype or an architecture string): ``index``, ``arch`` and the four
    accuracies (%) of :data:`COLUMNS`."""
    text = cell if isinstance(cell, str) else arch_string(cell)
    if isinstance(cell, str):
        genotype_from_string(text)  # one clear error for a string outside the space
    frame, where, _ = _load(root)
    row = frame.iloc[where[text]]
    return {"index": int(row["index"]), "arch": text, **{c: float(row[c]) for c in COLUMNS}}


def percentile(value: float, column: str = "cifar10_test", root: str | os.PathLike | None = None) -> float:
    """The percentage of the space's cells whose ``column`` accuracy is below ``value``."""
    if column not in COLUMNS:
        raise EGSError(f"column={column!r} is not a benchmark column; use one of {', '.join(COLUMNS)}.")
    ranked = _load(root)[2][column]
    return 100.0 * bisect_left(ranked, float(value)) / len(ranked)
