"""Best-of-N selection as DARTS did it: every candidate cell trained briefly from scratch, the best on validation kept.

DARTS (Liu et al., 2019, Sec. 3.3) ran its search 4 times with different seeds and picked the best cell by its
validation performance after a short training from scratch; its random search baseline drew random cells and picked
among them the same way. The paper (Sec. 4) "find[s] the best cells according to their validation performance" and
"always inherits" DARTS's settings, so the `paper` profile does the same: the candidates' short trainings
(``select_cifar`` / ``select_ptb`` settings: a held-out validation slice, the test set never read for the choice)
are independent runs (:mod:`egs.repro.fanout`), the lowest validation error (conv) or perplexity (rnn) wins, ties
to the first candidate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from egs.arch.genotype import Genotype
from egs.core.errors import EGSError
from egs.repro.fanout import RunSpec, run_all

SCORES = {"cifar10": "val_top1_err", "ptb": "val_ppl", "wikitext2": "val_ppl"}  # what each selection minimises


def slug(label: str) -> str:
    """A run directory name for a candidate's label."""
    return "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_")


def selection_runs(candidates: Mapping[str, Genotype], cfg: Any, root: str | Path) -> dict[str, RunSpec]:
    """The short training of every candidate (label -> genotype) with settings ``cfg``, under ``root``."""
    return {label: RunSpec(cfg, Path(root) / slug(label), g) for label, g in candidates.items()}


def select(candidates: Mapping[str, Genotype], cfg: Any, root: str | Path, executor: str | None = None,
           options: Mapping[str, Any] | None = None) -> tuple[str, dict[str, float]]:
    """The label of the best candidate after its short training, and every candidate's validation score."""
    dataset = getattr(cfg, "dataset", None) or getattr(cfg, "corpus", None)
    score = SCORES.get(dataset)
    if score is None or not candidates:
        raise EGSError(f"cannot select among {len(candidates)} candidate(s) on {dataset!r}: selection needs "
                       f"candidates and one of {', '.join(SCORES)}.")
    if score == "val_top1_err" and not getattr(cfg, "val_size", 0):
        raise EGSError(f"selection settings with val_size={cfg.val_size}: the choice must be made on a held-out "
                       "validation slice, never on test; give val_size > 0.")
    summaries = run_all(selection_runs(candidates, cfg, root), executor, options)
    scores = {label: float(s[score]) for label, s in summaries.items()}
    return min(scores, key=scores.__getitem__), scores
