"""Multiply-add counting: hand-computed values, DARTS's networks, the ImageNet channel fit."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn as nn

from egs.conv.network import Cell, Network, NetworkImageNet
from egs.core.errors import EGSError
from egs.arch.published import DARTS_V1, DARTS_V2
from egs.conv.macs import count_macs, fit_channels, fit_width, imagenet_macs, width_fitted
from egs.conv.ops import conv_op_flops
from egs.arch.space import CONV_OPS

# Conv + linear multiply-adds of one image, measured by count_macs on our networks and identically
# on DARTS's own quark0/darts cnn/model.py networks. The DARTS paper reports 574M for DARTS_V2 on
# ImageNet (not reproduced by conv + linear counting; see egs/conv/macs.py).
MACS = {("imagenet", "DARTS_V2"): 529_911_552, ("imagenet", "DARTS_V1"): 505_864_704,
        ("cifar", "DARTS_V2"): 528_359_040, ("cifar", "DARTS_V1"): 500_987_520}
GENOTYPES = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_counter_matches_hand_computed_small_conv_net():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),          # 0: 3*9 * 8*10*10 = 21,600
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),  # 2: depthwise 1*9 * 8*5*5 = 1,800
        nn.Conv2d(8, 16, 1),                                # 3: 8 * 16*5*5 = 3,200
        nn.MaxPool2d(2),                                    # 4: pool 2*2 * 16*2*2 = 256
        nn.AdaptiveAvgPool2d(1),                            # 5: pool, one per input 16*2*2 = 64
        nn.Flatten(),
        nn.Linear(16, 10))                                  # 7: 16*10 = 160
    report = count_macs(net, (3, 10, 10))
    assert report.by_group == {"0": 21_600, "2": 1_800, "3": 3_200, "7": 160}
    assert report.pool_by_group == {"4": 256, "5": 64}
    assert (report.total, report.pool) == (26_760, 320)


class _OneInput(nn.Module):
    def __init__(self, cell: Cell) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cell(x, x)


def test_counter_matches_hand_computed_cell():
    edges = {(0, 2): ["sep_conv_3x3"], (1, 2): ["skip_connect"], (0, 3): ["avg_pool_3x3"],
             (2, 3): ["dil_conv_3x3"]}
    report = count_macs(_OneInput(Cell(edges, (2, 3), 4, 4, 4, False, False, True, False)), (4, 8, 8))
    assert report.by_group == {
        "preprocess": 2 * 4 * 4 * 64,                        # two 1x1 convs 4->4 at 8x8
        "sep_conv_3x3": 2 * (4 * 9 * 64 + 4 * 4 * 64),      # twice depthwise 3x3 + pointwise
        "dil_conv_3x3": 4 * 9 * 64 + 4 * 4 * 64}            # once
    assert report.pool_by_group == {"avg_pool_3x3": 9 * 4 * 64}
    assert report.total == 2_048 + 6_656 + 3_328


def test_reduction_cell_ops_agree_with_the_analytic_op_costs():
    C, H = 6, 8
    every = [name for name in CONV_OPS if name != "none"]
    cell = Cell({(0, 2): every, (1, 2): every}, (2,), C, C, C, True, False, True, False)
    report = count_macs(_OneInput(cell), (C, H, H))
    for name in every:
        counted = report.by_group.get(name, 0) + report.pool_by_group.get(name, 0)
        assert counted == 2 * conv_op_flops(name, C, H, H, 2), name  # two stride-2 edges


@pytest.mark.parametrize("kind,name", sorted(MACS))
def test_darts_networks_multiply_adds_are_pinned(kind, name):
    if kind == "imagenet":
        report = imagenet_macs(GENOTYPES[name])
    else:
        with torch.device("meta"):
            report = count_macs(Network(36, 10, 20, GENOTYPES[name]), (3, 32, 32))
    assert report.total == MACS[(kind, name)]
    assert {"stem", "preprocess", "sep_conv_3x3", "classifier"} <= set(report.by_group)
    assert report.pool_by_group.get("max_pool_3x3", 0) > 0 and report.pool > 0


def test_counting_runs_in_eval_without_the_aux_head_and_restores_the_model():
    torch.manual_seed(0)
    plain = NetworkImageNet(8, 1000, 5, DARTS_V2)
    with_aux = NetworkImageNet(8, 1000, 5, DARTS_V2, auxiliary=True).train()
    with_aux.drop_prob = 0.2
    report = count_macs(with_aux, (3, 224, 224))
    assert report == count_macs(plain, (3, 224, 224))
    assert "auxiliary_head" not in report.by_group
    assert with_aux.training and all(not m._forward_hooks for m in with_aux.modules())
    with torch.device("meta"):
        assert count_macs(NetworkImageNet(8, 1000, 5, DARTS_V2), (3, 224, 224)) == report


def test_fit_channels_returns_the_largest_even_c_under_the_budget():
    c = fit_channels(DARTS_V2, candidates=range(40, 61, 2))
    assert c == 50  # 573.5M; C=52 would exceed 600M
    assert imagenet_macs(DARTS_V2, 52).total >= 600e6
    just_above_c48 = MACS[("imagenet", "DARTS_V2")] + 1
    assert fit_channels(DARTS_V2, budget=just_above_c48, candidates=range(40, 61, 2)) == 48


@pytest.mark.parametrize("kwargs,match", [
    (dict(candidates=[48, 49]), "even channel counts"),
    (dict(candidates=[]), "even channel counts"),
    (dict(budget=0), "budget=0"),
    (dict(budget=1e6, candidates=[46, 48]), "no candidate C fits"),
])
def test_fit_channels_rejects_bad_arguments(kwargs, match):
    with pytest.raises(EGSError, match=match):
        fit_channels(DARTS_V2, **kwargs)


def test_fit_width_gives_the_paper_imagenet_training_the_widest_c_under_600m():
    """The paper's 600M budget (Sec. 4.1.3): DARTS_V2 fits C = 50 (573,472,800 multiply-adds); C = 52 exceeds it,
    and C = 51 cannot be built (the stem halves C)."""
    from egs.profiles.experiments import settings
    cfg = settings("train_imagenet", "paper")
    assert cfg.max_madds == 600_000_000 and not width_fitted(DARTS_V2, cfg)
    fitted = fit_width(DARTS_V2, cfg)
    assert fitted == dataclasses.replace(cfg, C=50) and width_fitted(DARTS_V2, fitted)
    assert imagenet_macs(DARTS_V2, 50).total == 573_472_800 <= cfg.max_madds < imagenet_macs(DARTS_V2, 52).total
    with pytest.raises(EGSError, match="C=51 is odd"):
        imagenet_macs(DARTS_V2, 51)
    exact = dataclasses.replace(cfg, max_madds=MACS[("imagenet", "DARTS_V2")])  # at most: C = 48's own count fits
    assert fit_width(DARTS_V2, exact).C == 48
    for off in (settings("train_imagenet", "smoke"), settings("train_imagenet", "cpu"),
                settings("train_cifar", "paper")):
        assert off.max_madds == 0 and fit_width(DARTS_V2, off) is off and width_fitted(DARTS_V2, off)


@pytest.mark.parametrize("change,match", [
    (dict(max_madds=1_000_000), r"max_madds=1,000,000: even the narrowest .* \(C=2.*raise max_madds"),
    (dict(dataset="cifar10"), "bounds the ImageNet mobile network.*max_madds=0"),
])
def test_fit_width_errors_name_the_budget_and_the_fix(change, match):
    from egs.profiles.experiments import settings
    with pytest.raises(EGSError, match=match):
        fit_width(DARTS_V2, dataclasses.replace(settings("train_imagenet", "paper"), **change))


@pytest.mark.parametrize("size", [(32, 32), (3, 32, 0), "32", (3, 32.0, 32)])
def test_bad_input_size_is_rejected(size):
    with pytest.raises(EGSError, match="input_size"):
        count_macs(nn.Conv2d(3, 3, 1), size)
