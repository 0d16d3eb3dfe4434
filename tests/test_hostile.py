"""Hostile inputs, second round: sizes a genotype or a setting can carry, JSON a user hands in, folders two
processes write, children that could outlive a killed reproduction, parameters that could misstate a summary.
Every case gives one line and a non-zero exit (or behaves as said), checked before anything is allocated."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from egs.arch.genotype import Genotype, load_genotype, save_genotype
from egs.arch.published import DARTS_V2
from egs.arch.space import MAX_NODES, declare_space
from egs.cli.main import main
from egs.core.errors import EGSError
from egs.core.files import JSONFileError, parse_json, read_json
from test_faults import cli, env, one_line  # noqa: F401 (env is a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def _said(capsys, status: int, code: int = 2) -> str:
    """In-process ``main``: it returned ``code`` and printed one ``egs: error`` line, no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == code and len(lines) == 1 and lines[0].startswith("egs: error: "), (status, err)
    assert "Traceback" not in err
    return lines[0]


def _genotype_data(n_nodes: object = 6) -> dict:
    data = DARTS_V2.to_dict()
    data["normal"]["n_nodes"] = n_nodes
    return data


# ---- genotypes that would exhaust the machine -------------------------------------------------------------------

@pytest.mark.parametrize("command", ["draw", "train"])
def test_a_genotype_with_a_million_nodes_is_refused_at_load_time(tmp_path, capsys, command):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_genotype_data(1_000_000)))
    args = [command, str(path), *(["--profile", "smoke", "--run-dir", str(tmp_path / "run")] if command == "train"
                                 else ["--out", str(tmp_path / "drawn")])]
    start = time.perf_counter()
    line = _said(capsys, main(args))
    assert time.perf_counter() - start < 5  # refused before any edge list, network or drawing is built
    assert "n_nodes=1000000" in line and f"<= {MAX_NODES}" in line and str(path) in line
    assert not (tmp_path / "drawn").exists() and not (tmp_path / "run").exists()


def test_node_counts_are_bounded_wherever_a_cell_size_enters():
    with pytest.raises(EGSError, match=rf"n_nodes=33 .* <= {MAX_NODES}"):
        declare_space("huge", "conv", ("none", "skip_connect"), n_nodes=MAX_NODES + 1)
    with pytest.raises(EGSError, match="n_nodes=10000"):
        egs_random = __import__("egs").random_genotype
        egs_random("conv", 0, n_nodes=10_000)
    Genotype.from_dict(_genotype_data(MAX_NODES))  # the bound itself is a valid cell


@pytest.mark.parametrize("name, content, expected", [
    ("deep", "[" * 200_000 + "]" * 200_000, "nested too deeply"),
    ("digits", json.dumps(_genotype_data(0)).replace('"n_nodes": 0', '"n_nodes": ' + "9" * 5000), "digits"),
    ("latin1", b"\xff\xfe{}", "not UTF-8 text"),
    ("torn", '{"schema": "egs.genotype/2", "normal": {', "malformed JSON"),
])
def test_a_genotype_file_that_is_not_valid_json_is_one_line_naming_the_file(tmp_path, capsys, name, content,
                                                                             expected):
    path = tmp_path / f"{name}.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = _said(capsys, main(["draw", str(path), "--out", str(tmp_path / "out")]))
    assert str(path) in line and "not a valid genotype JSON file" in line and expected in line
    assert "check the path" not in line  # the path is right; the content is wrong
    run = tmp_path / f"run_{name}"
    run.mkdir()
    (run / "genotype.json").write_bytes(path.read_bytes())  # the same file as a run directory's genotype
    line = _said(capsys, main(["draw", str(run), "--out", str(tmp_path / "out")]))
    assert str(run / "genotype.json") in line and expected in line


def test_one_loader_for_every_json_a_user_hands_in(tmp_path):
    with pytest.raises(JSONFileError, match="nested too deeply"):
        parse_json("[" * 100_000, "x")
    with pytest.raises(JSONFileError, match="not UTF-8"):
        parse_json(b"\x80", "x")
    big = tmp_path / "big.json"
    big.write_text(" " * 2048 + "{}")
    with pytest.raises(JSONFileError, match="2,050 bytes, more than"):
        read_json(big, "genotype JSON file", max_bytes=1024)
    assert read_json(big) == {}
    with pytest.raises(OSError):
        read_json(tmp_path / "missing.json")  # the caller names the path for a file that is not there


def test_an_op_twice_on_an_edge_or_ops_as_an_object_are_refused(tmp_path):
    data = _genotype_data()
    data["normal"]["edges"][0]["ops"] = ["sep_conv_3x3", "sep_conv_3x3"]
    with pytest.raises(EGSError, match=r"lists sep_conv_3x3 more than once"):
        Genotype.from_dict(data)
    data["normal"]["edges"][0]["ops"] = {"sep_conv_3x3": 1}
    with pytest.raises(EGSError, match=r"must be a list or set of op names"):
        Genotype.from_dict(data)


def test_the_ensemble_size_is_bounded_before_the_sampler_allocates():
    with pytest.raises(EGSError, match=r"M=100000 is more draws than egs allows \(M <= 1024\)"):
        __import__("egs").settings("search", "smoke", M=100_000)


# ---- networks that cannot fit ------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["C=1000000", "C=20000"])
def test_a_search_network_that_cannot_fit_is_one_line_naming_the_setting(tmp_path, env, setting):
    out = cli("search", "--profile", "smoke", "--set", setting, "--run-dir", str(tmp_path / "run"), "--no-progress",
              env=env, timeout=120)
    line = one_line(out)
    assert f"search network at {setting}" in line and "does not fit" in line and "iB" in line and "lower C" in line


def test_the_memory_check_counts_exactly_and_leaves_the_weights_as_they_were():
    from egs.conv.evalnet import eval_network
    from egs.engine.memory import allocate_network, network_bytes

    def net():
        torch.manual_seed(3)
        return eval_network(DARTS_V2, "cifar10", 8, 5, 10)
    plain = net()
    assert network_bytes(net) == sum(t.numel() * t.element_size() for t in [*plain.parameters(), *plain.buffers()])
    torch.manual_seed(5)
    checked = allocate_network(lambda: eval_network(DARTS_V2, "cifar10", 8, 5, 10), torch.device("cpu"), {"C": 8})
    torch.manual_seed(5)
    direct = eval_network(DARTS_V2, "cifar10", 8, 5, 10)
    assert all(torch.equal(a, b) for a, b in zip(checked.state_dict().values(), direct.state_dict().values()))


def test_an_out_of_memory_error_while_building_becomes_one_line(monkeypatch):
    from egs.engine import memory

    def fails():
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 1600000000 bytes. Error code 12 (Cannot allocate memory)")
    monkeypatch.setattr(memory, "network_bytes", lambda factory: None)  # as for a network meta cannot build
    with pytest.raises(EGSError, match=r"the language model at emb=9 does not fit: one of its tensors alone takes "
                                       r"1\.5 GiB"):
        memory.allocate_network(fails, torch.device("cpu"), {"emb": 9}, "language model")
    with pytest.raises(RuntimeError, match="shape mismatch"):  # other errors are not dressed up as memory
        memory.allocate_network(lambda: (_ for _ in ()).throw(RuntimeError("shape mismatch")), torch.device("cpu"), {})


def test_depths_are_bounded_before_anything_is_built():
    with pytest.raises(EGSError, match=r"layers=100000 is deeper than egs builds"):
        __import__("egs").settings("search", "smoke", layers=100_000)


def test_a_subset_too_large_names_the_setting_the_user_gave(tmp_path, env):
    line = one_line(cli("search", "--profile", "smoke", "--set", "train_size=10000000", "--run-dir",
                        str(tmp_path / "run"), "--no-progress", env=env, timeout=120))
    assert "train_size=10000000 is more than the 25000 images" in line and "set train_size <= 25000" in line


# ---- run directories, drawings, data folders ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def stopped(tmp_path_factory, data_root):
    """A 2-epoch smoke search stopped in its first epoch (at step 2)."""
    from egs.conv.search import Search
    run = tmp_path_factory.mktemp("stopped") / "search"
    cfg = __import__("egs").settings("search", "smoke", epochs=2, C=2, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        Search(cfg, run, data_root=data_root, progress=False).run(stop_after_steps=2)
    return run


def test_deriving_an_unfinished_search_warns(stopped, capsys):
    assert main(["derive", str(stopped), "--method", "edge"]) == 0
    err = capsys.readouterr().err
    assert "unfinished search" in err and "step 2 of epoch 1 of 2" in err and "--resume" in err


def test_resuming_a_search_run_as_a_training_says_what_it_is(stopped, capsys):
    line = _said(capsys, main(["train", "DARTS_V2", "--profile", "smoke", "--run-dir", str(stopped), "--resume"]))
    assert "it is a search run" in line and "egs search" in line and "differ in" not in line


def test_drawing_into_the_committed_figures_is_refused(capsys, monkeypatch, tmp_path):
    from egs.core.paths import figures_dir
    before = sorted(p.name for p in figures_dir().iterdir())
    for out in (str(figures_dir()), str(figures_dir() / "cells")):
        line = _said(capsys, main(["draw", "DARTS_V2", "--out", out]))
        assert "committed figures folder" in line
    assert sorted(p.name for p in figures_dir().iterdir()) == before
    assert main(["draw", "DARTS_V2", "--out", str(tmp_path / "drawn")]) == 0


def test_two_fetches_into_one_folder_take_turns(tmp_path, mirror):
    from egs.data import fetch as data
    errors: list[BaseException] = []

    def fetch():
        try:
            data.fetch("ptb", root=tmp_path, mirror=mirror, copy=True)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    folder = data.locate("ptb", tmp_path)
    assert all((folder / f).read_bytes() == (mirror / "ptb" / f).read_bytes() for f in data.spec("ptb").files)
    assert not list(folder.glob(".*.tmp"))


def test_saving_and_loading_a_genotype_still_round_trips(tmp_path):
    assert load_genotype(save_genotype(DARTS_V2, tmp_path / "g.json")) == DARTS_V2


# ---- reproductions that interleave or outlive a kill -------------------------------------------------------------

def test_reproduce_parameters_are_checked_before_anything_runs(tmp_path):
    from egs.repro.reproduce import reproduce
    for extra, match in [({"01": {"profile": "cpu"}}, "profile is set by the reproduction"),
                         ({"01": {"seed": "abc"}}, r"01_sampling_distribution:seed: seed='abc' must be an integer"),
                         ({"01": {"Ms": "abc"}}, r"01_sampling_distribution:Ms: Ms='abc' must be a non-empty list"),
                         ({"01": {"p": "abc"}}, r"01_sampling_distribution:p='abc' must be a list of float"),
                         ({"01": {"p": [0.5, "a"]}}, r"01_sampling_distribution:p=\[0.5, 'a'\] must be a list of"),
                         ({"01": {"figures_dir": "/tmp"}}, "give --figures instead")]:
        with pytest.raises(EGSError, match=match):
            reproduce("smoke", only=["01", "07"], results=tmp_path / "r", extra=extra)
    assert not (tmp_path / "r" / "notebooks").exists()  # nothing ran


_HOLD = "import sys, time; from pathlib import Path; from egs.repro.guard import ReproductionLock; " \
        "ReproductionLock(Path(sys.argv[1]), Path(sys.argv[1]) / 'figures'); print('held', flush=True); time.sleep(60)"


def test_a_second_reproduction_on_one_results_folder_is_refused(tmp_path):
    from egs.repro.reproduce import reproduce
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path / "r")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EGSError, match=rf"results folder .* is in use by process {holder.pid}; wait"):
            reproduce("smoke", only=["01"], results=tmp_path / "r")
    finally:
        holder.kill()
        holder.wait()
    from egs.repro.guard import ReproductionLock
    ReproductionLock(tmp_path / "r", tmp_path / "r" / "figures").release()  # a dead holder's lock is free


def _fake_notebooks(folder: Path, seconds: float) -> Path:
    """A notebooks folder whose 01 writes its kernel's pid, imports egs, sleeps, then leaves 01's products."""
    from egs.repro.reproduce import STEP
    step = STEP["01_sampling_distribution"]
    body = (f"import os, time, pathlib, egs\npathlib.Path(tables_dir, 'kernel.pid').parent.mkdir(parents=True, "
            f"exist_ok=True)\npathlib.Path(tables_dir, 'kernel.pid').write_text(str(os.getpid()))\n"
            f"time.sleep({seconds})\n"
            f"for t in {list(step.tables)!r}: pathlib.Path(tables_dir, t).write_text('x')\n"
            f"pathlib.Path(figures_dir).mkdir(parents=True, exist_ok=True)\n"
            f"for f in {list(step.figures)!r}: pathlib.Path(figures_dir, f).write_text('x')\n")
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "profile = 'smoke'\n"
              "tables_dir = None\nfigures_dir = None\n", "outputs": [], "execution_count": None},
             {"cell_type": "code", "metadata": {}, "source": body, "outputs": [], "execution_count": None}]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "01_sampling_distribution.ipynb").write_text(json.dumps(nb))
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_kill_9_of_a_reproduction_takes_its_notebooks_along_and_a_rerun_completes(tmp_path):
    results, pid_file = tmp_path / "r", tmp_path / "r" / "tables" / "kernel.pid"
    slow, quick = _fake_notebooks(tmp_path / "slow", 120), _fake_notebooks(tmp_path / "quick", 0)
    command = [sys.executable, "-m", "egs", "reproduce", "--profile", "smoke", "--only", "01", "--results",
               str(results)]
    first = subprocess.Popen([*command, "--notebooks", str(slow)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    kernel = int(pid_file.read_text())
    papermill = [int(p) for p in subprocess.run(["pgrep", "-P", str(first.pid)], capture_output=True,
                                                text=True).stdout.split()]
    assert papermill and _alive(kernel)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    rerun = subprocess.run([*command, "--notebooks", str(quick)], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert not _alive(kernel) and not any(_alive(p) for p in papermill)  # nothing of the first run lives on
    assert int(pid_file.read_text()) != kernel  # the files are the rerun's, and the summary says done
    summary = (results / "README.md").read_text()
    assert "| 01_sampling_distribution | done |" in summary
