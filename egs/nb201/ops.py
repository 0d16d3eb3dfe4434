"""NAS-Bench-201's candidate operations and its residual reduction block (Dong & Yang, ICLR 2020, Sec. 2).

Layer for layer as the benchmark's own networks, so that a cell's parameter count is the benchmark's (checked
against its reference implementation, tests/test_nb201_network.py):

* ``nor_conv_1x1``, ``nor_conv_3x3``: ReLU-Conv-BN; the convolution has a bias exactly when the BatchNorm has no
  affine parameters (the benchmark's choice: its search cells are non-affine, its trained cells affine);
* ``avg_pool_3x3``: 3x3 average pooling, stride 1, padding 1, the padding left out of the average;
* ``skip_connect``: the identity; ``none``: the zero op, never executed (an edge without it adds nothing).

Between the stages a residual block halves the resolution and doubles the channels: two ReLU-Conv-BN 3x3 (the first
with stride 2) plus a shortcut of 2x2 average pooling and a 1x1 convolution.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from egs.arch.space import NB201_OPS, ZERO, check_op
from egs.core.errors import EGSError


class ReLUConvBN(nn.Sequential):
    """ReLU, a k x k convolution (bias only without an affine BatchNorm), BatchNorm."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, affine: bool, track: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_out, kernel, stride=stride, padding=kernel // 2, bias=not affine),
                         nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track))


def build_op(name: str, C: int, affine: bool, track: bool = True) -> nn.Module:
    """Op ``name`` of NAS-Bench-201's space on C channels (stride 1: a cell keeps its input's shape)."""
    check_op(name, "nb201")
    if name == ZERO:
        raise EGSError("the zero op 'none' is never built: an edge without it simply adds nothing.")
    if name in ("nor_conv_1x1", "nor_conv_3x3"):
        return ReLUConvBN(C, C, int(name[-1]), 1, affine, track)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return nn.Identity()


assert NB201_OPS[0] == ZERO


class ResidualReduction(nn.Module):
    """The block between two stages: ``conv_b(conv_a(x)) + shortcut(x)``, half the resolution, C_out channels."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True, track: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, 2, affine, track)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, affine, track)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(C_in, C_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)
