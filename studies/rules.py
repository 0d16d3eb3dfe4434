"""Rules study: which derivation rule, and how many ``select`` candidates and batches, at the `cpu` profile?

For each finished search run given (a copy is made in a temporary folder: the originals are only read):

* **rules**: the cells of the ``node``, ``select`` and ``edge`` rules (:func:`egs.engine.runs.compare_rules`),
  scored with the supernet's shared weights (no training). For recurrent runs this is the issue's criterion
  (the recurrent model's size does not depend on the cell, so the rule rests on search-val perplexity): the
  perplexity on search-val windows held out from ``select``, with a paired interval per pair of rules over
  the held-out windows (mean NLL difference +- 2 standard errors; the windows are consecutive, the hidden
  state carried, so the interval is indicative).
* **select sizing**: ``N = 32`` candidates drawn as ``select`` draws them, each scored on every search-val
  batch (window); for ``n`` candidates and ``k`` batches, the gain of choosing on ``k`` batches (held-out
  score of the chosen candidate minus the mean held-out score of the ``n``, averaged over disjoint groups of
  ``k`` batches and random subsets of ``n``), against the gain of an oracle that chooses on the held-out
  batches themselves, and the seconds per candidate-batch.

    python studies/rules.py RUN_DIR [RUN_DIR ...]     # e.g. results/cpu/runs/05_ptb/search

Results are appended to studies/results/rules_cpu.jsonl; egs/profiles/experiments.py cites them for the `cpu` values of
``select_candidates``/``select_batches`` and for the recurrent default rule, and notebook 05 repeats the rule
comparison on its own search.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from egs.data.corpus import get_batch
from egs.engine.search import batch_statistics
from egs.engine.runs import compare_rules, open_search_run
from egs.arch.space import get_space

HERE = Path(__file__).resolve().parent
CANDIDATES, NS, KS, SUBSETS = 32, (4, 8, 16, 32), (1, 2, 4, 8), 200


@torch.no_grad()
def batch_scores(run, codes) -> list[float]:
    """The ``select`` score of ``codes`` per search-val batch: minus the mean NLL per token of each BPTT window
    (hidden state carried from zero, as :meth:`egs.rnn.search.RNNSearch.score`), or each image batch's accuracy."""
    m, out = run.model, []
    with batch_statistics(m):
        if get_space(run.cfg.space).family == "rnn":
            data, bptt = run.data.val, run.cfg.bptt
            hidden = m.init_hidden(data.shape[1])
            for i in range(0, len(data) - 1, bptt):
                x, y = get_batch(data, i, bptt)
                logp, hidden = m(x, hidden, codes=codes)
                out.append(-F.nll_loss(logp.reshape(-1, logp.shape[-1]), y.reshape(-1)).item())
        else:
            for x, y in run.val.batches(0):
                out.append((m(x, codes=codes).argmax(1) == y).float().mean().item())
    return out


def select_sizing(run) -> dict:
    """Gain of ``select`` against (n candidates, k batches), and its cost per candidate-batch (module docstring)."""
    generator = torch.Generator(run.device).manual_seed(run.cfg.seed * 1_000_003 + run.epoch)
    start = time.perf_counter()
    scores = torch.tensor([batch_scores(run, {k: c.detach() for k, c in run.model.sample(generator).items()})
                           for _ in range(CANDIDATES)], dtype=torch.float64)  # (candidates, batches)
    seconds = (time.perf_counter() - start) / scores.numel()
    rng, W = random.Random(0), scores.shape[1]
    table = {}
    for k in (k for k in KS if W // k >= 2):
        groups = [list(range(g * k, (g + 1) * k)) for g in range(W // k)]
        for n in NS:
            gains, oracle = [], []
            for _ in range(SUBSETS if n < CANDIDATES else 1):
                subset = rng.sample(range(CANDIDATES), n)
                for group in groups:
                    rest = [w for w in range(W) if w not in group]
                    held = scores[subset][:, rest].mean(1)
                    chosen = int(scores[subset][:, group].mean(1).argmax())
                    gains.append(float(held[chosen] - held.mean()))
                    oracle.append(float(held.max() - held.mean()))
            table[f"n{n}_k{k}"] = {"gain": sum(gains) / len(gains), "oracle": sum(oracle) / len(oracle)}
    spread = scores.mean(1)
    return {"batches": W, "seconds_per_candidate_batch": seconds, "candidate_score_sd": float(spread.std()),
            "candidate_score_range": [float(spread.min()), float(spread.max())], "gain": table}


def paired(run, rows) -> dict:
    """Per pair of rules: mean held-out NLL difference (first minus second) +- 2 standard errors over windows."""
    skip = run.cfg.select_batches  # the select windows come first; the rest is held out
    per = {r["rule"]: torch.tensor(batch_scores(run, run.model.genotype_codes(r["genotype"]))[skip:]) for r in rows}
    out = {}
    for a, b in (("node", "select"), ("node", "edge"), ("select", "edge")):
        d = -(per[a] - per[b])  # NLL of a minus NLL of b
        out[f"{a}-{b}"] = {"mean": float(d.mean()), "two_se": float(2 * d.std() / math.sqrt(len(d)))}
    return out


def study(source: Path, tmp: Path) -> dict:
    run_dir = Path(shutil.copytree(source, tmp / source.name, ignore=shutil.ignore_patterns(".lock")))
    start = time.perf_counter()
    rows = compare_rules(run_dir)
    cfg, loop, _ = open_search_run(run_dir)
    run = loop(cfg, run_dir, resume=True, progress=False)
    try:
        record = {"run": str(source), "space": cfg.space, "M": cfg.M, "seed": cfg.seed, "epochs": cfg.epochs,
                  "select_candidates": cfg.select_candidates, "select_batches": cfg.select_batches,
                  "rules": [{k: v for k, v in r.items() if k != "genotype"} for r in rows],
                  "paired_nll": paired(run, rows) if get_space(cfg.space).family == "rnn" else None,
                  "select": select_sizing(run)}
    finally:
        run.close()
    return record | {"seconds": time.perf_counter() - start, "threads": torch.get_num_threads(),
                     "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        for name in sys.argv[1:]:
            record = study(Path(name).resolve(), Path(tmp))
            print(json.dumps(record), flush=True)
            with open(HERE / "results" / "rules_cpu.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
