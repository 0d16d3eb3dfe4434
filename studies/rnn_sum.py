"""Recurrent evaluation cells: summed (Eq. 1-2) or averaged? The measurement behind ``egs.rnn.model.EVAL_AVERAGE``.

Eq. 1-2 sum the terms of a multi-op edge and the edges into a node; egs's recurrent evaluation cells
average them instead (egs/rnn/model.py, "Decision (averaging ...)"). This study trains, at the `cpu` training
setting of PTB (`lm_train_ptb`, profile cpu: 100,000 training tokens, embedding/hidden 64, batch 32, SGD
lr 20, gradient clipping 0.25, variable-length BPTT), for at most ``STEPS`` steps:

* three random cells of the ``node`` rule with the paper's M = 4 (seeds 1000-1002, the random cells of
  notebook 05), and DARTS_V2's recurrent cell (one edge per node: the same cell either way),

each once with ``RNNModel(..., average=False)`` (summed, as Eq. 1-2 write) and once averaged (the default),
and records the first step whose training loss is NaN or inf (None: none within the steps), the losses
of steps 1, 10 and the last finite one, and the active activations of the cell.

    python studies/rnn_sum.py          # about 2-3 minutes on 2 cores

Results are appended to studies/results/rnn_sum_cpu.jsonl; egs/rnn/model.py and notebook 05 cite them.
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import torch

import egs
import egs.rnn.model
from egs.core.errors import EGSError
from egs.arch.baselines import random_genotype
from egs.arch.published import DARTS_V2_RNN
from egs.rnn.train import LMTrainer
from egs.engine.signals import Interrupted
from egs.engine.runlog import MetricsLog

HERE = Path(__file__).resolve().parent
STEPS = 50
CELLS = {f"random node M=4 seed {s}": random_genotype("rnn", s, style="node", M=4) for s in (1000, 1001, 1002)}
CELLS["DARTS_V2"] = DARTS_V2_RNN


def train(genotype, average: bool, run_dir: Path) -> dict:
    """Up to STEPS training steps of ``genotype``'s language model, summed or averaged; the loss curve's facts."""
    cfg = egs.settings("lm_train_ptb", "cpu", log_every=1, device="cpu")
    egs.rnn.model.EVAL_AVERAGE = average  # read when the evaluation cell is built (RNNModel's average=None)
    start, diverged = time.perf_counter(), None
    try:
        LMTrainer(cfg, genotype, run_dir, progress=False).run(stop_after_steps=STEPS)
    except Interrupted:
        pass
    except EGSError as err:  # the loop stops a run whose training loss is not finite, naming the step
        found = re.search(r"step (\d+) of", str(err))
        if not found:
            raise
        diverged = int(found.group(1))
    finally:
        egs.rnn.model.EVAL_AVERAGE = True
    losses = [r["loss"] for r in MetricsLog(run_dir / "metrics.jsonl").read() if r["type"] == "step"]
    at = lambda step: losses[step - 1] if len(losses) >= step else None  # noqa: E731 - None: not reached finite
    return {"first_nonfinite_step": diverged, "steps_run": diverged or len(losses), "loss_step1": at(1),
            "loss_step10": at(10), "loss_last_finite": losses[-1] if losses else None,
            "seconds": time.perf_counter() - start}


def main() -> list[dict]:
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, genotype in CELLS.items():
            for average in (False, True):
                out = train(genotype, average, Path(tmp) / f"{len(records)}")
                records.append({"cell": name, "cell_function": "average" if average else "sum (Eq. 1-2)",
                                "active_ops": genotype.num_active_ops(), "max_steps": STEPS, **out,
                                "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")})
                print(json.dumps(records[-1]), flush=True)
    return records


if __name__ == "__main__":
    with open(HERE / "results" / "rnn_sum_cpu.jsonl", "a") as f:
        for record in main():
            f.write(json.dumps(record) + "\n")
