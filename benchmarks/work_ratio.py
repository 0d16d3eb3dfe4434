"""How much less work the sampled network does than the dense one: the bound on dense / EGS step time.

EGS runs only the sampled ops, so its speed-up over DARTS's dense step cannot exceed the ratio of the two
networks' work. This counts convolution multiply-adds (forward, one 3x32x32 image) of the dense supernet
and of the networks of the codes that ``search_step.py`` times (same seed, same draws), and prints the
median ratio and its range over the draws. Pooling and BatchNorm are not counted.

    .venv/bin/python benchmarks/work_ratio.py               # C = 16, 8 cells, M = 7, 20 draws
    .venv/bin/python benchmarks/work_ratio.py --M 4 --pairs 20
"""
from __future__ import annotations

import argparse
import statistics
from typing import Sequence

import torch
import torch.nn as nn

from egs.supernet import Supernet, active_ops_of


def work_ratios(C: int = 16, layers: int = 8, M: int = 7, pairs: int = 20, warmup: int = 1,
                seed: int = 0) -> list[float]:
    """dense / sampled convolution MACs for each timed draw of ``search_step.py`` (codes seeded seed + 1 + i)."""
    torch.manual_seed(seed)
    model = Supernet(C, 10, layers, M=M).train()
    macs = [0]

    def count(module: nn.Conv2d, _inputs, out: torch.Tensor) -> None:
        macs[0] += out.numel() * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(count)
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        model.forward_dense(x)
        dense, ratios = macs[0], []
        for i in range(warmup, warmup + pairs):
            codes = model.sample(torch.Generator().manual_seed(seed + 1 + i))
            macs[0] = 0
            model.net(x, active=active_ops_of(codes, model.space))
            ratios.append(dense / macs[0])
    return ratios


def main(argv: Sequence[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--M", type=int, default=7)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ratios = work_ratios(args.C, args.layers, args.M, args.pairs, seed=args.seed)
    print(f"dense / sampled convolution MACs, M = {args.M}, {len(ratios)} draws: median {statistics.median(ratios):.3f}, "
          f"range [{min(ratios):.3f}, {max(ratios):.3f}]")
    return ratios


if __name__ == "__main__":
    main()
