"""Straight-through gates at no extra cost: a sampled op's output, gated by its hard code value.

The search network needs, for every active op k of an edge, the gradient of the loss with respect
to its code value a_k (Eq. 9 routes it to alpha through the Gumbel-softmax relaxation): the
straight-through estimator treats the edge as ``sum_k a_k o_k(x)`` at ``a_k = 1``, so

    dL/da_k = sum(dL/do_k * o_k).

Multiplying ``o_k * a_k`` computes it but keeps a second full-size tensor per active op until the
backward pass. :func:`egs.method.sampler.straight_through` avoids the product but still keeps ``o_k`` alive
(the fixed child frees it once the node is summed), which costs the search 11-20 % more peak memory
than the child (benchmarks/README.md). Almost every op ends in BatchNorm, though
(``o_k = BN(y_k)``), and BatchNorm keeps its input ``y_k`` for its own backward anyway. So
:func:`gated_op` folds the gate into that BatchNorm's per-channel weight: ``BN_w(y) = BN(y) * a``
with weight ``a`` (times BN's own weight and bias when affine). The forward value is the op's
output computed once (the gate is exactly 1), and BatchNorm's backward returns the weight's
gradient ``sum(dL/do * x_hat)``, which is exactly dL/da: nothing is kept that the child does not
keep. Ops without a final BatchNorm (the identity skip, declared ops) fall back to
:func:`egs.method.sampler.straight_through`; for the identity, ``o_k`` is the node state itself.
"""
from __future__ import annotations

import weakref
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from egs.method.sampler import straight_through

_Split = tuple[Sequence[Callable[[torch.Tensor], torch.Tensor]], nn.BatchNorm2d]
_SPLITS: "weakref.WeakKeyDictionary[nn.Module, _Split | None]" = weakref.WeakKeyDictionary()


def final_batch_norm(op: nn.Module) -> _Split | None:
    """``(body, bn)`` with ``op(x) == bn(body(x))`` (body: callables applied in turn), or None.

    Found in a ``nn.Sequential`` ending in BatchNorm2d (nested ones too: a separable conv ends in a
    dilated-conv block) or in a module with ``features`` and ``bn`` (:class:`egs.conv.ops.FactorizedReduce`).
    """
    if op in _SPLITS:
        return _SPLITS[op]
    split = None
    if isinstance(op, nn.Sequential) and len(op):
        *head, last = list(op)
        if type(last) is nn.BatchNorm2d:
            split = (head, last)
        elif (inner := final_batch_norm(last)) is not None:
            split = ([*head, *inner[0]], inner[1])
    elif callable(getattr(op, "features", None)) and type(getattr(op, "bn", None)) is nn.BatchNorm2d:
        split = ([op.features], op.bn)
    _SPLITS[op] = split
    return split


def gated_batch_norm(bn: nn.BatchNorm2d, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``bn(y) * gate`` in one BatchNorm call (``gate`` a scalar tensor): the gate enters BN's weight
    and bias, so its gradient comes from BN's own backward. Same running-statistics updates as ``bn(y)``."""
    if gate.dtype != y.dtype and y.dtype not in (torch.float16, torch.bfloat16):  # half input: float weights
        gate = gate.to(y.dtype)
    weight = gate.expand(bn.num_features).contiguous() if bn.weight is None else bn.weight * gate  # contiguous: the
    # same kernel path as no weight at all, so the value equals bn(y) bit for bit
    bias = None if bn.bias is None else bn.bias * gate
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative average (a host read, as in torch's own BatchNorm)
            factor = 1.0 / float(bn.num_batches_tracked)
    batch_stats = bn.training or (bn.running_mean is None and bn.running_var is None)
    keep = not bn.training or bn.track_running_stats
    return F.batch_norm(y, bn.running_mean if keep else None, bn.running_var if keep else None, weight, bias,
                        batch_stats, factor, bn.eps)


def gated_op(op: nn.Module, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``op(x)`` gated by its hard code value ``gate`` (exactly 1 in the forward pass): the value is the
    op's output itself and ``gate`` gets exactly the gradient of ``op(x) * gate``, without keeping
    ``op(x)`` for the backward pass when the op ends in BatchNorm (see the module docstring)."""
    split = final_batch_norm(op)
    if split is None:
        return straight_through(op(x), gate)
    body, bn = split
    for layer in body:
        x = layer(x)
    return gated_batch_norm(bn, x, gate)
