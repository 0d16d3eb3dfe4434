"""Candidate operations: registry, shapes, parameter counts and analytic multiply-adds."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from egs.core.errors import EGSError
from egs.conv.ops import ZERO, FactorizedReduce, conv_op_flops, conv_op_params, is_zero, make_conv_op
from egs.arch.space import CONV_OPS, RNN_OPS, get_space
from egs.rnn.ops import rnn_activation

C = 16


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registries_follow_darts_names_and_order():
    assert CONV_OPS == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert RNN_OPS == ("none", "tanh", "relu", "sigmoid", "identity")
    assert get_space("conv").ops is CONV_OPS and get_space("rnn").ops is RNN_OPS
    assert ZERO == "none" and is_zero("none") and not is_zero("skip_connect")


@pytest.mark.parametrize("name", CONV_OPS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_output_shape(name, stride, size):
    x = torch.randn(2, C, size, size)
    for affine in (False, True):
        for search in (False, True):
            y = make_conv_op(name, C, stride, affine, search=search)(x)
            expected = size if stride == 1 else (size + 1) // 2
            assert y.shape == (2, C, expected, expected)


def test_pinned_parameter_counts():
    # sep_conv_3x3, affine=False: 2 blocks x (depthwise 16*3*3 + pointwise 16*16) = 2*(144+256) = 800
    assert n_params(make_conv_op("sep_conv_3x3", C, 1, affine=False)) == 800
    # sep_conv_5x5, affine=True: 2*(16*25 + 256) + 2 BNs * 2*16 = 1312 + 64 = 1376
    assert n_params(make_conv_op("sep_conv_5x5", C, 2, affine=True)) == 1376
    # dil_conv_3x3, affine=False: 16*9 + 16*16 = 400
    assert n_params(make_conv_op("dil_conv_3x3", C, 1, affine=False)) == 400
    # dil_conv_5x5, affine=True: 16*25 + 256 + 2*16 = 688
    assert n_params(make_conv_op("dil_conv_5x5", C, 1, affine=True)) == 688
    # skip_connect at stride 2 = FactorizedReduce: 2 convs 16->8 (2*128) + BN 2*16 = 288
    assert n_params(make_conv_op("skip_connect", C, 2, affine=True)) == 288
    # identity, pools and zero have no parameters (search-mode pool BN is affine=False)
    for name in ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"):
        assert n_params(make_conv_op(name, C, 1, affine=True, search=True)) == 0


@pytest.mark.parametrize("name", CONV_OPS)
def test_analytic_params_match_modules(name):
    for stride in (1, 2):
        for affine in (False, True):
            module = make_conv_op(name, C, stride, affine)
            assert conv_op_params(name, C, stride, affine) == n_params(module)


def hooked_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Independent count: per output element, Conv2d does C_in/groups*kh*kw MACs, a pool k*k."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def pool_hook(m, inp, out):
        nonlocal total
        total += out[0].numel() * m.kernel_size * m.kernel_size

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            handles.append(m.register_forward_hook(pool_hook))
    with torch.no_grad():
        module(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", CONV_OPS)
def test_analytic_flops_match_hooks(name):
    for stride in (1, 2):
        for H, W in ((8, 8), (9, 6)):
            module = make_conv_op(name, C, stride, affine=False, search=True)
            assert conv_op_flops(name, C, H, W, stride) == hooked_macs(module, torch.randn(1, C, H, W))


def test_pinned_flops():
    # sep_conv_3x3 at 32x32, stride 1: 2 * (16*9 + 16*16) * 32*32 = 800 * 1024
    assert conv_op_flops("sep_conv_3x3", C, 32, 32, 1) == 819_200
    # skip at stride 2: FactorizedReduce 2 * 16*8 * 16*16
    assert conv_op_flops("skip_connect", C, 32, 32, 2) == 65_536
    assert conv_op_flops("skip_connect", C, 32, 32, 1) == 0
    assert conv_op_flops("none", C, 32, 32, 2) == 0
    assert conv_op_flops("max_pool_3x3", C, 32, 32, 2) == 9 * 16 * 16 * 16


def test_factorized_reduce_matches_shifted_convs_on_even_input():
    torch.manual_seed(0)
    fr = FactorizedReduce(8, 16, affine=False).eval()
    x = torch.randn(2, 8, 6, 6)
    r = torch.relu(x)
    expected = fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1))
    torch.testing.assert_close(fr(x), expected)


def test_pool_details():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(1, C, 1, 1)
    avg = make_conv_op("avg_pool_3x3", C, 1, affine=False)
    assert avg(x)[0, 0, 0, 0].item() == pytest.approx((0 + 1 + 4 + 5) / 4)  # padding not counted
    searched = make_conv_op("max_pool_3x3", C, 1, affine=False, search=True)
    assert isinstance(searched[1], nn.BatchNorm2d) and not searched[1].affine
    assert not isinstance(make_conv_op("max_pool_3x3", C, 1, affine=False), nn.Sequential)


def test_zero_and_identity():
    x = torch.randn(1, C, 5, 5)
    assert make_conv_op("skip_connect", C, 1, affine=True)(x) is x
    z = make_conv_op("none", C, 2, affine=True)(x)
    assert z.shape == (1, C, 3, 3) and not z.any()


def test_bad_input_raises_clear_errors():
    with pytest.raises(EGSError, match=r"'conv_7x7'.*sep_conv_3x3"):
        make_conv_op("conv_7x7", C, 1, affine=True)
    with pytest.raises(EGSError, match="stride=3"):
        make_conv_op("sep_conv_3x3", C, 3, affine=True)
    with pytest.raises(EGSError, match="C=15"):
        make_conv_op("skip_connect", 15, 2, affine=True)
    with pytest.raises(EGSError, match="C=0"):
        conv_op_params("sep_conv_3x3", 0, 1, affine=True)
    with pytest.raises(EGSError, match="'lstm'"):
        conv_op_flops("lstm", C, 8, 8, 1)
    with pytest.raises(EGSError, match="'cnn'"):
        get_space("cnn")


def test_rnn_activations():
    x = torch.linspace(-2, 2, 9)
    torch.testing.assert_close(rnn_activation("tanh")(x), torch.tanh(x))
    torch.testing.assert_close(rnn_activation("relu")(x), x.clamp(min=0))
    torch.testing.assert_close(rnn_activation("sigmoid")(x), torch.sigmoid(x))
    assert rnn_activation("identity")(x) is x
    assert not rnn_activation("none")(x).any()
    with pytest.raises(EGSError, match=r"'gelu'.*identity"):
        rnn_activation("gelu")
