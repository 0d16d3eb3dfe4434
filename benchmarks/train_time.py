"""Benchmark a `cpu`-protocol training against the same training on another checkout, paired, with a breakdown.

One training = ``egs.conv.train.train`` of a published genotype (DARTS_V2) at the ``cpu`` profile's
``train_cifar`` settings (C = 8, 5 cells, 16 px, 5,000 images, 3 epochs, validation on 2,000 held-out images
after each epoch, the 10,000 test images once at the end), timed from the call to its return in a fresh process
(``import torch`` and the interpreter are outside; everything the call does, data included, is inside).

``--baseline DIR`` is a checkout of the code to compare with (e.g. ``git worktree add /tmp/base COMMIT``); its
``egs`` is imported from DIR, with the same interpreter, data and threads. For each thread count and each seed of
``--seeds`` the two trainings run one after the other in fresh processes (who goes first alternates), so each seed
gives one pair: the table reports the median per-pair speed-up baseline / this checkout with a bootstrap 95 %
interval (``search_step.paired_ratio``), and every seed's test error on both sides (a change that reorders
arithmetic must keep each within 0.3 points; one that only removes overhead must leave them equal).

The breakdown times the training's phases by wrapping the functions that run them (no profiler, no overhead
beyond a clock read per call): ``data`` (``build_data``: loading, subsets, downscaling), ``forward`` (the network
and its loss, ``Trainer._loss``), ``backward`` (``EpochLoop.backward`` without its forward), ``optimizer``
(``EpochLoop.update``: clipping and SGD), ``step other`` (the rest of ``train_step``), ``evaluation``
(``Trainer.evaluate``: validation and test), ``checkpoint`` and ``other`` (model build, run directory, logging).
See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEEDUP_TARGET = 1.5  # baseline / this checkout: the lower end of the interval >= 1.5
PHASES = ("data", "forward", "backward", "optimizer", "step other", "evaluation", "checkpoint", "other")


def _timed(owner: Any, name: str, totals: dict[str, float]) -> None:
    """Wrap ``owner.name`` so that the seconds spent in it add up in ``totals[name]``."""
    fn = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One training of ``spec`` in this process, with the egs of ``spec["root"]``; its time, breakdown and errors."""
    sys.path.insert(0, spec["root"])
    import torch
    torch.set_num_threads(spec["threads"])
    import egs.conv.train as training
    from egs.arch.published import published
    from egs.engine.loop import EpochLoop
    from egs.profiles.experiments import settings
    if not os.path.abspath(training.__file__).startswith(os.path.join(os.path.abspath(spec["root"]), "egs", "")):
        raise SystemExit(f"egs was imported from {training.__file__}, not from {spec['root']}")
    totals: dict[str, float] = {}
    _timed(training, "build_data", totals)
    for owner, name in ((training.Trainer, "_loss"), (training.Trainer, "train_step"), (training.Trainer, "evaluate"),
                        (EpochLoop, "backward"), (EpochLoop, "update"), (EpochLoop, "checkpoint")):
        _timed(owner, name, totals)
    cfg = settings("train_cifar", spec["profile"], seed=spec["seed"])
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        summary = training.train(cfg, published(spec["genotype"]), run_dir, data_root=spec["data"], progress=False)
        total = time.perf_counter() - start
    t = {k: totals.get(k, 0.0) for k in ("build_data", "_loss", "train_step", "evaluate", "backward", "update",
                                         "checkpoint")}
    phases = {"data": t["build_data"], "forward": t["_loss"], "backward": t["backward"] - t["_loss"],
              "optimizer": t["update"], "step other": t["train_step"] - t["backward"] - t["update"],
              "evaluation": t["evaluate"], "checkpoint": t["checkpoint"]}
    phases["other"] = total - sum(phases.values())
    return {"total_s": total, "phases_s": phases, "test_top1_err": summary["test_top1_err"],
            "val_top1_err": summary.get("val_top1_err"), "threads": torch.get_num_threads()}


def _spawn(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"the training of {spec['root']} (seed {spec['seed']}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, threads: int) -> dict[str, Any]:
    """The pairs at ``threads`` threads: one per seed, who goes first alternating."""
    from search_step import paired_ratio  # imports egs: never in a worker, which imports the egs it is given
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    for i, seed in enumerate(args.seeds):
        order = ("baseline", "current") if i % 2 == 0 else ("current", "baseline")
        for side in order:
            root = args.baseline if side == "baseline" else ROOT
            runs[side].append(_spawn({"root": root, "seed": seed, "threads": threads, "genotype": args.genotype,
                                      "data": args.data, "profile": args.profile}) | {"seed": seed})
            print(f"  {threads} thread(s), seed {seed}, {side}: {runs[side][-1]['total_s']:.1f} s", flush=True)
    speedup = paired_ratio([r["total_s"] for r in runs["baseline"]], [r["total_s"] for r in runs["current"]])
    breakdown = {side: {p: statistics.median([r["phases_s"][p] for r in rs]) for p in PHASES} for side, rs in runs.items()}
    return {"threads": threads, "runs": runs, "speedup": speedup, "breakdown": breakdown,
            "verdict": "PASS" if speedup["low"] >= SPEEDUP_TARGET else "MISS"}


def print_result(res: dict[str, Any]) -> None:
    s, b = res["speedup"], res["breakdown"]
    print(f"\n{res['threads']} thread(s): speed-up baseline / current {s['median']:.2f} "
          f"[{s['low']:.2f}, {s['high']:.2f}] "
          f"(target >= {SPEEDUP_TARGET}: {res['verdict']})")
    print(f"  {'phase':<12} {'baseline s':>11} {'current s':>10}")
    for p in PHASES:
        print(f"  {p:<12} {b['baseline'][p]:>11.2f} {b['current'][p]:>10.2f}")
    for base, cur in zip(res["runs"]["baseline"], res["runs"]["current"]):
        print(f"  seed {base['seed']}: test error {100 * base['test_top1_err']:.2f} -> "
              f"{100 * cur['test_top1_err']:.2f} "
              f"(difference {100 * (cur['test_top1_err'] - base['test_top1_err']):+.2f} points)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="a checkout of the code to compare with (git worktree add DIR COMMIT)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU threads (default 1 2)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds, one pair each")
    ap.add_argument("--genotype", default="DARTS_V2", help="a published genotype name (default DARTS_V2)")
    ap.add_argument("--profile", default="cpu", help="the settings' profile (default cpu; smoke: tests the wiring)")
    ap.add_argument("--data", default=None, help="the data dir (default: this checkout's, see `egs data`)")
    ap.add_argument("--json", default=None, help="write every raw number here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is None and not args.baseline:
        ap.error("--baseline DIR is required: a checkout of the code to compare with")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return {}
    sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]
    from egs.data.fetch import data_dir
    args.data = str(data_dir(args.data))
    commit = subprocess.run(["git", "-C", args.baseline, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    results = []
    for threads in args.threads:
        results.append(measure(args, threads))
        print_result(results[-1])
    payload = {"baseline": args.baseline, "baseline_commit": commit, "profile": args.profile,
               "genotype": args.genotype, "seeds": args.seeds, "load_average": os.getloadavg(), "results": results}
    if args.json:
        from search_step import write_json
        write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
