"""Multiply-adds of a network, counted by forward hooks, and the ImageNet mobile-setting channel fit.

What is counted (one image, batch 1, evaluation mode, so no auxiliary head and no drop-path):

* **multiply-adds** (``MacReport.total``, the number papers report and the "< 600M" mobile
  setting constrains): convolutions, ``C_in / groups * kH * kW`` per output element (so
  ``C_in/groups * kH*kW * C_out * H_out*W_out``), and linear layers, ``in * out`` per output
  vector. Bias additions, BatchNorm (folds into the convolution at inference) and ReLU are free.
* **pooling** (``MacReport.pool``, reported apart, never added to the total): ``kH * kW`` per output
  element for max/average pools (the full window, also where padding shrinks it), and one per input
  element for adaptive (global) pools.

Each count is grouped by where it happens: ``stem``, ``preprocess`` (the cells' input 1x1 convs and
FactorizedReduce), the op name of the cell edge (``sep_conv_3x3``, ``skip_connect`` at stride 2 is a
FactorizedReduce, ...), ``classifier`` (global pooling and the linear layer), and otherwise the
top-level module name. Only modules that run are counted, so a sparse supernet pass counts its
active ops only.

Measured (pinned in tests/test_macs.py; identical when this counter runs on DARTS's own
quark0/darts cnn/model.py networks): DARTS_V2 on ImageNet (C = 48, 14 cells, 224x224) has
529,911,552 multiply-adds, DARTS_V1 505,864,704; on CIFAR (C = 36, 20 cells, 32x32) 528,359,040
and 500,987,520. The DARTS paper reports 574M for DARTS_V2 on ImageNet; conv + linear counting does
not reproduce it (others found 523M counting conv + fc, quark0/darts issue #46), and adding pools,
BatchNorm and ReLU elements reaches only about 545M. :func:`fit_width` gives a training's settings the widest
C within their ``max_madds`` (the paper profile's 600M), :func:`fit_channels` the same for any budget.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import torch
import torch.nn as nn

from egs.conv.network import NetworkImageNet
from egs.core.checks import check_int, check_real
from egs.core.errors import EGSError
from egs.arch.genotype import Genotype

if TYPE_CHECKING:
    from egs.profiles.experiments import TrainSettings

MOBILE_BUDGET = 600e6
"""The ImageNet mobile setting: fewer than 600M multiply-adds (DARTS, Sec. 3.3; NASNet)."""

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class MacReport:
    """Multiply-adds (conv + linear) and pooling operations of one forward pass, by group."""

    input_size: tuple[int, int, int]
    by_group: Mapping[str, int] = field(default_factory=dict)
    pool_by_group: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Conv + linear multiply-adds for one image (the papers' "multiply-adds")."""
        return sum(self.by_group.values())

    @property
    def pool(self) -> int:
        """Pooling window operations for one image (not part of ``total``)."""
        return sum(self.pool_by_group.values())

    def to_dict(self) -> dict[str, Any]:
        return {"input_size": list(self.input_size), "total": self.total, "pool": self.pool,
                "by_group": dict(self.by_group), "pool_by_group": dict(self.pool_by_group)}

    def __str__(self) -> str:
        groups = sorted(set(self.by_group) | set(self.pool_by_group),
                        key=lambda g: -self.by_group.get(g, 0))
        lines = [f"{'group':<16}{'multiply-adds':>16}{'pooling':>14}"]
        lines += [f"{g:<16}{self.by_group.get(g, 0):>16,}{self.pool_by_group.get(g, 0):>14,}" for g in groups]
        lines.append(f"{'total':<16}{self.total:>16,}{self.pool:>14,}")
        return "\n".join(lines)


def op_group(name: str) -> str:
    """The report group of the module at dotted path ``name`` (see the module docstring)."""
    parts = name.split(".")
    if "auxiliary_head" in parts:
        return "auxiliary_head"
    if any(p.startswith("stem") for p in parts):
        return "stem"
    if "pre0" in parts or "pre1" in parts:
        return "preprocess"
    if "ops" in parts and len(parts) > parts.index("ops") + 2:
        return parts[parts.index("ops") + 2]  # ops.<edge>.<op name>...
    if parts[-1] in ("classifier", "global_pooling"):
        return "classifier"
    return parts[0] or "model"


def _check_input_size(input_size: object) -> tuple[int, int, int]:
    fix = "input_size is (channels, height, width), e.g. (3, 32, 32) for CIFAR or (3, 224, 224) for ImageNet"
    if not isinstance(input_size, (tuple, list)) or len(input_size) != 3:
        raise EGSError(f"input_size={input_size!r} must be 3 positive integers; {fix}.")
    return tuple(check_int(n, f"input_size[{k}]", 1, fix) for k, n in enumerate(input_size))  # type: ignore


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> MacReport:
    """Count the multiply-adds of ``model`` on one ``input_size`` image, in evaluation mode.

    Runs one forward pass on a zero image on the model's device (a model on the ``meta`` device
    is counted without computing anything); the model's training mode is restored afterwards.
    """
    size = _check_input_size(input_size)
    tensor = next(iter(model.parameters()), None)
    tensor = next(iter(model.buffers()), None) if tensor is None else tensor
    device = tensor.device if tensor is not None else torch.device("cpu")
    dtype = tensor.dtype if tensor is not None and tensor.is_floating_point() else torch.float32
    macs: Counter[str] = Counter()
    pools: Counter[str] = Counter()

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor, group: str) -> None:
        if isinstance(module, nn.Conv2d):
            kH, kW = module.kernel_size
            macs[group] += module.in_channels // module.groups * kH * kW * output.numel()
        elif isinstance(module, nn.Linear):
            macs[group] += module.in_features * output.numel()
        elif isinstance(module, _POOLS):
            kH, kW = _pair(module.kernel_size)
            pools[group] += kH * kW * output.numel()
        else:
            pools[group] += inputs[0].numel()

    handles = [m.register_forward_hook(lambda mod, i, o, g=op_group(name): hook(mod, i, o, g))
               for name, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear) + _POOLS + _ADAPTIVE_POOLS)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return MacReport(size, dict(macs), dict(pools))


def imagenet_macs(genotype: Genotype, C: int = 48, layers: int = 14, input_size: int = 224,
                  num_classes: int = 1000) -> MacReport:
    """Multiply-adds of the ImageNet mobile network of ``genotype`` (built on ``meta``: no compute)."""
    with torch.device("meta"):
        net = NetworkImageNet(C, num_classes, layers, genotype)
    return count_macs(net, (3, input_size, input_size))


def fit_channels(genotype: Genotype, budget: float = MOBILE_BUDGET, layers: int = 14,
                 input_size: int = 224, num_classes: int = 1000,
                 candidates: Iterable[int] = range(2, 513, 2)) -> int:
    """The largest even C among ``candidates`` whose ImageNet mobile network has fewer than
    ``budget`` multiply-adds (the mobile setting: 14 cells, 224x224, < 600M).

    Multiply-adds grow with C, so the candidates are bisected. DARTS_V2 fits C = 50 (573M);
    the DARTS paper trained it at C = 48 (530M by this count).
    """
    fix = "candidates are even channel counts (the ImageNet stem halves C): pass e.g. range(2, 513, 2)"
    cs = sorted(check_int(c, "a candidate C", 2, fix) for c in set(candidates))
    odd = [c for c in cs if c % 2]
    if not cs or odd:
        raise EGSError(f"candidates {'include the odd ' + str(odd[:5]) if odd else 'are empty'}; {fix}.")
    check_real(budget, "budget", 0.0, low_open=True, fix="a number of multiply-adds, e.g. 600e6")
    lo, hi = 0, len(cs)  # invariant: cs[:lo] fit, cs[hi:] do not
    while lo < hi:
        mid = (lo + hi) // 2
        if imagenet_macs(genotype, cs[mid], layers, input_size, num_classes).total < budget:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        raise EGSError(f"no candidate C fits {budget:,.0f} multiply-adds (C={cs[0]} needs "
                       f"{imagenet_macs(genotype, cs[0], layers, input_size, num_classes).total:,}); "
                       "raise the budget or use fewer layers.")
    return cs[lo - 1]


MAX_FIT_C = 4096
"""The widest C :func:`fit_width` returns (DARTS's mobile networks have C = 48)."""


def fit_width(genotype: Genotype, cfg: TrainSettings) -> TrainSettings:
    """``cfg`` with ``C`` the largest even width whose ImageNet evaluation network of ``genotype`` has at most
    ``cfg.max_madds`` multiply-adds per image (``cfg`` itself when ``max_madds`` is 0).

    The paper trains its ImageNet network "restricted to be under 600M" multiply-adds (Sec. 4.1.3, the mobile
    setting of DARTS Sec. 3.3), a budget, not a width: C = 48 is DARTS's value for its own cell (574M in DARTS's
    Table 2; 530M by this module's count, so C = 50, 573M, is DARTS_V2's fit). Counted as :func:`imagenet_macs`
    does: ``cfg.layers`` cells, ``cfg.image_size`` pixels (224 at ``paper``), 1,000 classes, no auxiliary head.

    Only even C: the ImageNet stem starts with C/2 channels and the first cell reads it through a
    FactorizedReduce with C/2 + C/2 outputs (:class:`~egs.conv.network.NetworkImageNet` refuses an odd C).
    The width is doubled from 2 until it exceeds the budget, then bisected (multiply-adds grow with C):
    about ten counts, 5 s. Call it before the training's settings are recorded (``egs train`` does;
    :class:`egs.conv.train.Trainer` refuses an ImageNet ``cfg`` whose C is not the fit), so ``config.json``
    and the checkpoint fingerprint hold the fitted C.
    """
    if not cfg.max_madds:
        return cfg
    if cfg.dataset != "imagenet":
        raise EGSError(f"max_madds={cfg.max_madds:,} bounds the ImageNet mobile network (Sec. 4.1.3), but "
                       f"dataset={cfg.dataset!r}; use max_madds=0 and choose C yourself.")
    budget = cfg.max_madds

    def madds(C: int) -> int:
        return imagenet_macs(genotype, C, cfg.layers, cfg.image_size).total

    if (smallest := madds(2)) > budget:
        raise EGSError(f"max_madds={budget:,}: even the narrowest ImageNet network (C=2, {cfg.layers} cells, "
                       f"{cfg.image_size}x{cfg.image_size}) has {smallest:,} multiply-adds; raise max_madds, lower "
                       f"layers or image_size, or set max_madds=0 to keep C={cfg.C}.")
    hi = 4
    while madds(hi) <= budget:  # invariant: hi // 2 fits
        if hi >= MAX_FIT_C:
            raise EGSError(f"max_madds={budget:,} allows C > {MAX_FIT_C}, wider than egs fits; lower max_madds "
                           "(the mobile setting is 600,000,000) or set max_madds=0 and choose C.")
        hi *= 2
    C = fit_channels(genotype, budget + 1, cfg.layers, cfg.image_size, candidates=range(hi // 2, hi + 1, 2))
    return replace(cfg, C=C)


def width_fitted(genotype: Genotype, cfg: TrainSettings) -> bool:
    """Whether ``cfg.C`` is :func:`fit_width`'s width (always, when ``max_madds`` is 0), from two counts:
    C within the budget, C + 2 over it."""
    if not cfg.max_madds:
        return True
    if cfg.dataset != "imagenet" or cfg.C % 2:
        return False
    return (imagenet_macs(genotype, cfg.C, cfg.layers, cfg.image_size).total <= cfg.max_madds
            < imagenet_macs(genotype, cfg.C + 2, cfg.layers, cfg.image_size).total)
