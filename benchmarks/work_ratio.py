"""How much less work the sampled network does than the dense one: the bound on dense / EGS step time.

EGS runs only the sampled ops, so its speed-up over DARTS's dense step cannot exceed the ratio of the two
networks' work. This counts multiply-adds (convolutions and the classifier, :func:`egs.conv.macs.count_macs`;
forward, one 3x32x32 image) of the dense supernet and of the networks of the codes that ``search_step.py``
times (same seed, same draws), and prints the median ratio and its range over the draws. Pooling and
BatchNorm are not counted.

    .venv/bin/python benchmarks/work_ratio.py               # C = 16, 8 cells, M = 7, 20 draws
    .venv/bin/python benchmarks/work_ratio.py --M 4 --pairs 20
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable, Sequence

import torch
import torch.nn as nn

from egs.conv.macs import count_macs
from egs.method.supernet import active_ops_of
from egs.conv.supernet import Supernet


class _Pass(nn.Module):
    """``run(model, x)`` as a module's forward pass, so :func:`egs.conv.macs.count_macs` can count it."""

    def __init__(self, model: nn.Module, run: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model, self.run = model, run

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(self.model, x)


def work_ratios(C: int = 16, layers: int = 8, M: int = 7, pairs: int = 20, warmup: int = 1,
                seed: int = 0) -> list[float]:
    """dense / sampled multiply-adds for each timed draw of ``search_step.py`` (codes seeded seed + 1 + i)."""
    torch.manual_seed(seed)
    model = Supernet(C, 10, layers, M=M).train()
    dense = count_macs(_Pass(model, lambda m, x: m.forward_dense(x)), (3, 32, 32)).total
    ratios = []
    for i in range(warmup, warmup + pairs):
        with torch.no_grad():
            active = active_ops_of(model.sample(torch.Generator().manual_seed(seed + 1 + i)), model.space)
        ratios.append(dense / count_macs(_Pass(model, lambda m, x: m.net(x, active=active)), (3, 32, 32)).total)
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
    print(f"dense / sampled multiply-adds, M = {args.M}, {len(ratios)} draws: median {statistics.median(ratios):.3f}, "
          f"range [{min(ratios):.3f}, {max(ratios):.3f}]")
    return ratios


if __name__ == "__main__":
    main()
