"""NAS-Bench-201 study: which `cpu` search setting finds good cells, judged on the benchmark's cifar10_valid column.

Every setting is the `nb201_search` settings of the `cpu` profile changed only where it says; each is searched with
the listed seeds and its derived cells looked up. Only `cifar10_valid` (the benchmark's validation accuracy) is
recorded: the test columns are read by notebook 08 for its table, never here, so no setting is chosen on them.

    python studies/nb201.py N1 N2        # settings by name (see SETTINGS), or "all"

Records are appended to studies/results/nb201_cpu.jsonl (one line per search).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import egs
from egs.nb201 import benchmark
from egs.nb201.search import nb201_search

HERE = Path(__file__).resolve().parent
SEEDS = (0, 1)
SETTINGS = {
    # the benchmark authors' DARTS configuration at the cpu sizes (arch lr 3e-4, weight decay 1e-3 on alpha)
    "N1": dict(M=4, arch_lr=3e-4),
    "N1d": dict(relaxation="darts", arch_lr=3e-4),
    # the conv study's finding at cpu (studies/search.py C10): 100x the arch lr, no weight decay on alpha
    "N2": dict(M=4, arch_lr=3e-2, arch_weight_decay=0.0),
    "N2d": dict(relaxation="darts", arch_lr=3e-2, arch_weight_decay=0.0),
    "N3": dict(M=4, arch_lr=3e-3, arch_weight_decay=0.0),
    "N3d": dict(relaxation="darts", arch_lr=3e-3, arch_weight_decay=0.0),
    # weights first: alpha frozen for `arch_warmup` epochs (the zero op gets no gradient of its own, so untrained
    # convolutions lose to it early), then the arch lr without weight decay; 8 epochs
    "W1": dict(M=1, arch_lr=3e-3, arch_weight_decay=0.0, arch_warmup=3, epochs=8),
    "W4": dict(M=4, arch_lr=3e-3, arch_weight_decay=0.0, arch_warmup=3, epochs=8),
    "Wd": dict(relaxation="darts", arch_lr=3e-3, arch_weight_decay=0.0, arch_warmup=3, epochs=8),
}


def run(name: str, seed: int, root: Path) -> dict:
    cfg = egs.settings("nb201_search", "cpu", device="cpu", seed=seed, **SETTINGS[name])
    start = time.perf_counter()
    summary = nb201_search(cfg, root / f"{name}_s{seed}", progress=False)
    genotype = egs.load_genotype(summary["genotype"])
    found = benchmark.lookup(genotype)
    return {"setting": name, **SETTINGS[name], "M": cfg.M, "relaxation": cfg.relaxation, "seed": seed,
            "epochs": cfg.epochs, "arch": found["arch"], "cifar10_valid": found["cifar10_valid"],
            "entropy_h_end": summary["entropy_h"], "val_acc_derived": summary["final_val_acc"],
            "seconds": time.perf_counter() - start, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d")}


if __name__ == "__main__":
    names = sys.argv[1:]
    names = list(SETTINGS) if names in ([], ["all"]) else names
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for seed in SEEDS:
                record = run(name, seed, Path(tmp))
                print(json.dumps(record), flush=True)
                with open(HERE / "results" / "nb201_cpu.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
