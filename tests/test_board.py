"""TensorBoard monitoring (egs.engine.board): what it writes, that a resumed run's curves equal an uninterrupted
run's, and the profiles that turn it on."""
from __future__ import annotations

import sys

import pytest

import egs
from egs.engine.board import Board, scalars
from egs.core.errors import EGSError
from egs.engine.signals import Interrupted
from egs.conv.search import Search


def read_events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    curves = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    images = {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
    return curves, images


def test_scalars_flatten_a_record():
    record = {"type": "epoch", "epoch": 3, "val_acc": 0.5, "tau": 1, "ok": True, "name": "x", "nan": float("nan"),
              "entropy": {"normal": [1.0, 3.0], "reduce": [2.0]}, "p": {"normal": [[0.5, 0.5]]}}
    assert dict(scalars(record)) == {"val_acc": 0.5, "tau": 1.0, "entropy/normal": 2.0, "entropy/reduce": 2.0}


def test_only_the_paper_profile_writes_events_by_default():
    for experiment in ("search", "rnn_search", "train_cifar", "lm_train_ptb"):
        assert egs.settings(experiment, "paper").tensorboard
        assert not egs.settings(experiment, "cpu").tensorboard and not egs.settings(experiment, "smoke").tensorboard


def test_resumed_search_curves_equal_an_uninterrupted_one(tmp_path, data_root, one_thread):
    cfg = egs.settings("search", "smoke", tensorboard=True, device="cpu", log_every=1)
    Search(cfg, tmp_path / "whole", data_root=data_root, progress=False).run()
    with pytest.raises(Interrupted):
        Search(cfg, tmp_path / "cut", data_root=data_root, progress=False).run(stop_after_steps=7)
    Search(cfg, tmp_path / "cut", resume=True, data_root=data_root, progress=False).run()
    whole, images = read_events(tmp_path / "whole" / "tensorboard")
    cut, cut_images = read_events(tmp_path / "cut" / "tensorboard")
    steps = 2 * (cfg.train_size // cfg.batch_size)
    assert [s for s, _ in whole["step/loss"]] == list(range(1, steps + 1))
    for tag in ("epoch/val_acc", "epoch/tau", "epoch/entropy_h/normal", "epoch/expected_active_ops/reduce"):
        assert [s for s, _ in whole[tag]] == [1, 2]
    assert images == cut_images == {"cells/normal": [1, 2], "cells/reduce": [1, 2]}
    del whole["epoch/elapsed_s"], cut["epoch/elapsed_s"]  # wall-clock time, the one thing that may differ
    assert cut == whole


def test_off_writes_nothing_and_a_missing_package_is_one_clear_error(tmp_path, monkeypatch):
    Board(tmp_path, 10, enabled=False).write({"type": "epoch", "epoch": 1, "val_acc": 0.5})
    assert not (tmp_path / "tensorboard").exists()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(EGSError, match=r"pip install 'egs\[tensorboard\]'.*tensorboard=False"):
        Board(tmp_path, 10, enabled=True)
