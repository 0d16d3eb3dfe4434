"""Benchmark one search training step: EGS sparse supernet vs its fixed child vs the DARTS dense mixed op.

**Time, paired.** For every (batch, M), one process times EGS and its fixed child alternately, step by
step, on the same sampled codes (and, for dense/EGS, the dense step alternately with EGS), for
``--pairs`` pairs; each pair gives a ratio, and the table reports the median ratio with a bootstrap
95 % interval over the pairs. Alternating in one process cancels the machine's drifts (other load,
frequency scaling) that make sequential timings in separate processes move by 20-40 %.

**Memory, isolated.** Peak memory runs one configuration per freshly spawned process: on CUDA
``torch.cuda.max_memory_allocated``, on CPU the peak resident set (``VmHWM`` from /proc, reset via
/proc/self/clear_refs), as the increase above a baseline taken after warmup. See benchmarks/README.md.

Verdicts use the intervals: a "<=" target passes only when the interval's upper end meets it, a ">="
target only when its lower end does.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import multiprocessing as mp
import os
import random
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

from egs.engine.device import MixedPrecision
from egs.arch.space import CONV_OPS
from egs.method.supernet import active_ops_of
from egs.conv.supernet import Supernet

MB = 2 ** 20
DENSE_OPS_PER_EDGE = len(CONV_OPS) - 1  # the dense step runs every non-zero op on every edge
EGS_OVER_CHILD = (1.05, 1.10)  # EGS(M) / fixed child(M) step time: median <= 1.05, interval's upper end <= 1.10
EGS_MEM_OVER_CHILD = 1.10      # EGS peak memory <= 1.10 x the child's
DENSE_OVER_EGS = {(7, 64): 2.5}  # dense / EGS(M) step time, lower end of the interval, at (M, batch)


@dataclass(frozen=True)
class Config:
    kind: str  # "dense" | "egs" | "child" (memory runs); "pairs" (the paired timing of one M)
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
    dense: bool = False  # pairs: also time the dense step against EGS
    image_size: int = 32  # the cpu profile searches 16 px images

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


def _setup(cfg: Config):
    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)  # same weights and alphas in every config
    model = Supernet(cfg.C, 10, cfg.layers, M=cfg.M).to(device).train()
    precision = MixedPrecision(device, cfg.amp)  # autocast on CUDA with --amp, as the search runs it
    if cfg.amp and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    data = torch.Generator(device=device).manual_seed(cfg.seed)
    x = torch.randn(cfg.batch, 3, cfg.image_size, cfg.image_size, device=device, generator=data)
    y = torch.randint(0, 10, (cfg.batch,), device=device, generator=data)
    return device, model, precision, x, y


def _step(kind: str, model, precision, x, y, codes, device) -> float:
    """One timed step: forward + cross-entropy + backward. EGS runs the real path (the sampler's output,
    straight-through gates, alpha's gradient); the child runs the same codes' ops only; dense every op."""
    model.zero_grad(set_to_none=True)
    _sync(device)
    start = time.perf_counter()
    with precision.autocast():
        if kind == "egs":
            logits = model(x, codes=model.sample(codes))  # ``codes`` is the generator here: a fresh draw
        elif kind == "dense":
            logits = model.forward_dense(x)
        else:
            logits = model.net(x, weights=None, active=codes)
        loss = F.cross_entropy(logits, y)
    precision.scaler.scale(loss).backward()
    _sync(device)
    return time.perf_counter() - start


def run_pairs(cfg: Config) -> dict[str, Any]:
    """EGS and its fixed child timed alternately, step by step, on the same codes (and dense against EGS
    when ``cfg.dense``); ``cfg.warmup`` untimed pairs first. Runs in a fresh process."""
    device, model, precision, x, y = _setup(cfg)
    times: dict[str, list[float]] = {"egs": [], "child": [], "dense": []}
    for i in range(cfg.warmup + cfg.repeats):
        gen = torch.Generator(device=device).manual_seed(cfg.seed + 1 + i)
        with torch.no_grad():  # the codes EGS will draw from the same generator state, for the child
            active = active_ops_of(model.sample(torch.Generator(device=device).manual_seed(cfg.seed + 1 + i)),
                                   model.space)
        order = ("egs", "child") if i % 2 == 0 else ("child", "egs")  # alternate who goes first
        step = {kind: _step(kind, model, precision, x, y, gen if kind == "egs" else active, device) for kind in order}
        if cfg.dense:
            step["dense"] = _step("dense", model, precision, x, y, None, device)
        if i >= cfg.warmup:
            for kind, t in step.items():
                times[kind].append(t)
    ops = [len(o) for cell in active.values() for o in cell]
    return {**asdict(cfg), "name": f"pairs M={cfg.M}", "times_s": times, "active_ops_per_edge": sum(ops) / len(ops)}


def run_memory(cfg: Config) -> dict[str, Any]:
    """Peak memory of ``cfg.repeats`` steps of one config above its post-warmup baseline (a fresh process)."""
    device, model, precision, x, y = _setup(cfg)
    for step in range(cfg.warmup + cfg.repeats):
        if step == cfg.warmup:  # one-time costs (lazy init, kernel caches) land in the baseline
            base, reset = mem_mark(device)
        codes = None
        if cfg.kind == "child":  # the codes EGS draws at this step, from a generator in the same state
            with torch.no_grad():
                codes = active_ops_of(model.sample(torch.Generator(device=device).manual_seed(cfg.seed + 1 + step)),
                                      model.space)
        elif cfg.kind == "egs":
            codes = torch.Generator(device=device).manual_seed(cfg.seed + 1 + step)
        _step(cfg.kind, model, precision, x, y, codes, device)
    raw_peak = mem_peak(device)
    return {**asdict(cfg), "name": cfg.name, "peak_bytes": max(0, raw_peak - base), "raw_peak_bytes": raw_peak,
            "baseline_bytes": base, "peak_mark_reset": reset}


def run_isolated(fn, cfg: Config) -> dict[str, Any]:
    """Run ``fn(cfg)`` in a freshly spawned process (isolated peak memory, clean allocator)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as pool:
        return pool.submit(fn, cfg).result()


def paired_ratio(num: Sequence[float], den: Sequence[float], resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Median of the per-pair ratios num/den with a bootstrap 95 % interval (resampling the pairs)."""
    ratios = [a / b for a, b in zip(num, den)]
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return {"median": statistics.median(ratios), "low": medians[int(0.025 * resamples)],
            "high": medians[int(0.975 * resamples) - 1], "pairs": len(ratios)}


def ratios(pairs: dict[int, dict[str, Any]], memory: dict[str, dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    """Every ratio of one batch size with its interval, target and verdict (None: no target)."""
    out = []
    for M, res in pairs.items():
        t = res["times_s"]
        r = paired_ratio(t["egs"], t["child"])
        out.append({"ratio": f"EGS/child M={M} time", **r, "target": f"<= {EGS_OVER_CHILD[0]:g} (CI <= "
                    f"{EGS_OVER_CHILD[1]:g})", "pass": r["median"] <= EGS_OVER_CHILD[0] and r["high"] <= EGS_OVER_CHILD[1]})
        if t["dense"]:
            r = paired_ratio(t["dense"], t["egs"])
            target = DENSE_OVER_EGS.get((M, batch))
            out.append({"ratio": f"dense/EGS M={M} time", **r, "target": None if target is None else f">= {target:g}",
                        "pass": None if target is None else r["low"] >= target})
        egs, child = memory.get(f"egs M={M}"), memory.get(f"child M={M}")
        if egs and child and child["peak_bytes"] > 0:
            value = egs["peak_bytes"] / child["peak_bytes"]
            out.append({"ratio": f"EGS/child M={M} peak mem", "median": value, "low": None, "high": None,
                        "pairs": None, "target": f"<= {EGS_MEM_OVER_CHILD:g}", "pass": value <= EGS_MEM_OVER_CHILD})
    return out


def print_table(batch: int, pairs: dict[int, dict[str, Any]], memory: dict[str, dict[str, Any]],
                rows: list[dict[str, Any]]) -> None:
    print(f"\nbatch {batch}")
    print(f"  {'config':<12} {'median s':>10} {'peak MB':>10} {'ops/edge':>9}")
    for M, res in pairs.items():
        for kind in ("egs", "child", "dense"):
            if res["times_s"][kind]:
                mem = memory.get("dense" if kind == "dense" else f"{kind} M={M}")
                peak = f"{mem['peak_bytes'] / MB:10.1f}" if mem else f"{'-':>10}"
                ops = DENSE_OPS_PER_EDGE if kind == "dense" else res["active_ops_per_edge"]  # dense runs every op
                print(f"  {kind + (f' M={M}' if kind != 'dense' else ''):<12} "
                      f"{statistics.median(res['times_s'][kind]):>10.4f} {peak} {ops:>9.2f}")
    print(f"  {'ratio':<24} {'median':>7} {'95% CI':>15}  {'target':<20} verdict")
    for row in rows:
        verdict = "-" if row["pass"] is None else ("PASS" if row["pass"] else "MISS")
        ci = f"[{row['low']:.3f}, {row['high']:.3f}]" if row["low"] is not None else "(one run)"
        print(f"  {row['ratio']:<24} {row['median']:>7.3f} {ci:>15}  {row['target'] or '-':<20} {verdict}")


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
    p.add_argument("--image-size", type=int, default=32, help="square input images (the cpu profile: 16)")
    p.add_argument("--Ms", type=int, nargs="+", default=[1, 4, 7])
    p.add_argument("--pairs", type=int, default=20, help="timed EGS/child pairs per M (default 20)")
    p.add_argument("--dense-Ms", type=int, nargs="*", default=[7],
                   help="M values whose pairs also time the dense step (it is slow; default 7)")
    p.add_argument("--repeats", type=int, default=3, help="timed steps of each peak-memory run (default 3)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-memory", action="store_true", help="skip the isolated peak-memory runs")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", action="store_true", help="on CUDA: autocast (bf16, else fp16) and channels_last, "
                   "as search and training run by default there")
    p.add_argument("--json", metavar="OUT", default=None, help="write every raw number to OUT")
    args = p.parse_args(argv)
    args.Ms = list(dict.fromkeys(args.Ms))  # duplicates would collide in the tables
    if args.pairs < 2 or args.repeats < 1 or args.warmup < 0 or min(args.batch_sizes) < 1 or min(args.Ms) < 1:
        p.error("need --pairs >= 2, --repeats >= 1, --warmup >= 0, batch sizes >= 1 and Ms >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda requested but torch.cuda.is_available() is False; use --device cpu")
    return args


def run_batch(batch: int, args: argparse.Namespace, device: str, threads: int) -> dict[str, Any]:
    """The paired timings (one process per M) and the isolated memory runs of one batch size."""
    common = dict(batch=batch, C=args.C, layers=args.layers, device=device, threads=threads, seed=args.seed,
                  amp=args.amp, image_size=args.image_size)
    pairs = {}
    for M in args.Ms:
        print(f"  batch {batch}: timing EGS/child pairs, M={M} ...", file=sys.stderr, flush=True)
        pairs[M] = run_isolated(run_pairs, Config("pairs", M=M, warmup=args.warmup, repeats=args.pairs,
                                                  dense=M in args.dense_Ms, **common))
    memory = {}
    if not args.no_memory:
        kinds = [("dense", 1)] * bool(args.dense_Ms) + [(k, M) for M in args.Ms for k in ("egs", "child")]
        for kind, M in kinds:
            cfg = Config(kind, M=M, warmup=args.warmup, repeats=args.repeats, **common)
            print(f"  batch {batch}: peak memory, {cfg.name} ...", file=sys.stderr, flush=True)
            memory[cfg.name] = run_isolated(run_memory, cfg)
    rows = ratios(pairs, memory, batch)
    print_table(batch, pairs, memory, rows)
    return {"pairs": pairs, "memory": memory, "ratios": rows}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    threads = args.threads or torch.get_num_threads()
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({os.cpu_count()} cores)"
    print(f"device {device}: {name} | torch {torch.__version__} | threads {threads} | C={args.C} "
          f"layers={args.layers} {args.image_size}px Ms={args.Ms} pairs={args.pairs}{' | amp' if args.amp and device == 'cuda' else ''}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device == "cpu" and load + threads > (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f} + {threads} threads > {os.cpu_count()} cores: timings are noisy")
    print("one step = forward + cross-entropy + backward; times are medians over the pairs; ratios are medians "
          "of per-pair ratios with bootstrap 95 % intervals; peak MB = increase over the post-warmup baseline"
          + (" (max_memory_allocated)" if device == "cuda" else " (peak RSS, one process per config)"))
    payload: dict[str, Any] = {"device": device, "device_name": name, "torch": torch.__version__,
                               "threads": threads, "load_average": load, "args": vars(args), "batches": {}}
    for batch in args.batch_sizes:
        payload["batches"][str(batch)] = run_batch(batch, args, device, threads)
    if args.json:
        write_json(args.json, payload)
        print(f"\nraw numbers written to {args.json}")
    return payload


if __name__ == "__main__":
    main()
