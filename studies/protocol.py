"""Protocol study: can a `cpu` training setting tell a known-good cell from a known-bad one?

Trains DARTS_V2 (known good) and its twin (the same connections with every op max_pool_3x3 for
CIFAR-10, every activation identity for PTB: nothing to learn in the cell) with 3 seeds each, at
each candidate setting, and records the error (CIFAR-10) or perplexity (PTB) **on a validation
slice held out from the training set** (the test split is not touched), with 95 % t-intervals and
Welch's test. The notebooks (03, 05) show these rows as the evidence for the setting the `cpu`
profile uses, and re-run the chosen one themselves.

    python studies/protocol.py cifar Q4 P1      # settings by name (see SETTINGS), or "all"
    python studies/protocol.py ptb R1

Results are appended to studies/results/protocol_<task>.jsonl, one line per setting.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import egs
from egs.arch.baselines import twin
from egs.arch.published import DARTS_V2, DARTS_V2_RNN
from egs.repro.stats import interval, welch

HERE = Path(__file__).resolve().parent
_FAST = dict(drop_path=0.0, cutout=0)  # short trainings: no drop-path, no cutout
SETTINGS = {
    "cifar": {  # egs.settings("train_cifar", "cpu", ...) overrides; 2,000 validation images held out
        "P1": dict(image_size=16, C=8, layers=5, train_size=5000, epochs=4, lr=0.05, **_FAST),
        "P4": dict(image_size=16, C=8, layers=4, train_size=5000, epochs=5, lr=0.05, **_FAST),
        "P3": dict(image_size=12, C=8, layers=5, train_size=5000, epochs=6, lr=0.05, **_FAST),
        "Q1": dict(image_size=8, C=8, layers=5, train_size=5000, epochs=6, lr=0.05, **_FAST),
        "Q2": dict(image_size=16, C=8, layers=5, train_size=2500, epochs=6, lr=0.05, **_FAST),
        "Q3": dict(image_size=12, C=8, layers=5, train_size=5000, epochs=4, lr=0.1, **_FAST),
        "Q4": dict(image_size=16, C=8, layers=5, train_size=5000, epochs=3, lr=0.08, **_FAST),
    },
    "ptb": {  # egs.settings("lm_train_ptb", "cpu", ...) overrides; validation = PTB valid
        "R0": dict(train_tokens=50_000, emb=64, epochs=3),
        "R1": dict(train_tokens=100_000, emb=64, epochs=3),
        "R2": dict(train_tokens=200_000, emb=128, epochs=2),
        "R3": dict(train_tokens=100_000, emb=128, epochs=3),
    },
}


def run(task: str, name: str, root: Path) -> dict:
    from egs.rnn.train import LMTrainer
    from egs.conv.train import Trainer
    cells = ({"DARTS_V2": DARTS_V2, "twin": twin(DARTS_V2, "max_pool_3x3")} if task == "cifar" else
             {"DARTS_V2": DARTS_V2_RNN, "twin": twin(DARTS_V2_RNN, "identity")})
    values: dict[str, list[float]] = {label: [] for label in cells}
    seconds = []
    for label, genotype in cells.items():
        for seed in range(3):
            start = time.perf_counter()
            if task == "cifar":
                cfg = egs.settings("train_cifar", "cpu", val_size=2000, test_size=1000, seed=seed, device="cpu",
                                   **SETTINGS[task][name])
                values[label].append(100 * Trainer(cfg, genotype, root / name / label / str(seed),
                                                   progress=False).run()["val_top1_err"])
            else:
                cfg = egs.settings("lm_train_ptb", "cpu", seed=seed, device="cpu", **SETTINGS[task][name])
                values[label].append(LMTrainer(cfg, genotype, root / name / label / str(seed),
                                               progress=False).run()["val_ppl"])
            seconds.append(time.perf_counter() - start)
    good, bad = interval(values["DARTS_V2"]), interval(values["twin"])
    return {"task": task, "setting": name, **SETTINGS[task][name], "metric": "val error (%)" if task == "cifar"
            else "val perplexity", "DARTS_V2": good.text(2), "twin": bad.text(2), "separated": not good.overlaps(bad),
            "welch_p": welch(values["twin"], values["DARTS_V2"]).p, "seconds_per_training": sum(seconds) / len(seconds),
            "threads": torch.get_num_threads(), "values": values, "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    task, names = sys.argv[1], sys.argv[2:]
    names = list(SETTINGS[task]) if names in ([], ["all"]) else names
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            record = run(task, name, Path(tmp))
            print(json.dumps(record), flush=True)
            with open(HERE / "results" / f"protocol_{task}.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
