"""Efficiency credits ``l`` of Eq. 5: the cost of every op on every edge, turned into a distribution.

The paper mixes the effectiveness credit ``h = softmax(alpha)`` with an efficiency credit ``l``
derived from each op's resource cost, ``p = lambda * h + (1 - lambda) * l`` (Eq. 5), but does not
define ``l`` precisely. Our choice, documented here and in notebook 02:

* **Cost of an op on an edge** (``metric``): multiply-accumulates (``"flops"``, analytic, the
  default), learnable parameters (``"params"``), or forward latency measured on the running device
  (``"latency"``, median of repeated timings; this makes a search depend on machine timing). All
  cells of one type share one code, so the cost of a bit is summed over every cell of that type, at
  each cell's own channel count and resolution. Ops of a declared space (:func:`egs.arch.space.declare_space`)
  that are not built in are counted on their module: multiply-adds plus pooling windows
  (:func:`egs.conv.macs.count_macs`), or their parameter count.
* **Cost to credit**: per edge, ``l = softmax(-beta * c / max_k c)``. Costs are divided by the
  edge's most expensive op so the credit does not depend on units or network size; the zero op
  (cost 0) gets the largest credit, the most expensive op a credit ``exp(-beta)`` times smaller.
  ``beta`` (default 1) sets how strongly the resource term favours cheap ops.
"""
from __future__ import annotations

import time

import torch

from egs.conv.network import Network
from egs.core.errors import EGSError
from egs.conv.ops import ZERO, conv_op_flops, conv_op_params
from egs.arch.space import CONV_OPS
from egs.profiles.fields import COSTS


def edge_costs(net: Network, metric: str = "flops", image_size: int = 32, batch_size: int = 8,
               repeats: int = 5) -> dict[str, torch.Tensor]:
    """Cost (E, K) of each op on each edge, summed over the cells of each type ("normal", "reduce")."""
    if metric not in COSTS:
        raise EGSError(f"unknown cost metric {metric!r}; choose one of {', '.join(COSTS)}.")
    device = next(net.parameters()).device
    ops = net.space.ops
    E, K = len(net.cells[0].edges), len(ops)
    costs = {"normal": torch.zeros(E, K, dtype=torch.float64), "reduce": torch.zeros(E, K, dtype=torch.float64)}
    H = image_size
    for cell in net.cells:
        kind = "reduce" if cell.reduction else "normal"
        for e, (i, _) in enumerate(cell.edges):
            stride = 2 if cell.reduction and i < 2 else 1
            H_in = H if stride == 2 or not cell.reduction else -(-H // 2)
            for k, name in enumerate(ops):
                if name != ZERO:
                    costs[kind][e, k] += _op_cost(cell.ops[e][name], name, metric, cell.C, H_in, stride,
                                                  batch_size, repeats, device)
        H = -(-H // 2) if cell.reduction else H
    return costs


def _op_cost(op: torch.nn.Module, name: str, metric: str, C: int, H: int, stride: int, batch_size: int,
             repeats: int, device: torch.device) -> float:
    """One op's cost: analytic for the built-in ops, counted on the module for declared ones."""
    if metric == "latency":
        return _latency(op, (batch_size, C, H, H), device, repeats)
    if name in CONV_OPS:
        return conv_op_flops(name, C, H, H, stride) if metric == "flops" else conv_op_params(name, C, stride, affine=True)
    if metric == "params":
        return float(sum(p.numel() for p in op.parameters()))
    from egs.conv.macs import count_macs
    report = count_macs(op, (C, H, H))
    return float(report.total + sum(report.pool_by_group.values()))


@torch.no_grad()
def _latency(op: torch.nn.Module, shape: tuple[int, ...], device: torch.device, repeats: int) -> float:
    x = torch.randn(shape, device=device)
    was_training = op.training
    op.eval()
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        op(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    op.train(was_training)
    return float(torch.tensor(times[1:]).median())


def credit_from_cost(cost: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Efficiency credit ``l = softmax(-beta * c / max_k c)`` per edge (rows of ``cost``)."""
    if not beta >= 0:
        raise EGSError(f"credit beta={beta!r} must be >= 0 (0 makes l uniform).")
    scale = cost.amax(dim=-1, keepdim=True).clamp_min(torch.finfo(cost.dtype).tiny)
    return torch.softmax(-beta * cost / scale, dim=-1)
