"""Benchmark egs against the code people would otherwise run: the reference DARTS implementation (quark0/darts).

The peer's search network (``cnn/model_search.py``: ``Network``, its dense mixed op with all 8 ops, "none"
included) and evaluation network (``cnn/model.py``: ``NetworkCIFAR``) are imported from a checkout the user points
to (``--darts DIR``, a ``git clone`` of it; the commit is recorded). Nothing of it is copied here; the only shims
are what its CUDA-era code needs on a CPU with modern torch: ``Tensor.cuda`` returns the tensor itself and
``torch.cuda.FloatTensor`` (its drop-path mask) is a CPU tensor; its constructor's prints are silenced.

Against it, on the same genotype (DARTS_V2), sizes, batch, image size and threads:

* ``search dense``: egs's ``Supernet.forward_dense`` (the 7 non-zero ops on every edge) against the peer's
  ``Network.forward``, and the EGS step (M = 7, sampled codes) against the same peer dense step;
* ``eval train``: one training step of egs's evaluation network against the peer's ``NetworkCIFAR``, with the
  profile's drop-path probability and auxiliary weight (the peer's ``drop_path_prob`` and auxiliary head);
* ``eval infer``: the same networks in eval mode under ``no_grad``.

One step = forward + cross-entropy (+ the auxiliary loss) + backward (inference: forward only). Times are paired
step by step in one fresh process (who goes first alternates), reported as the median per-pair ratio egs / peer
with a bootstrap 95 % interval, as ``search_step.py`` does; peak memory runs one network per fresh process
(``search_step.mem_mark`` / ``mem_peak``). Targets: egs / peer median <= 1.0 with the interval's upper end <= 1.05,
peak memory <= 1.0. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from search_step import mem_mark, mem_peak, paired_ratio, run_isolated, write_json  # noqa: E402

TIME_TARGET = (1.0, 1.05)  # egs / peer step time: median <= 1.0, upper end of the interval <= 1.05
MEMORY_TARGET = 1.0        # egs / peer peak memory
SIZES = {  # name: (network, C, layers, image size, batch, drop-path probability, auxiliary weight)
    "search C16x8": ("search", 16, 8, 32, 16, 0.0, 0.0),
    "search cpu": ("search", 8, 5, 16, 64, 0.0, 0.0),
    "eval C36x20": ("eval", 36, 20, 32, 16, 0.2, 0.4),     # the paper's network and regularisers, batch 16
    "eval cpu": ("eval", 8, 5, 16, 64, 0.0, 0.0),          # the cpu protocol: no drop-path, no auxiliary head
}


@dataclass(frozen=True)
class Case:
    size: str
    darts: str
    threads: int
    pairs: int
    warmup: int
    seed: int
    side: str = ""      # memory runs: "egs", "egs M=7" or "peer"
    mode: str = "train"  # "train" or "infer" (eval networks)

    @property
    def spec(self) -> tuple:
        return SIZES[self.size]


def _peer(darts: str):
    """The peer's two modules, imported from the checkout with the CPU shims."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # its alphas and drop-path masks call .cuda()
    torch.cuda.FloatTensor = lambda *size: torch.empty(*size)
    sys.path.insert(0, os.path.join(darts, "cnn"))
    import genotypes
    import model
    import model_search
    return model_search, model, genotypes


def _build(case: Case, side: str):
    """(network, step function) for ``side`` ("egs", "egs M=7" or "peer") at the case's sizes."""
    kind, C, layers, size, batch, drop, aux = case.spec
    torch.manual_seed(case.seed)
    quiet = contextlib.redirect_stdout(io.StringIO())  # the peer prints every cell's channels
    if kind == "search":
        if side == "peer":
            with quiet:
                net = _peer(case.darts)[0].Network(C, 10, layers, torch.nn.CrossEntropyLoss())
            return net, lambda x: net(x)
        from egs.conv.supernet import Supernet
        net = Supernet(C, 10, layers, M=7)
        if side == "egs M=7":
            return net, lambda x: net(x, codes=net.sample())
        return net, lambda x: net.forward_dense(x)
    if side == "peer":
        model_search, model, genotypes = _peer(case.darts)
        with quiet:
            net = model.NetworkCIFAR(C, 10, layers, aux > 0, genotypes.DARTS_V2)
        net.drop_path_prob = drop
        return net, lambda x: net(x)
    from egs.arch.published import DARTS_V2
    from egs.conv.evalnet import eval_network
    net = eval_network(DARTS_V2, "cifar10", C, layers, 10, auxiliary=aux > 0)
    net.drop_prob = drop
    return net, lambda x: net(x, with_aux=aux > 0) if net.training else net(x)


def _step(case: Case, forward, net, x, y) -> float:
    _, _, _, _, _, _, aux = case.spec
    start = time.perf_counter()
    if case.mode == "infer":
        with torch.no_grad():
            forward(x)
        return time.perf_counter() - start
    net.zero_grad(set_to_none=True)
    out = forward(x)
    logits, extra = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
    loss = F.cross_entropy(logits, y)
    if extra is not None and aux > 0:
        loss = loss + aux * F.cross_entropy(extra, y)
    loss.backward()
    return time.perf_counter() - start


def _batch(case: Case):
    _, _, _, size, batch, _, _ = case.spec
    gen = torch.Generator().manual_seed(case.seed)
    return torch.randn(batch, 3, size, size, generator=gen), torch.randint(0, 10, (batch,), generator=gen)


def _sides(case: Case) -> tuple[str, ...]:
    return ("egs", "peer", "egs M=7") if case.spec[0] == "search" and case.mode == "train" else ("egs", "peer")


def run_pairs(case: Case) -> dict[str, Any]:
    """Every side's step alternately, ``case.pairs`` times after ``case.warmup`` (a fresh process)."""
    torch.set_num_threads(case.threads)
    x, y = _batch(case)
    nets = {side: _build(case, side) for side in _sides(case)}
    for net, _ in nets.values():
        net.train(case.mode == "train")
    times: dict[str, list[float]] = {side: [] for side in nets}
    for i in range(case.warmup + case.pairs):
        order = list(nets) if i % 2 == 0 else list(reversed(nets))
        step = {side: _step(case, nets[side][1], nets[side][0], x, y) for side in order}
        if i >= case.warmup:
            for side, t in step.items():
                times[side].append(t)
    params = {side: sum(p.numel() for p in net.parameters()) for side, (net, _) in nets.items()}
    return {**asdict(case), "times_s": times, "params": params}


def run_memory(case: Case) -> dict[str, Any]:
    """Peak memory of one side's steps above its post-warmup baseline (a fresh process)."""
    torch.set_num_threads(case.threads)
    x, y = _batch(case)
    net, forward = _build(case, case.side)
    net.train(case.mode == "train")
    device = torch.device("cpu")
    for i in range(case.warmup + 2):
        if i == case.warmup:
            base, reset = mem_mark(device)
        _step(case, forward, net, x, y)
    return {**asdict(case), "peak_bytes": max(0, mem_peak(device) - base), "peak_mark_reset": reset}


def _verdict(ratio: dict[str, float], target: tuple[float, float]) -> str:
    return "PASS" if ratio["median"] <= target[0] and ratio["high"] <= target[1] else "MISS"


def measure(case: Case, memory: bool) -> dict[str, Any]:
    print(f"  {case.size} {case.mode}: timing {', '.join(_sides(case))} ...", file=sys.stderr, flush=True)
    pairs = run_isolated(run_pairs, case)
    t = pairs["times_s"]
    rows = {"egs / peer": paired_ratio(t["egs"], t["peer"])}
    if "egs M=7" in t:
        rows["EGS M=7 / peer dense"] = paired_ratio(t["egs M=7"], t["peer"])
    peaks = {}
    if memory:
        for side in _sides(case):
            peaks[side] = run_isolated(run_memory, Case(**{**asdict(case), "side": side}))["peak_bytes"]
    return {"case": asdict(case), "pairs": pairs, "ratios": rows, "peak_bytes": peaks}


def _print(result: dict[str, Any]) -> None:
    case, t = result["case"], result["pairs"]["times_s"]
    medians = ", ".join(f"{side} {sorted(v)[len(v) // 2] * 1e3:.0f} ms" for side, v in t.items())
    print(f"\n{case['size']} {case['mode']} ({medians}; params {result['pairs']['params']})")
    for name, r in result["ratios"].items():
        verdict = f" {_verdict(r, TIME_TARGET)}" if name == "egs / peer" else ""
        print(f"  {name:22s} {r['median']:.3f} [{r['low']:.3f}, {r['high']:.3f}] over {r['pairs']} pairs{verdict}")
    peaks = result["peak_bytes"]
    if peaks:
        ratio = peaks["egs"] / max(peaks["peer"], 1)
        print("  peak MB: " + ", ".join(f"{side} {b / 2**20:.1f}" for side, b in peaks.items())
              + f"; egs / peer {ratio:.3f} {'PASS' if ratio <= MEMORY_TARGET else 'MISS'}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--darts", required=True, metavar="DIR", help="a git clone of quark0/darts (holding cnn/)")
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.darts, "cnn", "model_search.py")):
        p.error(f"--darts {args.darts} holds no cnn/model_search.py; pass a clone of github.com/quark0/darts")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    threads = args.threads or torch.get_num_threads()
    commit = subprocess.run(["git", "-C", args.darts, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    print(f"egs vs quark0/darts {commit.strip()[:12] or '(commit unknown)'} | torch {torch.__version__} | cpu | "
          f"threads {threads} | pairs {args.pairs}")
    results = []
    for size in args.sizes:
        modes = ("train", "infer") if SIZES[size][0] == "eval" else ("train",)
        for mode in modes:
            case = Case(size, os.path.abspath(args.darts), threads, args.pairs, args.warmup, args.seed, mode=mode)
            results.append(measure(case, not args.no_memory))
            _print(results[-1])
    payload = {"darts_commit": commit.strip(), "torch": torch.__version__, "threads": threads,
               "load_average": os.getloadavg()[0], "args": vars(args), "results": results}
    if args.json:
        write_json(args.json, payload)
        print(f"\nraw numbers written to {args.json}")
    return payload


if __name__ == "__main__":
    main()
