"""Evaluation networks: DARTS parameter counts, auxiliary heads, drop-path, the ImageNet network."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from egs.conv.network import AuxiliaryHead, Network, NetworkImageNet, count_parameters
from egs.core.errors import EGSError
from egs.conv.evalnet import eval_network
from egs.arch.genotype import Genotype
from egs.arch.published import DARTS_V1, DARTS_V2, DARTS_V2_RNN
from egs.arch.formats import darts_cell

# Parameter counts of DARTS's own evaluation networks, counted on CPU from quark0/darts cnn/model.py
# (NetworkCIFAR(36, 10, 20, auxiliary=True, genotype), NetworkImageNet(48, 1000, 14, auxiliary=True,
# genotype)) side by side with ours: (total, without the auxiliary head).
DARTS_EVAL_PARAMS = {
    ("cifar", "DARTS_V1"): (3_645_840, 3_169_414),
    ("cifar", "DARTS_V2"): (3_825_768, 3_349_342),
    ("imagenet", "DARTS_V1"): (5_771_208, 4_510_432),
    ("imagenet", "DARTS_V2"): (5_979_528, 4_718_752),
}
GENOTYPES = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("kind,name", sorted(DARTS_EVAL_PARAMS))
def test_evaluation_networks_have_the_parameter_counts_of_darts(kind, name):
    with torch.device("meta"):  # shapes only: counting needs no weights
        net = (Network(36, 10, 20, GENOTYPES[name], auxiliary=True) if kind == "cifar"
               else eval_network(GENOTYPES[name], "imagenet", 48, 14, auxiliary=True))
    assert isinstance(net, NetworkImageNet if kind == "imagenet" else Network)
    total, no_aux = DARTS_EVAL_PARAMS[(kind, name)]
    assert count_parameters(net) == total
    assert count_parameters(net, exclude=("auxiliary_head",)) == no_aux


def test_heads_follow_darts_imagenet_head_has_no_bn_after_its_second_conv():
    cifar, imagenet = AuxiliaryHead(576, 10, 3, True), AuxiliaryHead(768, 1000, 2, False)
    for head, n_bn in ((cifar, 2), (imagenet, 1)):
        assert sum(isinstance(m, nn.BatchNorm2d) for m in head.features) == n_bn
        pool = head.features[1]
        assert (pool.kernel_size, pool.padding, pool.count_include_pad) == (5, 0, False)
    assert cifar.features[1].stride == 3 and imagenet.features[1].stride == 2
    assert count_parameters(cifar) == 576 * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * 10 + 10


def _calls(module: nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("imagenet", [False, True])
def test_auxiliary_head_acts_only_in_training(imagenet):
    torch.manual_seed(0)
    if imagenet:  # 224 -> 56 -> 28, reductions to 14 and 7: the head reads cell 2's 7x7 output
        net, x = NetworkImageNet(8, 10, 3, DARTS_V2, auxiliary=True), torch.randn(2, 3, 224, 224)
    else:         # 32x32, reductions at cells 1 and 2: the head reads cell 2's 8x8 output
        net, x = Network(4, 10, 3, DARTS_V2, auxiliary=True), torch.randn(2, 3, 32, 32)
    calls = _calls(net.auxiliary_head)
    net.train()
    logits, aux = net(x, with_aux=True)
    assert logits.shape == aux.shape == (2, 10) and len(calls) == 1
    (logits.sum() + aux.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.auxiliary_head.parameters())
    assert isinstance(net(x), torch.Tensor) and len(calls) == 1  # plain forward: logits, head not run
    net.eval()
    logits, aux = net(x, with_aux=True)
    assert aux is None and len(calls) == 1
    assert torch.equal(logits, net(x))


def test_network_without_head_gives_no_aux_logits_and_search_net_is_unchanged():
    net = Network(4, 10, 3, DARTS_V2).train()
    logits, aux = net(torch.randn(2, 3, 32, 32), with_aux=True)
    assert logits.shape == (2, 10) and aux is None and net.auxiliary_head is None
    supernet = Network(4, 10, 3)  # the search path: logits only, no head in its state
    assert not any(k.startswith("auxiliary_head") for k in supernet.state_dict())
    weights = {k: torch.ones(14, 8) for k in ("normal", "reduce")}
    active = {k: [["sep_conv_3x3", "skip_connect"]] * 14 for k in weights}
    assert supernet(torch.randn(2, 3, 8, 8), weights=weights, active=active).shape == (2, 10)


def test_the_cell_network_base_declares_its_contract():
    """stem_states is abstract (a subclass that omits it cannot be built); the head the base's forward reads
    is built by the base for both networks, under the state_dict names checkpoints hold."""
    from egs.conv.network import _CellNetwork

    class NoStem(_CellNetwork):
        pass

    with pytest.raises(TypeError, match="stem_states"):
        NoStem()
    assert {"global_pooling", "classifier", "auxiliary_head", "cells"} <= set(_CellNetwork.__annotations__)
    prefixes = {name: list(dict.fromkeys(k.split(".")[0] for k in net.state_dict()))
                for name, net in (("cifar", Network(4, 10, 3, DARTS_V2, auxiliary=True)),
                                  ("imagenet", NetworkImageNet(8, 10, 3, DARTS_V2, auxiliary=True)))}
    assert prefixes == {"cifar": ["stem", "cells", "classifier", "auxiliary_head"],
                        "imagenet": ["stem0", "stem1", "cells", "classifier", "auxiliary_head"]}


def test_auxiliary_head_rejects_a_feature_map_of_the_wrong_size():
    net = Network(4, 10, 3, DARTS_V2, auxiliary=True).train()
    with pytest.raises(EGSError, match="auxiliary head got a 4x4 feature map"):
        net(torch.randn(2, 3, 16, 16), with_aux=True)


def test_drop_path_acts_only_in_training():
    torch.manual_seed(0)
    net, x = Network(4, 10, 3, DARTS_V2), torch.randn(4, 3, 16, 16)
    net.eval()
    net.drop_prob = 0.0
    clean = net(x)
    net.drop_prob = 0.5
    assert torch.equal(net(x), clean) and torch.equal(net(x), clean)
    net.train()
    net.drop_prob = 0.0
    train_clean = net(x)
    assert torch.equal(net(x), train_clean)  # BN batch statistics alone are deterministic
    net.drop_prob = 0.5
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, train_clean) and not torch.allclose(a, net(x))


def test_drop_path_in_place_is_the_out_of_place_formula_bit_for_bit(monkeypatch):
    """drop_path scales an op's output in place (as DARTS does): the same logits and gradients as ``x * mask / keep``."""
    import egs.conv.network as network

    def step():
        torch.manual_seed(0)
        net = Network(8, 10, 5, DARTS_V2, auxiliary=True).train()
        net.drop_prob = 0.3
        logits, aux = net(torch.randn(8, 3, 32, 32), with_aux=True)
        (logits.logsumexp(1).sum() + aux.square().sum()).backward()
        return [logits.detach(), aux.detach()] + [p.grad for p in net.parameters()]

    fast = step()

    def out_of_place(x, drop_prob):
        keep = 1.0 - drop_prob
        return x * torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype).bernoulli_(keep) / keep
    monkeypatch.setattr(network, "drop_path", out_of_place)
    assert all(torch.equal(a, b) for a, b in zip(fast, step(), strict=True))


def test_drop_path_spares_identity_ops():
    skip = darts_cell([("skip_connect", 0), ("skip_connect", 1)] * 4, [2, 3, 4, 5])
    cell = Network(4, 10, 3, Genotype(skip, DARTS_V2.reduce)).train().cells[0]
    s = torch.randn(4, 12, 16, 16)
    assert torch.equal(cell(s, s, drop_prob=0.0), cell(s, s, drop_prob=0.5))


@pytest.mark.parametrize("value", [-0.1, 1.0, "0.2", True])
def test_bad_drop_prob_is_rejected(value):
    with pytest.raises(EGSError, match="drop_prob"):
        Network(4, 10, 3, DARTS_V2).drop_prob = value


def test_imagenet_network_gives_1000_logits_for_a_224_image():
    torch.manual_seed(0)
    net = NetworkImageNet(8, 1000, 14, DARTS_V2).eval()
    assert len(net.cells) == 14 and [i for i, c in enumerate(net.cells) if c.reduction] == [4, 9]
    with torch.no_grad():
        assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
        assert net(torch.randn(2, 3, 64, 64)).shape == (2, 1000)  # small images (cpu profile) work too


@pytest.mark.parametrize("build,match", [
    (lambda: NetworkImageNet(47, 1000, 14, DARTS_V2), "C=47 is odd"),
    (lambda: NetworkImageNet(48, 1000, 2, DARTS_V2), "layers=2"),
    (lambda: Network(36, 10, 2, DARTS_V2), "layers=2"),
    (lambda: NetworkImageNet(48, 1000, 14, None), "needs a genotype"),
    (lambda: Network(16, 10, 8, auxiliary=True), "auxiliary=True needs a genotype"),
    (lambda: Network(36, 10, 20, DARTS_V2_RNN), "conv genotype"),
    (lambda: Network(0, 10, 20, DARTS_V2), "C=0"),
    (lambda: NetworkImageNet(48, 0, 14, DARTS_V2), "num_classes=0"),
    (lambda: eval_network(DARTS_V2, "cifar100"), "dataset='cifar100'"),
])
def test_bad_network_arguments_raise_one_clear_error(build, match):
    with pytest.raises(EGSError, match=match):
        build()
