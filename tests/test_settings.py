"""Run settings: one base, validated on construction, one way to set each value on the command line."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from egs.profiles import experiments as profiles
from egs.cli.main import _settings_from, main
from egs.core.checks import smallest_tau
from egs.core.errors import EGSError
from egs.arch.published import DARTS_V2_RNN
from egs.rnn.train import LMTrainer
from egs.rnn.search import RNNSearch
from egs.profiles.fields import FIELD_CHECKS, PROFILES
from egs.profiles.experiments import ArchSettings, LMSettings, RunSettings, SearchSettings, settings
from egs.conv.search import Search

EXPERIMENTS = sorted(profiles.EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_setting_of_every_profile_has_a_rule(experiment):
    for profile in PROFILES:
        cfg = settings(experiment, profile)
        assert all(f.name in FIELD_CHECKS for f in dataclasses.fields(cfg))
        if experiment not in ("sampling", "protocol"):
            assert isinstance(cfg, RunSettings)
    assert isinstance(settings("rnn_search", "smoke"), ArchSettings) and isinstance(settings("rnn_search", "smoke"),
                                                                                    LMSettings)


@pytest.mark.parametrize("changes,match", [
    ({"epochs": 1.5}, "epochs=1.5 must be an integer"), ({"epochs": "2"}, "epochs='2' must be an integer"),
    ({"epochs": True}, "epochs=True"), ({"epochs": 0}, "epochs=0 must be an integer >= 1"),
    ({"M": 0}, "M=0"), ({"lam": "abc"}, "lam='abc' must be a number"), ({"lam": 1.5}, r"lam=1.5 must be in \[0, 1\]"),
    ({"tau_end": math.nan}, "tau_end=nan must be a finite number"), ({"tau_start": math.inf}, "tau_start=inf"),
    ({"tau_start": 0.0}, "tau_start=0.0 must be > 0"), ({"lr": -0.1}, "lr=-0.1"), ({"mode": "greedy"}, "mode='greedy'"),
    ({"cost": "watts"}, "cost='watts'"), ({"amp": 1}, "amp=1 must be true or false"), ({"seed": -1}, "seed=-1"),
    ({"arch_beta1": 1.0}, "arch_beta1=1.0"), ({"device": ""}, "device=''"), ({"layers": 2}, "layers=2"),
])
def test_bad_values_raise_one_error_naming_the_setting(changes, match):
    with pytest.raises(EGSError, match=match):
        settings("search", "smoke", **changes)
    with pytest.raises(EGSError, match=match):  # also on direct construction and dataclasses.replace
        dataclasses.replace(settings("search", "smoke"), **changes)


def test_other_experiments_validate_their_own_fields():
    with pytest.raises(EGSError, match="drop_path=1.0"):
        settings("train_cifar", "smoke", drop_path=1.0)
    with pytest.raises(EGSError, match="corpus='penn'"):
        settings("lm_train_ptb", "smoke", corpus="penn")
    with pytest.raises(EGSError, match="dropoute=-0.1"):
        profiles.RNNSearchSettings(dropoute=-0.1)
    with pytest.raises(EGSError, match="Ms entry=0"):
        settings("sampling", "smoke", Ms=(1, 0))
    with pytest.raises(EGSError, match="unknown setting"):
        settings("search", "smoke", depth=3)


def test_ints_for_float_settings_become_floats_and_config_json_round_trips():
    cfg = SearchSettings(lr=1, lam=1)
    assert type(cfg.lr) is float and type(cfg.lam) is float
    assert SearchSettings(**json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg


def test_one_temperature_schedule():
    cfg = settings("search", "smoke", epochs=3, tau_start=2.0, tau_end=0.5)
    assert [cfg.temperature(e) for e in range(3)] == pytest.approx([2.0, 1.0, 0.5])
    assert settings("rnn_search", "smoke", epochs=1, tau_start=2.0).temperature(0) == 2.0
    with pytest.raises(EGSError, match="temperature of epoch"):
        settings("search", "smoke", epochs=3000, tau_start=1e-30, tau_end=1e300)


@pytest.mark.parametrize("changes,match", [
    ({"tau_end": 1e-40}, r"^tau_end=1e-40 is below 3.76e-37, the smallest temperature the sampler accepts .*"
                         r"use tau_end >= 3.76e-37\.$"),
    ({"tau_start": 1e-38, "tau_end": 1.0}, r"^tau_start=1e-38 is below 3.76e-37"),
    # both ends accepted, but tau_end / tau_start underflows: epoch 2 of the geometric schedule would sample at 0
    ({"epochs": 3, "tau_start": 1e300, "tau_end": 1e-30}, r"^the temperature of epoch 2 \(geometric schedule from "
                                                           r"tau_start=1e\+300 to tau_end=1e-30\)=0.0 must be > 0"),
])
def test_the_whole_temperature_schedule_is_checked_against_the_sampler(changes, match):
    with pytest.raises(EGSError, match=match):
        settings("search", "smoke", **changes)
    assert settings("search", "smoke", epochs=3, tau_start=1.0, tau_end=smallest_tau()).temperature(2) == smallest_tau()


def test_a_space_of_the_other_family_is_refused_naming_both():
    with pytest.raises(EGSError, match=r"^space='rnn' belongs to the 'rnn' family, but SearchSettings searches "
                                       r"'conv'-family spaces; .* egs.settings\('rnn_search', ..., space='rnn'\)"):
        settings("search", "smoke", space="rnn")
    with pytest.raises(EGSError, match=r"space='conv' belongs to the 'conv' family, but RNNSearchSettings"):
        settings("rnn_search", "smoke", space="conv")
    assert settings("search", "smoke", space="conv").space == "conv"


def test_searches_set_the_schedule_temperature_every_epoch(tmp_path, data_root):
    for loop, experiment in ((Search, "search"), (RNNSearch, "rnn_search")):
        cfg = settings(experiment, "smoke", tau_start=2.0, tau_end=0.5, device="cpu")
        run = loop(cfg, tmp_path / experiment, data_root=data_root, progress=False)
        run.run()
        taus = [r["tau"] for r in run.log.read() if r["type"] == "epoch"]
        assert taus == [cfg.temperature(e) for e in range(cfg.epochs)] == [2.0, 0.5]


def test_cli_gives_each_value_one_way(capsys):
    assert _settings_from({"M": 7, "seed": None}, ["M=7", "lam=0.3"]) == {"M": 7, "lam": 0.3}
    assert main(["search", "--profile", "smoke", "--M", "7", "--set", "M=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "M is given twice" in err and "--M 7" in err and "--set M=3" in err
    assert main(["search", "--profile", "smoke", "--set", "epochs=1.5"]) == 2
    assert "epochs=1.5 must be an integer" in capsys.readouterr().err
    assert main(["train", "DARTS_V2", "--profile", "smoke", "--set", "lam=0.5"]) == 2
    assert "unknown setting(s) lam" in capsys.readouterr().err


def _lm_weights(tmp_path, data_root, name: str, micro_batch: int) -> dict[str, torch.Tensor]:
    cfg = settings("lm_train_ptb", "smoke", epochs=1, micro_batch=micro_batch, dropout=0.0, dropouth=0.0,
                   dropoutx=0.0, dropouti=0.0, dropoute=0.0, device="cpu")
    run = LMTrainer(cfg, DARTS_V2_RNN, tmp_path / name, data_root=data_root, progress=False)
    run.run()
    assert run.hidden.value.shape == (1, cfg.batch_size, cfg.emb)
    return run.model.state_dict()


def test_language_models_split_micro_batches_over_streams(tmp_path, data_root):
    """Without dropout a language model has no per-row randomness or batch statistics, so two
    micro-batches of 2 streams train exactly like one batch of 4 (up to float rounding)."""
    whole, split = _lm_weights(tmp_path, data_root, "whole", 0), _lm_weights(tmp_path, data_root, "split", 2)
    assert all(torch.allclose(whole[k], split[k], atol=1e-6) for k in whole)
    cfg = settings("lm_train_ptb", "smoke", micro_batch=3, device="cpu")
    run = LMTrainer(cfg, DARTS_V2_RNN, tmp_path / "bad", data_root=data_root, progress=False)
    with pytest.raises(EGSError, match="micro_batch=3 must divide the per-process batch of 4"):
        run.run()


def test_the_tables_search_m1_for_the_protocols_single_draw_epochs():
    """M = 1 is searched for the protocol's `single_draw_epochs` (cpu: 12), unless epochs are given; other M,
    and profiles without it (paper), keep the search settings' own epochs."""
    from egs.profiles.experiments import search_settings
    cpu = settings("protocol", "cpu").single_draw_epochs
    assert cpu == 12 and search_settings("cpu", M=1).epochs == cpu
    assert search_settings("cpu", M=1, epochs=2).epochs == 2
    assert search_settings("cpu", M=7).epochs == search_settings("cpu").epochs == settings("search", "cpu").epochs
    assert search_settings("paper", M=1) == settings("search", "paper", M=1)
    with pytest.raises(EGSError, match="single_draw_epochs"):
        settings("protocol", "cpu", single_draw_epochs=-1)
