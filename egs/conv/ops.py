"""Candidate operations o_k of the conv cells (Chang et al., 2019, Sec. 3.1 and Sec. 4.1).

Every edge ``e(i, j)`` of a cell carries K candidate operations; its binary code ``a(i, j)``
switches any subset of them on (Eq. 1-2). The ordered op names of each space live in
:mod:`egs.arch.space`; this module holds the built-in modules, their analytic cost (used for the
efficiency credit ``l`` of Eq. 5), and :func:`build_op`, which also serves the ops of conv-family spaces
declared with :func:`egs.arch.space.declare_space` (the recurrent activations: :mod:`egs.rnn.ops`).

* ``CONV_OPS`` (CIFAR-10, K = 8) uses DARTS's names and order, so DARTS genotypes read directly.
  Convolutions follow the ReLU-Conv-BN order; separable convolutions are applied twice. The layer
  structure (hence every parameter count) is that of the DARTS reference implementation.

Costs are counted as multiply-accumulates (MACs) of convolutions and pooling windows; ReLU and
BatchNorm are not counted (BN folds into the preceding convolution at inference).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from egs.core.checks import check_int
from egs.core.errors import EGSError
from egs.arch.space import CONV_OPS, ZERO, SearchSpace, check_op, get_space



def is_zero(name: str) -> bool:
    """True for the zero operation ("none")."""
    return name == ZERO


def _check_stride(stride: object) -> int:
    if isinstance(stride, bool) or stride not in (1, 2):
        raise EGSError(f"stride={stride!r} is not supported: use 1 (normal cell) or 2 (reduction cell).")
    return int(stride)


# --------------------------------------------------------------------------------------------------
# Building blocks (ReLU-Conv-BN order, as in DARTS, so that parameter counts match)
# --------------------------------------------------------------------------------------------------

class ReLUConvBN(nn.Sequential):
    """ReLU -> k x k convolution -> BatchNorm; also the cells' 1x1 input preprocessing."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(C_out, affine=affine))


class DilConv(nn.Sequential):
    """ReLU -> depthwise (dilated, strided) k x k conv -> pointwise 1x1 conv -> BatchNorm."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int = 1, affine: bool = True) -> None:
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding,
                                   dilation=dilation, groups=C_in, bias=False),
                         nn.Conv2d(C_in, C_out, 1, bias=False),
                         nn.BatchNorm2d(C_out, affine=affine))


class SepConv(nn.Sequential):
    """Separable convolution applied twice: a strided C_in->C_in block, then a C_in->C_out block."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine),
                         DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine))


class FactorizedReduce(nn.Module):
    """ReLU -> two 1x1 stride-2 convs (on x and on x shifted by one pixel) -> concat -> BatchNorm.

    Halves the resolution to ceil(H/2) x ceil(W/2). For odd sizes the shifted input is zero-padded
    by one pixel at the bottom/right so both halves agree (for even sizes this is exactly DARTS).
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        if C_out % 2:
            raise EGSError(f"FactorizedReduce needs an even number of output channels, got "
                           f"C_out={C_out}; use an even channel count.")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Everything before the final BatchNorm (:func:`egs.method.gate.gated_op` gates that BatchNorm)."""
        x = self.relu(x)
        H, W = x.shape[-2:]
        shifted = x[:, :, 1:, 1:]
        if H % 2 or W % 2:
            shifted = F.pad(shifted, (0, W % 2, 0, H % 2))
        return torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.features(x))


class Identity(nn.Module):
    """The skip connection at stride 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The zero operation: zeros of the output shape (only dense baselines ever run it)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return torch.zeros_like(x)
        N, C, H, W = x.shape
        s = self.stride
        return x.new_zeros(N, C, -(-H // s), -(-W // s))


# --------------------------------------------------------------------------------------------------
# Convolutional registry: one table drives both the modules and their analytic costs
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _ConvSpec:
    kind: str            # "pool", "sep", "dil" or the special names below
    kernel: int = 1
    dilation: int = 1

    @property
    def padding(self) -> int:
        return self.dilation * (self.kernel - 1) // 2


_CONV_SPECS: dict[str, _ConvSpec] = {
    "none": _ConvSpec("zero"),
    "max_pool_3x3": _ConvSpec("max_pool", 3),
    "avg_pool_3x3": _ConvSpec("avg_pool", 3),
    "skip_connect": _ConvSpec("skip"),
    "sep_conv_3x3": _ConvSpec("sep", 3),
    "sep_conv_5x5": _ConvSpec("sep", 5),
    "dil_conv_3x3": _ConvSpec("dil", 3, 2),
    "dil_conv_5x5": _ConvSpec("dil", 5, 2),
}
assert tuple(_CONV_SPECS) == CONV_OPS


def _check_conv_args(name: object, C: object, stride: object) -> tuple[_ConvSpec, int, int]:
    spec = _CONV_SPECS[check_op(name, "conv")]
    C = check_int(C, "C")
    stride = _check_stride(stride)
    if spec.kind == "skip" and stride == 2 and C % 2:
        raise EGSError(f"skip_connect at stride 2 is a FactorizedReduce and needs an even channel "
                       f"count, got C={C}; use an even C.")
    return spec, C, stride


def make_conv_op(name: str, C: int, stride: int, affine: bool, search: bool = False) -> nn.Module:
    """Build conv-space operation ``name`` on C channels (C -> C) at ``stride`` 1 or 2.

    ``affine`` sets the BatchNorm affine flag (DARTS: False in search, True in evaluation).
    ``search=True`` appends BatchNorm(affine=False) after pooling, as in the DARTS search network.
    """
    spec, C, stride = _check_conv_args(name, C, stride)
    if spec.kind == "zero":
        return Zero(stride)
    if spec.kind == "skip":
        return Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine)
    if spec.kind == "sep":
        return SepConv(C, C, spec.kernel, stride, spec.padding, affine=affine)
    if spec.kind == "dil":
        return DilConv(C, C, spec.kernel, stride, spec.padding, spec.dilation, affine=affine)
    if spec.kind == "max_pool":
        pool: nn.Module = nn.MaxPool2d(spec.kernel, stride=stride, padding=spec.padding)
    else:
        pool = nn.AvgPool2d(spec.kernel, stride=stride, padding=spec.padding, count_include_pad=False)
    return nn.Sequential(pool, nn.BatchNorm2d(C, affine=False)) if search else pool


def build_op(space: SearchSpace | str, name: str, C: int, stride: int, affine: bool, search: bool = False) -> nn.Module:
    """Op ``name`` of conv-family ``space`` on C channels at ``stride``: a declared builder, else built in."""
    space = get_space(space)
    check_op(name, space)
    if name in space.builders:
        return space.builders[name](C, _check_stride(stride), affine)
    return make_conv_op(name, C, stride, affine, search)


def _out_size(n: int, spec: _ConvSpec, stride: int) -> int:
    """Spatial output size of the op's first (strided) layer: floor((n + 2p - d(k-1) - 1) / s) + 1."""
    return (n + 2 * spec.padding - spec.dilation * (spec.kernel - 1) - 1) // stride + 1


def conv_op_flops(name: str, C: int, H: int, W: int, stride: int) -> int:
    """Multiply-accumulates of conv-space op ``name`` on a C x H x W input (one example).

    Convolutions count C_in/groups * k*k MACs per output element; pools count their k*k window
    per output element; zero costs 0; skip costs 0 at stride 1 and FactorizedReduce's two 1x1
    convolutions (C * C/2 each) at stride 2. Used as a resource cost for the credit l of Eq. 5.
    """
    spec, C, stride = _check_conv_args(name, C, stride)
    H, W = check_int(H, "H"), check_int(W, "W")
    out = _out_size(H, spec, stride) * _out_size(W, spec, stride)
    k2 = spec.kernel * spec.kernel
    if spec.kind == "zero" or (spec.kind == "skip" and stride == 1):
        return 0
    if spec.kind == "skip":
        return 2 * C * (C // 2) * out
    if spec.kind in ("max_pool", "avg_pool"):
        return k2 * C * out
    per_block = (k2 * C + C * C) * out           # depthwise + pointwise at output resolution
    return 2 * per_block if spec.kind == "sep" else per_block


def conv_op_params(name: str, C: int, stride: int, affine: bool) -> int:
    """Learnable parameters of conv-space op ``name`` on C channels (BN adds 2C when affine).

    Search-mode pooling adds only a non-affine BN, so it does not change the count.
    """
    spec, C, stride = _check_conv_args(name, C, stride)
    bn = 2 * C if affine else 0
    if spec.kind in ("zero", "max_pool", "avg_pool") or (spec.kind == "skip" and stride == 1):
        return 0
    if spec.kind == "skip":
        return 2 * C * (C // 2) + bn
    per_block = spec.kernel * spec.kernel * C + C * C + bn
    return 2 * per_block if spec.kind == "sep" else per_block


# --------------------------------------------------------------------------------------------------
# Recurrent registry
# --------------------------------------------------------------------------------------------------
