"""Training a genotype from scratch: loss goes down, exact resume, ImageNet wiring, errors."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch

from egs.core.errors import EGSError
from egs.arch.baselines import random_genotype
from egs.arch.published import DARTS_V2
from egs.profiles.experiments import settings
from egs.conv.train import Trainer
from egs.families import resolve_genotype
from egs.repro.stats import interval

SMOKE = settings("train_cifar", "smoke")


def test_short_training_lowers_the_loss(tmp_path, data_root):
    cfg = dataclasses.replace(SMOKE, epochs=4, train_size=64, lr=0.05, drop_path=0.0, cutout=0)
    run = Trainer(cfg, DARTS_V2, tmp_path / "run", data_root=data_root, progress=False)
    summary = run.run()
    losses = [r["train_loss"] for r in run.log.read() if r["type"] == "epoch"]
    assert losses[-1] < losses[0]
    assert 0 <= summary["test_top1_err"] <= 1 and summary["test_top5_err"] <= summary["test_top1_err"]
    assert summary["params"] == summary["params_with_aux"]  # no auxiliary tower at smoke


def test_evaluation_batches_change_the_speed_only(tmp_path, data_root):
    """Evaluation runs in EVAL_BATCH batches, channels-last on CPU (benchmarks/README.md): the same errors as the
    training batch size in NCHW, and the same loss up to float rounding."""
    from egs.conv.train import EVAL_BATCH
    from egs.data.cifar import TensorBatches
    run = Trainer(SMOKE, DARTS_V2, tmp_path / "run", data_root=data_root, progress=False)
    run.run()
    assert run.test.batch_size == EVAL_BATCH and run.test.channels_last
    fast = run.evaluate("test")
    run.test = TensorBatches(run.test.images, run.test.labels, SMOKE.batch_size, augment=False, drop_last=False,
                             seed=SMOKE.seed)
    plain = run.evaluate("test")
    assert fast["test_top1_err"] == plain["test_top1_err"] and fast["test_top5_err"] == plain["test_top5_err"]
    assert fast["test_loss"] == pytest.approx(plain["test_loss"], rel=1e-5)


def test_resume_equals_uninterrupted(tmp_path, data_root):
    cfg = dataclasses.replace(SMOKE, drop_path=0.2)  # drop-path draws random masks: resume must restore them too
    g = random_genotype("conv", 3, M=4)
    full = Trainer(cfg, g, tmp_path / "full", data_root=data_root, progress=False)
    full.run()
    part = Trainer(cfg, g, tmp_path / "part", data_root=data_root, progress=False)
    with pytest.raises(KeyboardInterrupt):
        part.run(stop_after_steps=len(part.train) + 1)
    resumed = Trainer(cfg, g, tmp_path / "part", resume=True, data_root=data_root, progress=False)
    resumed.run()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda log: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in log.read()]  # noqa: E731
    assert strip(full.log) == strip(resumed.log)
    with pytest.raises(EGSError, match="differ in genotype"):
        Trainer(cfg, DARTS_V2, tmp_path / "part", resume=True, data_root=data_root)


def test_auxiliary_tower_trains_with_weight(tmp_path, data_root):
    cfg = dataclasses.replace(SMOKE, image_size=32, auxiliary_weight=0.4, epochs=1, train_size=16)
    run = Trainer(cfg, DARTS_V2, tmp_path / "aux", data_root=data_root, progress=False)
    head = [p.detach().clone() for p in run.model.auxiliary_head.parameters()]
    summary = run.run()
    assert any(not torch.equal(h, p) for h, p in zip(head, run.model.auxiliary_head.parameters()))
    assert summary["params_with_aux"] > summary["params"]


def test_interval_over_training_seeds():
    s = interval([2.0, 3.0, 4.0])
    assert s.mean == 3.0 and s.std == 1.0
    assert s.half == pytest.approx(4.303 / math.sqrt(3), rel=1e-4)
    assert math.isnan(interval([2.5]).half)
    with pytest.raises(EGSError):
        interval([])


def test_resolve_genotype_and_bad_settings(tmp_path, data_root):
    assert resolve_genotype("DARTS_V2") == DARTS_V2
    assert resolve_genotype("random", seed=1) == resolve_genotype("random", seed=1)
    with pytest.raises(EGSError, match="neither a file nor a known name"):
        resolve_genotype("DARTS_V9")
    with pytest.raises(EGSError, match="schedule='step'"):
        Trainer(dataclasses.replace(SMOKE, schedule="step"), DARTS_V2, tmp_path / "x", data_root=data_root)
    with pytest.raises(EGSError, match="dataset='mnist'"):
        Trainer(dataclasses.replace(SMOKE, dataset="mnist"), DARTS_V2, tmp_path / "y", data_root=data_root)


def test_missing_imagenet_is_a_clear_error(tmp_path):
    cfg = settings("train_imagenet", "smoke")
    with pytest.raises(EGSError, match="ImageNet not found.*licence"):
        Trainer(cfg, DARTS_V2, tmp_path / "run", data_root=tmp_path)


def test_imagenet_holds_out_balanced_training_images_whatever_the_seed(tmp_path):
    from conftest import make_image_folder
    from egs.data.imagenet import FolderBatches
    folder = make_image_folder(tmp_path, classes=3, per_class=4, size=36) / "imagenet" / "train"
    kw = dict(train=True, image_size=32, workers=0, hold_out=3, hold_out_seed=1)
    a, b = FolderBatches(folder, 2, seed=0, **kw), FolderBatches(folder, 2, seed=5, size=4, **kw)
    assert torch.equal(a.held, b.held) and sorted(torch.tensor(a.dataset.targets)[a.held].tolist()) == [0, 1, 2]
    assert len(a.indices) == 9 and not torch.isin(a.indices, a.held).any() and torch.isin(b.indices, a.indices).all()
    val = a.held_out(2)
    assert len(val) == 2 and [len(y) for _, y in val.batches(0)] == [2, 1] and next(val.batches(0))[0].shape[-1] == 32
    with pytest.raises(EGSError, match="val_size=13 is more than the 12 images"):
        FolderBatches(folder, 2, seed=0, **{**kw, "hold_out": 13})


def test_imagenet_training_validates_every_epoch_and_tests_once(tmp_path, monkeypatch, capsys):
    """`egs train` fits C to max_madds before the run records its settings, evaluates the held-out slice every
    epoch and the test (ILSVRC val) folder once, at the end."""
    from conftest import make_image_folder
    from egs.cli.main import main
    from egs.conv.macs import imagenet_macs
    monkeypatch.setenv("EGS_DATA_DIR", str(make_image_folder(tmp_path / "data", classes=3, per_class=4, size=36)))
    splits, evaluate = [], Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate", lambda self, split="test": splits.append(split) or evaluate(self, split))
    budget = imagenet_macs(DARTS_V2, 8, 3, 32).total  # C = 8 fits exactly, C = 10 does not
    run = tmp_path / "run"
    argv = ["train", "DARTS_V2", "--dataset", "imagenet", "--profile", "smoke", "--epochs", "2", "--run-dir",
            str(run), "--no-progress", "--set", "val_size=3", "--set", f"max_madds={budget}"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert splits == ["val", "val", "test"]
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["type"] == "epoch"]
    assert len(epochs) == 2 and all("val_top1_err" in r and "test_top1_err" not in r for r in epochs)
    assert {"test_top1_err", "val_top1_err"} <= set(summary)
    config = json.loads((run / "config.json").read_text())
    assert (config["C"], config["val_size"], config["max_madds"]) == (8, 3, budget)
    assert main([*argv, "--set", "C=6"]) == 2 and "both choose the width" in capsys.readouterr().err
    cfg = dataclasses.replace(settings("train_imagenet", "smoke"), max_madds=budget)  # C = 4: not the fit
    with pytest.raises(EGSError, match=r"C=4 is not the width .* fits \(C=8\).*fit_width"):
        Trainer(cfg, DARTS_V2, tmp_path / "unfitted")


def test_cli_train_and_clean_errors(tmp_path, data_root):
    env = {"EGS_DATA_DIR": str(data_root), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "egs", "train", "DARTS_V2", "--profile", "smoke", "--epochs", "1",
                          "--run-dir", str(tmp_path / "t"), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["dataset"] == "cifar10"
    bad = subprocess.run([sys.executable, "-m", "egs", "train", "nope.json", "--profile", "smoke"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "nope.json" in bad.stderr and "Traceback" not in bad.stderr
