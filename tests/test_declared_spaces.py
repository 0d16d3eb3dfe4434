"""A declared search space goes the whole way: search through the loop, derive, train its evaluation network."""
from __future__ import annotations

import pytest
import torch.nn as nn
import torch.nn.functional as F

from egs.core.errors import EGSError
from egs.arch.published import DARTS_V2, DARTS_V2_RNN
from egs.rnn.train import LMTrainer
from egs.rnn.search import RNNSearch
from egs.profiles.experiments import settings
from egs.conv.search import Search
from egs.engine.runs import derive
from egs.arch.space import declare_space
from egs.conv.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


class Conv1x1(nn.Sequential):
    def __init__(self, C: int, stride: int, affine: bool) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(C, C, 1, stride=stride, bias=False), nn.BatchNorm2d(C, affine=affine))


def test_a_declared_recurrent_space_searches_derives_and_trains(tmp_path, data_root):
    declare_space("myrnn", "rnn", ("none", "tanh", "softsign"), n_nodes=5, activations={"softsign": F.softsign},
                  replace=True)
    cfg = settings("rnn_search", "smoke", space="myrnn", epochs=1, train_tokens=400, val_tokens=100,
                   rule="select", select_candidates=2, select_batches=1)
    summary = RNNSearch(cfg, tmp_path / "search", data_root=data_root, progress=False).run()
    assert summary["space"] == "myrnn" and summary["rule"] == "select"
    for rule in ("node", "select", "edge"):
        g = derive(tmp_path / "search", rule, data_root=data_root)
        assert g.space == "myrnn" and g.normal.n_nodes == 5 and g.provenance["rule"] == rule
    train = settings("lm_train_ptb", "smoke", epochs=1, train_tokens=400, val_tokens=100, test_tokens=100)
    trainer = LMTrainer(train, g, tmp_path / "train", data_root=data_root, progress=False)
    out = trainer.run()  # the family decides, not the name "rnn"
    assert out["val_ppl"] > 1 and out["params"] > 0
    assert {op for ops in g.normal.edges.values() for op in ops} <= {"tanh", "softsign"}
    with pytest.raises(EGSError, match="recurrent-family genotype, got space 'conv'"):
        LMTrainer(train, DARTS_V2, tmp_path / "wrong", data_root=data_root, progress=False)


def test_a_declared_conv_space_searches_derives_and_trains(tmp_path, data_root):
    declare_space("myconv", "conv", ("none", "skip_connect", "conv_1x1", "max_pool_3x3"), n_nodes=4,
                  builders={"conv_1x1": Conv1x1}, replace=True)
    cfg = settings("search", "smoke", space="myconv", epochs=1, train_size=16, val_size=16)
    summary = Search(cfg, tmp_path / "search", data_root=data_root, progress=False).run()
    assert summary["space"] == "myconv"
    g = derive(tmp_path / "search", "edge")
    assert g.space == "myconv" and g.normal.n_nodes == g.reduce.n_nodes == 4
    out = Trainer(settings("train_cifar", "smoke", epochs=1, train_size=16, test_size=16), g, tmp_path / "train",
                  data_root=data_root, progress=False).run()
    assert 0 <= out["test_top1_err"] <= 1 and out["params"] > 0
    with pytest.raises(EGSError, match="rnn"):
        Trainer(settings("train_cifar", "smoke", epochs=1), DARTS_V2_RNN, tmp_path / "wrong", data_root=data_root,
                progress=False)
