"""One search-space protocol: declared spaces, the shared supernet base, provenance, the authors' options."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from egs.conv.network import Network, count_parameters
from egs.arch.diagram import cell_diagram
from egs.core.errors import EGSError
from egs.arch.genotype import Genotype, load_genotype, save_genotype
from egs.arch.baselines import random_genotype
from egs.arch.published import DARTS_V2
from egs.rnn.model import RNNModel
from egs.rnn.supernet import RNNSupernet
from egs.arch.space import SPACES, declare_space, get_space
from egs.conv.supernet import Supernet

pytestmark = pytest.mark.usefixtures("one_thread")


class Conv1x1(nn.Sequential):
    def __init__(self, C: int, stride: int, affine: bool) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(C, C, 1, stride=stride, bias=False), nn.BatchNorm2d(C, affine=affine))


@pytest.fixture(scope="module")
def tiny():
    space = declare_space("tiny_conv", "conv", ("none", "skip_connect", "conv_1x1"), n_nodes=4,
                          builders={"conv_1x1": Conv1x1}, replace=True)
    assert SPACES["tiny_conv"] is space
    return space


def test_a_declared_conv_space_searches_derives_and_evaluates(tiny):
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=2, space="tiny_conv", lam=0.5, cost="flops")
    assert model.alpha_normal.shape == (len(tiny.edges()), 3) == (5, 3)  # 2 + 3 edges into nodes 2, 3
    assert model.credit_normal.argmax(-1).eq(0).all()  # free ops first: none (0 MACs) / skip
    loss = F.cross_entropy(model(torch.randn(2, 3, 8, 8), generator=torch.Generator().manual_seed(0)),
                           torch.tensor([0, 1]))
    loss.backward()
    assert model.alpha_normal.grad is not None
    genotype = model.derive("node")
    assert genotype.space == "tiny_conv" and genotype.normal.n_nodes == 4
    net = Network(4, 10, 3, genotype)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10) and count_parameters(net) > 0
    cell = type(genotype.normal)
    forced = Genotype(*[cell("tiny_conv", 4, {(0, 2): ["conv_1x1", "skip_connect"]}, (2, 3))] * 2)
    skip = Genotype(*[cell("tiny_conv", 4, {(0, 2): ["skip_connect"]}, (2, 3))] * 2)
    # one 1x1 conv (C*C) + BN (2C) per cell, C = 4, 8, 16 (reductions at cells 1 and 2)
    assert count_parameters(Network(4, 10, 3, forced)) - count_parameters(Network(4, 10, 3, skip)) == 392
    assert "conv_1x1" in cell_diagram(forced.normal).source
    assert random_genotype("tiny_conv", 0, style="node", M=2).normal.n_nodes == 4


def test_a_declared_recurrent_space_with_its_own_activation():
    declare_space("tiny_rnn", "rnn", ("none", "tanh", "softsign"), n_nodes=4, activations={"softsign": F.softsign},
                  replace=True)
    torch.manual_seed(0)
    sup = RNNSupernet(20, 6, 6, M=2, space="tiny_rnn")
    x = torch.randint(0, 20, (3, 2))
    logp, _ = sup(x, sup.init_hidden(2), generator=torch.Generator().manual_seed(1))
    assert logp.shape == (3, 2, 20)
    g = sup.derive("edge")
    assert g.space == "tiny_rnn" and RNNModel(20, 6, 6, g)(x, torch.zeros(1, 2, 6))[0].shape == (3, 2, 20)


def test_declaring_a_space_checks_its_ops():
    with pytest.raises(EGSError, match="not built in"):
        declare_space("bad1", "conv", ("none", "conv_7x7"))
    with pytest.raises(EGSError, match="'none' first"):
        declare_space("bad2", "conv", ("skip_connect", "none"))
    with pytest.raises(EGSError, match="taken"):
        declare_space("conv", "conv", ("none", "skip_connect"), replace=True)
    with pytest.raises(EGSError, match="unknown search space 'nope'"):
        get_space("nope")


def test_relu_effectiveness_and_the_authors_regulariser():
    torch.manual_seed(0)
    model = Supernet(4, 10, 3, M=3, lam=1.0, effectiveness="relu")
    assert torch.allclose(model.alpha_normal, torch.ones(14, 8), atol=0.01)  # the authors' start: 1 + noise
    h = model.effectiveness_credits()["normal"]
    assert torch.allclose(h, F.relu(model.alpha_normal) / F.relu(model.alpha_normal).sum(-1, keepdim=True))
    codes = {k: c.detach() for k, c in model.sample(torch.Generator().manual_seed(0)).items()}
    reg = model.arch_regularizer(codes)
    expected = sum((model.effectiveness_credits()[k] - codes[k] / codes[k].sum(-1, keepdim=True)).abs().mean()
                   for k in codes)
    assert torch.allclose(reg, expected)
    reg.backward()
    assert model.alpha_normal.grad.abs().sum() > 0 and all(p.grad is None for p in model.weight_parameters())


def test_genotype_provenance_round_trips_and_old_files_read(tmp_path):
    g = DARTS_V2.with_provenance(M=7, rule="node", run_id="abc", seed=3)
    path = save_genotype(g, tmp_path / "g.json")
    back = load_genotype(path)
    assert back == g and back.provenance["run_id"] == "abc" and back.provenance["name"] == "DARTS_V2"
    assert json.loads(path.read_text())["schema"] == "egs.genotype/2"
    old = json.loads(path.read_text())
    old["schema"] = "egs.genotype/1"
    del old["provenance"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert load_genotype(tmp_path / "old.json") == DARTS_V2 and load_genotype(tmp_path / "old.json").provenance is None
