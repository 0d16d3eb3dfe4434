"""Recurrent search and language-model training: runs, exact resume, NT-ASGD, CLI."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from egs.core.errors import EGSError
from egs.arch.genotype import load_genotype
from egs.arch.published import DARTS_V2_RNN
from egs.rnn.train import NTASGD, LMTrainer
from egs.rnn.search import RNNSearch
from egs.profiles.experiments import settings
from egs.engine.runs import derive

SEARCH = settings("rnn_search", "smoke")
TRAIN = settings("lm_train_ptb", "smoke")


def _equal_runs(a, b) -> None:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    strip = lambda log: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in log.read()]  # noqa: E731
    assert strip(a.log) == strip(b.log)


def test_rnn_search_runs_derives_and_resumes_exactly(tmp_path, data_root):
    full = RNNSearch(SEARCH, tmp_path / "full", data_root=data_root, progress=False)
    alpha0 = full.model.alpha_normal.detach().clone()
    summary = full.run()
    assert not torch.equal(alpha0, full.model.alpha_normal.detach())  # joint mode moved the logits
    genotype = load_genotype(tmp_path / "full" / "genotype.json")
    assert genotype.space == "rnn" and summary["derived_ops"] == genotype.num_active_ops()
    assert derive(tmp_path / "full") == genotype
    record = [r for r in full.log.read() if r["type"] == "epoch"][-1]
    assert len(record["p"]) == 36 and record["val_ppl"] > 1
    part = RNNSearch(SEARCH, tmp_path / "part", data_root=data_root, progress=False)
    with pytest.raises(KeyboardInterrupt):
        part.run(stop_after_steps=part.steps_per_epoch() + 3)  # mid-way through epoch 2
    resumed = RNNSearch(SEARCH, tmp_path / "part", resume=True, data_root=data_root, progress=False)
    resumed.run()
    _equal_runs(full, resumed)


def test_bilevel_rnn_search(tmp_path, data_root):
    run = RNNSearch(dataclasses.replace(SEARCH, mode="bilevel", epochs=1), tmp_path / "b", data_root=data_root,
                    progress=False)
    alpha0 = run.model.alpha_normal.detach().clone()
    run.run()
    assert not torch.equal(alpha0, run.model.alpha_normal.detach())
    with pytest.raises(EGSError, match="mode='greedy'"):
        RNNSearch(dataclasses.replace(SEARCH, mode="greedy"), tmp_path / "g", data_root=data_root)


def test_short_training_lowers_perplexity_and_resumes_exactly(tmp_path, data_root):
    cfg = dataclasses.replace(TRAIN, epochs=3)
    full = LMTrainer(cfg, DARTS_V2_RNN, tmp_path / "full", data_root=data_root, progress=False)
    summary = full.run()
    epochs = [r for r in full.log.read() if r["type"] == "epoch"]
    assert epochs[-1]["train_ppl"] < epochs[0]["train_ppl"]
    assert summary["test_ppl"] > 1 and summary["params_paper_size"] == 22_960_000
    part = LMTrainer(cfg, DARTS_V2_RNN, tmp_path / "part", data_root=data_root, progress=False)
    with pytest.raises(KeyboardInterrupt):
        part.run(stop_after_steps=part.steps_per_epoch() + 2)
    resumed = LMTrainer(cfg, DARTS_V2_RNN, tmp_path / "part", resume=True, data_root=data_root, progress=False)
    resumed.run()
    _equal_runs(full, resumed)


def test_ntasgd_switches_when_validation_stops_improving_and_averages():
    w = torch.nn.Parameter(torch.zeros(3))
    opt = NTASGD([w], lr=0.1, weight_decay=0.0, nonmono=2)
    for loss in (5.0, 4.0, 3.0, 3.5):  # 3.5 > min(5, 4): no switch yet (needs > nonmono epochs of history)
        opt.observe(loss)
    assert opt.kind == "sgd"
    opt.observe(4.5)  # 4.5 > min(history[:-2]) = 4.0 -> averaged SGD
    assert opt.kind == "asgd" and isinstance(opt.opt, torch.optim.ASGD)
    for target in (1.0, 3.0, 5.0):  # torch applies the averaging weight with one step of lag
        opt.opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.opt.step()
    current = w.detach().clone()
    with opt.averaged():
        assert not torch.equal(w.detach(), current)  # the running average is swapped in
    assert torch.equal(w.detach(), current)  # and swapped back
    restored = NTASGD([w], lr=0.1, weight_decay=0.0, nonmono=2)
    restored.load_state_dict(opt.state_dict())
    assert restored.kind == "asgd" and restored.history == opt.history


def test_tar_reaches_the_weight_loss_only_and_the_test_stream_follows_test_batch_size(tmp_path, data_root,
                                                                                       monkeypatch):
    import egs.rnn.search as search
    import egs.rnn.train as train
    from egs.rnn.lm import lm_loss
    betas = []

    def spy(*args, tar_beta=0.0, **kw):
        betas.append(tar_beta)
        return lm_loss(*args, tar_beta=tar_beta, **kw)
    monkeypatch.setattr(search, "lm_loss", spy)
    run = RNNSearch(dataclasses.replace(SEARCH, mode="bilevel", tar_beta=0.01), tmp_path / "s", data_root=data_root,
                    progress=False)
    run.begin_epoch()
    run.train_step(next(iter(run.batches(0, 0))))
    assert betas == [0.0, 0.01]  # DARTS: alpha's search-val loss has no TAR (rnn/architect.py), the weights' has
    monkeypatch.setattr(train, "lm_loss", spy)
    betas.clear()
    trainer = LMTrainer(dataclasses.replace(TRAIN, tar_beta=0.02, test_batch_size=3), DARTS_V2_RNN, tmp_path / "t",
                        data_root=data_root, progress=False)
    trainer.begin_epoch()
    trainer.train_step(next(iter(trainer.batches(0, 0))))
    assert betas == [0.02] and trainer.test.shape[1] == 3 and trainer.data.val.shape[1] == TRAIN.eval_batch_size
    paper, cpu = settings("lm_train_ptb", "paper"), settings("lm_train_ptb", "cpu")
    assert (paper.test_batch_size, paper.tar_beta, cpu.test_batch_size, cpu.tar_beta) == (1, 1e-3, 10, 0.0)
    for bad in (dict(test_batch_size=0), dict(tar_beta=-1.0)):
        with pytest.raises(EGSError, match=next(iter(bad))):
            dataclasses.replace(TRAIN, **bad)


def test_rnn_search_mixes_the_efficiency_credit_at_the_papers_lambda():
    from egs.rnn.search import _supernet
    from egs.rnn.supernet import efficiency_credit
    profiles = [settings("rnn_search", p) for p in ("smoke", "cpu", "paper")]
    assert [(c.lam, c.tar_beta) for c in profiles] == [(1.0, 0.0), (1.0, 0.0), (0.5, 1e-3)]  # cpu as validated
    model = _supernet(dataclasses.replace(SEARCH, lam=0.5), 30)
    credit = efficiency_credit("rnn", SEARCH.emb)
    assert torch.equal(model.credit_normal, credit.expand(36, 5))
    want = 0.5 * torch.softmax(model.alpha_normal, -1) + 0.5 * credit
    assert torch.allclose(model.probabilities()["normal"], want)


def test_lm_trainer_rejects_a_conv_genotype(tmp_path, data_root):
    from egs.arch.published import DARTS_V2
    with pytest.raises(EGSError, match="recurrent-family genotype, got space .conv."):
        LMTrainer(TRAIN, DARTS_V2, tmp_path / "x", data_root=data_root)


def test_cli_rnn_search_and_wikitext2_training(tmp_path, data_root):
    env = {"EGS_DATA_DIR": str(data_root), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "egs", "search", "--space", "rnn", "--profile", "smoke",
                          "--epochs", "1", "--run-dir", str(tmp_path / "s"), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    train = subprocess.run([sys.executable, "-m", "egs", "train", str(tmp_path / "s" / "genotype.json"),
                            "--dataset", "wikitext2", "--profile", "smoke", "--epochs", "1",
                            "--run-dir", str(tmp_path / "t"), "--no-progress"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout)["corpus"] == "wikitext2"
    bad = subprocess.run([sys.executable, "-m", "egs", "search", "--space", "rnn", "--cost", "flops",
                          "--profile", "smoke"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--cost applies to the conv space" in bad.stderr
