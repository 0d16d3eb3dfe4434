"""Benchmark one search training step: EGS sparse supernet vs DARTS dense mixed op vs fixed child.

Every config (dense; EGS and its fixed child for each M) runs in its own spawned process so that
peak memory is isolated: on CUDA ``torch.cuda.max_memory_allocated``, on CPU the peak resident set
(``VmHWM`` from /proc, reset via /proc/self/clear_refs). ``ru_maxrss`` is not used on Linux: a
spawned child inherits its parent's peak through fork+exec, which would hide small configs. Peak
memory is the increase, over the timed steps, above the baseline taken after warmup (model, batch
and one-time library state; weights are identical in every config). See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from egs.cnn import active_ops
from egs.loop import MixedPrecision
from egs.supernet import Supernet

MB = 2 ** 20
EGS_WITHIN_CHILD = 1.15       # EGS(M) step time <= 1.15 x fixed child(M)
SPEEDUP_TARGETS = {1: 5.0, 4: 2.0}  # dense / EGS(M) step time
MEM_M1_OVER_DENSE = 0.25      # peak memory of EGS(M=1) <= 1/4 of dense


@dataclass(frozen=True)
class Config:
    kind: str  # "dense" | "egs" | "child"
    batch: int
    M: int
    C: int
    layers: int
    device: str
    threads: int
    warmup: int
    repeats: int
    seed: int
    amp: bool = False

    @property
    def name(self) -> str:
        return "dense" if self.kind == "dense" else f"{self.kind} M={self.M}"


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def mem_mark(device: torch.device) -> tuple[int, bool]:
    """Start a peak-memory window; return (baseline bytes, whether the peak mark could be reset)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device), True
    gc.collect()
    try:  # hand freed heap back to the OS so the baseline holds only live memory (glibc only)
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        reset = True
    except OSError:
        reset = False
    rss = _status_kb("VmRSS")
    if rss is None:  # not Linux: ru_maxrss (bytes on macOS) is the best available, see README
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, False
    return rss * 1024, reset


def mem_peak(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    hwm = _status_kb("VmHWM")
    return hwm * 1024 if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(cfg: Config) -> dict[str, Any]:
    """Time ``warmup + repeats`` forward+backward steps of one config (runs in a fresh process)."""
    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)  # same weights and alphas in every config
    model = Supernet(cfg.C, 10, cfg.layers, M=cfg.M).to(device).train()
    precision = MixedPrecision(device, cfg.amp)  # autocast on CUDA with --amp, as the search runs it
    if cfg.amp and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    data = torch.Generator(device=device).manual_seed(cfg.seed)
    x = torch.randn(cfg.batch, 3, 32, 32, device=device, generator=data)
    y = torch.randint(0, 10, (cfg.batch,), device=device, generator=data)
    # EGS and child of the same M draw the same code sequence (alphas are never updated here).
    codes_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    times: list[float] = []
    digest = hashlib.sha1()
    n_active: list[float] = []
    for step in range(cfg.warmup + cfg.repeats):
        model.zero_grad(set_to_none=True)
        if step == cfg.warmup:  # one-time costs (lazy init, kernel caches) land in the baseline
            base, reset = mem_mark(device)
        active = None
        if cfg.kind == "child":  # sampling is not part of the child's cost
            with torch.no_grad():
                active = {k: active_ops(c) for k, c in model.sample(codes_gen).items()}
        _sync(device)
        t0 = time.perf_counter()
        if cfg.kind == "egs":
            codes = model.sample(codes_gen)  # sampler + straight-through weights, re-drawn each step
        with precision.autocast():
            if cfg.kind == "egs":
                logits = model(x, codes=codes)
            elif cfg.kind == "dense":
                logits = model.forward_dense(x)
            else:
                logits = model.net(x, weights=None, active=active)
            loss = F.cross_entropy(logits, y)
        precision.scaler.scale(loss).backward()
        _sync(device)
        elapsed = time.perf_counter() - t0
        if cfg.kind == "egs":
            active = {k: active_ops(c) for k, c in codes.items()}
        if step >= cfg.warmup:
            times.append(elapsed)
            if active is not None:
                digest.update(repr(sorted(active.items())).encode())
                edges = [ops for cell in active.values() for ops in cell]
                n_active.append(sum(map(len, edges)) / len(edges))
    raw_peak = mem_peak(device)
    return {**asdict(cfg), "name": cfg.name, "times_s": times, "median_s": statistics.median(times),
            "peak_bytes": max(0, raw_peak - base), "raw_peak_bytes": raw_peak, "baseline_bytes": base,
            "peak_mark_reset": reset, "active_ops_per_edge": statistics.mean(n_active) if n_active else 7.0,
            "codes_sha1": digest.hexdigest() if n_active else None}


def run_isolated(cfg: Config) -> dict[str, Any]:
    """Run one config in a freshly spawned process (isolated peak memory, clean allocator)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as pool:
        return pool.submit(run_config, cfg).result()


def ratios(res: dict[str, dict[str, Any]], Ms: Sequence[int]) -> list[dict[str, Any]]:
    """Speed and memory ratios of one batch size, each with its target and verdict (None: no target)."""
    out = []
    dense = res["dense"]
    for M in Ms:
        egs, child = res[f"egs M={M}"], res[f"child M={M}"]
        target = SPEEDUP_TARGETS.get(M)
        value = dense["median_s"] / egs["median_s"]
        out.append({"ratio": f"dense/EGS M={M} speedup", "value": value,
                    "target": None if target is None else f">= {target:g}x",
                    "pass": None if target is None else value >= target})
        value = egs["median_s"] / child["median_s"]
        out.append({"ratio": f"EGS/child M={M} time", "value": value,
                    "target": f"<= {EGS_WITHIN_CHILD:g}x", "pass": value <= EGS_WITHIN_CHILD,
                    "same_codes": egs["codes_sha1"] == child["codes_sha1"]})
    if 1 in Ms and dense["peak_bytes"] > 0:
        value = res["egs M=1"]["peak_bytes"] / dense["peak_bytes"]
        out.append({"ratio": "EGS M=1 / dense peak mem", "value": value,
                    "target": f"<= {MEM_M1_OVER_DENSE:g}", "pass": value <= MEM_M1_OVER_DENSE})
    return out


def print_table(batch: int, res: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    print(f"\nbatch {batch}")
    print(f"  {'config':<12} {'median s':>10} {'peak MB':>10} {'ops/edge':>9}")
    for r in res.values():
        print(f"  {r['name']:<12} {r['median_s']:>10.4f} {r['peak_bytes'] / MB:>10.1f} "
              f"{r['active_ops_per_edge']:>9.2f}")
    print(f"  {'ratio':<26} {'value':>7}  {'target':<8} verdict")
    for row in rows:
        verdict = "-" if row["pass"] is None else ("PASS" if row["pass"] else "MISS")
        if row.get("same_codes") is False:
            verdict += " (codes differ!)"
        print(f"  {row['ratio']:<26} {row['value']:>7.3f}  {row['target'] or '-':<8} {verdict}")


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Atomic write: temp file in the target directory, then rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--Ms", type=int, nargs="+", default=[1, 4, 7])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", action="store_true", help="on CUDA: autocast (bf16, else fp16) and channels_last, "
                   "as search and training run by default there")
    p.add_argument("--json", metavar="OUT", default=None, help="write every raw number to OUT")
    args = p.parse_args(argv)
    args.Ms = list(dict.fromkeys(args.Ms))  # duplicates would collide in the tables
    if args.repeats < 1 or args.warmup < 0 or min(args.batch_sizes) < 1 or min(args.Ms) < 1:
        p.error("need --repeats >= 1, --warmup >= 0, batch sizes >= 1 and Ms >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda requested but torch.cuda.is_available() is False; use --device cpu")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    threads = args.threads or torch.get_num_threads()
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({os.cpu_count()} cores)"
    print(f"device {device}: {name} | torch {torch.__version__} | threads {threads} | "
          f"C={args.C} layers={args.layers} Ms={args.Ms} warmup={args.warmup} repeats={args.repeats}"
          f"{' | amp' if args.amp and device == 'cuda' else ''}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device == "cpu" and load + threads > (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f} + {threads} threads > {os.cpu_count()} cores: "
              "timings are noisy" + ("; OpenMP oversubscription can slow steps by orders of "
                                     "magnitude, try --threads 1" if threads > 1 else ""))
    print("one step = forward + cross-entropy + backward; peak MB = increase over the post-warmup "
          "baseline" + (" (max_memory_allocated)" if device == "cuda" else " (peak RSS, one process "
          "per config)") + "; ops/edge = mean non-zero ops sampled per edge")
    payload: dict[str, Any] = {"device": device, "device_name": name, "torch": torch.__version__,
                               "threads": threads, "load_average": load, "args": vars(args), "batches": {}}
    for batch in args.batch_sizes:
        common = dict(batch=batch, C=args.C, layers=args.layers, device=device, threads=threads,
                      warmup=args.warmup, repeats=args.repeats, seed=args.seed, amp=args.amp)
        configs = [Config("dense", M=1, **common)]
        configs += [Config(kind, M=M, **common) for M in args.Ms for kind in ("egs", "child")]
        res = {}
        for cfg in configs:
            print(f"  running batch {batch} {cfg.name} ...", file=sys.stderr, flush=True)
            res[cfg.name] = run_isolated(cfg)
        rows = ratios(res, args.Ms)
        print_table(batch, res, rows)
        payload["batches"][str(batch)] = {"configs": res, "ratios": rows}
    if args.json:
        write_json(args.json, payload)
        print(f"\nraw numbers written to {args.json}")
    return payload


if __name__ == "__main__":
    main()
