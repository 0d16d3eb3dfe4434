"""One way to set each value on the command line, and one dispatch on the search space's family."""
from __future__ import annotations

import json

import pytest

import egs
from egs.cli.main import main


def _error(capsys, *argv: str) -> str:
    """The one stderr line of a command that must fail with status 2."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("egs: error: "), err
    return err


@pytest.mark.parametrize("argv,sources", [
    (("search", "--M", "3", "--M", "5"), "--M is given twice with different values (--M 3 and --M 5)"),
    (("search", "--lambda", "0.3", "--lambda", "0.4"), "(--lambda 0.3 and --lambda 0.4)"),
    (("derive", "RUN", "--method", "node", "--rule", "edge"), "--method/--rule is given twice with different values "
     "(--method node and --rule edge)"),
    (("search", "--profile", "smoke", "--set", "M=3", "--set", "M=4"), "M is given twice with different values "
     "(--set M=3 and --set M=4)"),
    (("search", "--profile", "smoke", "--lambda", "0.3", "--set", "lam=0.4"), "(--lambda 0.3 and --set lam=0.4)"),
    (("search", "--profile", "smoke", "--space", "conv", "--set", "space=rnn"), "space is given twice with different "
     "values (--space conv and --set space=rnn)"),
    (("reproduce", "--only", "01", "--only", "02"), "(--only 01 and --only 02)"),
])
def test_a_value_given_twice_differently_names_both_sources(capsys, argv, sources):
    assert sources in _error(capsys, *argv)


def test_the_same_value_twice_is_no_conflict(capsys):
    """Agreeing repeats pass the check; the bad epochs value then shows the command got that far."""
    err = _error(capsys, "search", "--profile", "smoke", "--M", "3", "--M", "3", "--set", "M=3", "--rule", "node",
                 "--rule", "node", "--epochs", "0")
    assert "epochs=0 must be an integer >= 1" in err


@pytest.mark.parametrize("argv", [("--set", "space=rnn"), ("--space", "rnn"), ("--space", "rnn", "--set", "space=rnn")])
def test_space_from_set_or_space_picks_the_recurrent_settings(capsys, argv):
    """bptt is a recurrent setting: a range error (not "unknown setting") shows RNNSearchSettings were built."""
    err = _error(capsys, "search", "--profile", "smoke", *argv, "--set", "bptt=1")
    assert "bptt=1 must be an integer >= 2" in err
    assert "unknown setting(s) bptt" in _error(capsys, "search", "--profile", "smoke", "--set", "bptt=1")


@pytest.mark.parametrize("dataset,family", [("ptb", "rnn"), ("wikitext2", "rnn"), ("cifar10", "conv"),
                                            ("imagenet", "conv")])
def test_training_dispatches_on_the_datasets_family(capsys, dataset, family):
    err = _error(capsys, "train", "DARTS_V2", "--profile", "smoke", "--dataset", dataset, "--set", "bptt=1")
    assert ("bptt=1 must be an integer >= 2" in err) == (family == "rnn"), err
    err = _error(capsys, "train", "DARTS_V2_RNN" if family == "conv" else "DATA_M7", "--dataset", dataset)
    other = "rnn" if family == "conv" else "conv"
    assert f"is a cell of the {other} family and --dataset {dataset} trains {family}-family cells" in err


@pytest.fixture
def declared_rnn_space():
    space = egs.declare_space("cli_test_rnn", family="rnn", ops=("none", "tanh", "relu"), n_nodes=4, replace=True)
    yield space
    from egs.arch import space as spaces
    spaces._SPACES.pop(space.name)


def test_a_declared_space_is_searched_like_a_built_in_one(tmp_path, capsys, monkeypatch, data_root, declared_rnn_space):
    name = declared_rnn_space.name
    known = " ".join(_help(capsys, "search").split()).split("known now: ")[1].split(")")[0].split(", ")
    assert known[:2] == ["conv", "rnn"] and name in known  # other tests may have declared spaces too
    err = _error(capsys, "search", "--space", name, "--set", "cost=flops")
    assert "--cost applies to the conv space family only (given as --set cost=flops)" in err and name in err
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    assert main(["search", "--space", name, "--profile", "smoke", "--device", "cpu", "--epochs", "1", "--no-progress",
                 "--run-dir", str(tmp_path / "run")]) == 0
    summary = json.loads(capsys.readouterr().out)
    genotype = json.loads((tmp_path / "run" / "genotype.json").read_text())
    assert summary["space"] == genotype["normal"]["space"] == name and summary["M"] == declared_rnn_space.paper_M
    assert genotype["normal"]["n_nodes"] == declared_rnn_space.n_nodes and genotype["reduce"] is None
    assert {op for edge in genotype["normal"]["edges"] for op in edge["ops"]} <= {"tanh", "relu"}


def test_an_unknown_space_says_how_to_declare_one(capsys):
    err = _error(capsys, "search", "--space", "nospace")
    assert "unknown search space 'nospace'" in err and "egs.declare_space" in err


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out
