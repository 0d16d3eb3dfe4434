"""How well a NAS-Bench-201 supernet ranks cells: its shared-weight search-val accuracy of benchmark cells.

A weight-sharing search can only find good cells if its supernet ranks them roughly as training them would. The
benchmark gives the truth for every cell, so the supernet's ranking is measured directly: cells drawn evenly from
the deciles of the benchmark's ``cifar10_valid`` accuracy (:func:`decile_cells`), each scored with the supernet's
shared weights on the run's search-val images (:func:`shared_weight_accuracies`, batch statistics as the search's
own evaluation); Kendall's tau between the two (:func:`egs.repro.stats.kendall_tau`) is the notebook's measure.
"""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from egs.arch.genotype import Genotype
from egs.conv.search import evaluate
from egs.core.checks import check_int
from egs.engine.runs import open_search_run
from egs.nb201.benchmark import genotype_from_string


def decile_cells(table: pd.DataFrame, n: int = 64, seed: int = 0, column: str = "cifar10_valid") -> pd.DataFrame:
    """``n`` cells of the benchmark ``table`` drawn evenly from the ten deciles of ``column`` (``n // 10`` from
    each, one more from the first ``n % 10``), seeded; rows of the table, ordered by ``column``."""
    n = check_int(n, "n", 10, "at least one cell per decile")
    ranked = table.sort_values([column, "index"]).reset_index(drop=True)
    rng, rows = random.Random(seed), []
    for d in range(10):
        lo, hi = d * len(ranked) // 10, (d + 1) * len(ranked) // 10
        rows += rng.sample(range(lo, hi), n // 10 + (d < n % 10))
    return ranked.iloc[sorted(rows)].reset_index(drop=True)


def shared_weight_accuracies(run_dir: str | Path, cells: list[str] | list[Genotype], data_root=None) -> list[float]:
    """Search-val accuracy of each of ``cells`` (architecture strings or genotypes) with the shared weights of
    the NAS-Bench-201 search run in ``run_dir`` (its latest checkpoint), on all of the run's search-val images."""
    cfg, loop, _ = open_search_run(run_dir)
    run = loop(cfg, run_dir, resume=True, data_root=data_root, progress=False)
    try:
        genotypes = [genotype_from_string(c) if isinstance(c, str) else c for c in cells]
        return [evaluate(run.model, run.val, run.model.genotype_codes(g), run.dist)[1] for g in genotypes]
    finally:
        run.close()
