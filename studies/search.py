"""Search study: does the `cpu` CIFAR-10 search learn, and which of the paper's and the authors' choices
make its logits move?

For each candidate setting, one search of the `cpu` sizes is run and recorded: the signal-to-noise
ratio of alpha's gradient per step (egs.method.diagnostics.gradient_snr, at the start and at the end), the
mean per-edge entropy of the effectiveness credit h in units of log K (1 = uniform; the target is a
fall of at least 0.1), the largest |alpha|, and the search-val accuracy (shared weights) of the derived
cell against that of the cell the same rule derives at alpha = 0.

    python studies/search.py C1 C3        # settings by name (see SETTINGS), or "all"

Results are appended to studies/results/search_cpu.jsonl; notebook 02 shows them as the evidence for
the `cpu` profile's choices and checks the chosen setting on its own searches.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import egs
from egs.method.diagnostics import gradient_snr
from egs.conv.search import Search

HERE = Path(__file__).resolve().parent
SIZES = dict(image_size=16, C=8, layers=5, train_size=5000, val_size=2000, batch_size=64, epochs=4)
SETTINGS = {
    "C1": dict(lam=0.5, arch_lr=3e-3),                          # the paper's lambda, the old cpu arch lr
    "C2": dict(lam=1.0, arch_lr=3e-3),                          # efficiency credit off
    "C3": dict(lam=1.0, arch_lr=3e-2),                          # ... and 10x the arch lr
    "C4": dict(lam=0.5, arch_lr=3e-2),                          # the paper's lambda, 10x arch lr
    "C5": dict(lam=1.0, arch_lr=3e-2, effectiveness="relu", arch_reg=0.1, arch_weight_decay=0.0),  # the authors'
    "C6": dict(lam=1.0, arch_lr=3e-2, arch_weight_decay=0.0, mode="bilevel"),  # C10 with alternating updates
    "C7": dict(lam=1.0, arch_lr=3e-2, arch_weight_decay=0.0, tau_schedule="linear", tau_start=2.0, tau_end=0.5),  # C10, tau 2 -> 0.5
    "C8": dict(lam=1.0, arch_lr=3e-2, arch_reg=0.1),            # softmax credit with the authors' regulariser
    "C9": dict(lam=1.0, arch_lr=3e-3, effectiveness="relu", arch_reg=0.1, arch_weight_decay=0.0),  # authors, lr 3e-3
    "C10": dict(lam=1.0, arch_lr=3e-2, arch_weight_decay=0.0),  # no weight decay on alpha (the authors' 0)
    "C11": dict(lam=0.5, arch_lr=3e-2, arch_weight_decay=0.0),  # ... with the paper's lambda
    "C12": dict(lam=0.5, arch_lr=3e-3, arch_weight_decay=0.0),  # ... at the top of the usual arch lr range
}
# The second search seed under C7, and M = 1 (one draw per node: its logits move slowest) searched 2x and 3x as long.
SETTINGS |= {
    "C7s1": {**SETTINGS["C7"], "seed": 1},
    "C10M1": {**SETTINGS["C10"], "M": 1, "epochs": 8},
    "C10M1L": {**SETTINGS["C10"], "M": 1, "epochs": 12},
    "C7M1": {**SETTINGS["C7"], "M": 1, "epochs": 8},
}


def run(name: str, root: Path) -> dict:
    # Every setting is the paper's method (the `paper` profile) at the cpu sizes, changed only where it says.
    cfg = egs.settings("search", "paper", device="cpu", log_every=25, **{**SIZES, **SETTINGS[name]})
    start = time.perf_counter()
    search = Search(cfg, root / name, progress=False)
    snr_start = gradient_snr(search, 16)
    summary = search.run()
    snr_end = gradient_snr(search, 16)
    return {"setting": name, **SETTINGS[name], "M": cfg.M, "seed": cfg.seed, "steps": cfg.epochs * (cfg.train_size // cfg.batch_size),
            "entropy_h_end": summary["entropy_h"], "max_abs_alpha": max(float(a.detach().abs().max()) for a in search.model.arch_parameters()),
            "val_acc_derived": summary["final_val_acc"], "val_acc_alpha0": summary["final_val_acc_alpha0"],
            "derived_ops": summary["derived_ops"], "params_eval_M": summary["params_derived_eval_size"] / 1e6,
            "snr_start": snr_start, "snr_end": snr_end, "seconds": time.perf_counter() - start,
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    names = sys.argv[1:]
    names = list(SETTINGS) if names in ([], ["all"]) else names
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            record = run(name, Path(tmp))
            print(json.dumps(record), flush=True)
            with open(HERE / "results" / "search_cpu.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
