"""Fan-out (egs.repro.fanout): run keys, run states, executors that agree, failures named, a killed reproduction."""
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

import egs
from egs.arch.published import DARTS_V2
from egs.core.errors import EGSError
from egs.core.locks import lock_file
from egs.repro.fanout import RunSpec, execute, run_all, run_state
from egs.repro.reproduce import reproduce


def _train_spec(path: Path, seed: int = 0, **changes) -> RunSpec:
    return RunSpec(egs.settings("train_cifar", "smoke", epochs=1, seed=seed, **changes), path, DARTS_V2)


def test_the_key_is_the_fingerprint_the_run_records_and_states_follow_the_run(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    from egs.engine.rundir import settings_fingerprint
    spec = _train_spec(tmp_path / "t")
    assert run_state(spec) == "new"
    summary = execute(spec)
    assert run_state(spec) == "complete"
    assert settings_fingerprint(json.loads((spec.run_dir / "config.json").read_text())) == spec.key
    assert spec.key != _train_spec(tmp_path / "t", seed=1).key  # another seed: another run
    assert spec.key == _train_spec(tmp_path / "t", log_every=7).key  # a setting that changes no result: the same
    # read back, not run again: the summary file is untouched
    stamp = (spec.run_dir / "summary.json").stat().st_mtime_ns
    assert run_all({"a": spec}, "inline", echo=lambda _: None)["a"] == summary
    assert (spec.run_dir / "summary.json").stat().st_mtime_ns == stamp
    # a checkpoint without a summary resumes
    (spec.run_dir / "summary.json").unlink()
    assert run_state(spec) == "partial"
    # other settings in the same directory: moved aside, run afresh
    other = _train_spec(tmp_path / "t", seed=1)
    assert run_state(other) == "stale"
    execute(other)
    assert run_state(other) == "complete" and (tmp_path / f"t.superseded-{spec.key}" / "checkpoint.pt").is_file()


def test_a_failed_run_is_named_after_the_others_finish(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    good, bad = _train_spec(tmp_path / "good"), RunSpec(egs.settings("train_cifar", "smoke", epochs=1), tmp_path / "bad",
                                                        DARTS_V2, data_root=str(tmp_path / "nowhere"))
    with pytest.raises(EGSError, match=r"1 of 2 runs failed.*bad"):
        run_all({"bad": bad, "good": good}, "inline", echo=lambda _: None)
    assert run_state(good) == "complete"


def test_bad_requests_are_one_clear_error(tmp_path):
    spec = _train_spec(tmp_path / "t")
    with pytest.raises(EGSError, match="unknown executor 'cloud'"):
        run_all({"a": spec}, "cloud")
    with pytest.raises(EGSError, match="share the run directory"):
        run_all({"a": spec, "b": _train_spec(tmp_path / "t", seed=1)})
    with pytest.raises(EGSError, match="needs the genotype"):
        RunSpec(egs.settings("train_cifar", "smoke"), tmp_path / "x")
    with pytest.raises(EGSError, match="no option.*bogus"):
        run_all({"a": spec}, "local", {"bogus": 1})
    with pytest.raises(EGSError, match="'inline' takes no options"):
        run_all({"a": spec}, "inline", {"workers": 2})
    with pytest.raises(EGSError, match="unknown executor 'cloud'"):
        reproduce("smoke", only=["01"], results=tmp_path / "r", executor="cloud")


def test_a_run_another_process_holds_is_waited_for(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    spec = _train_spec(tmp_path / "t")
    spec.run_dir.mkdir()
    fd = lock_file(spec.run_dir / ".lock", "run directory", "wait")
    threading.Timer(1.5, os.close, (fd,)).start()  # the "other notebook" lets go after 1.5 s
    start = time.perf_counter()
    execute(spec)
    assert time.perf_counter() - start >= 1.5 and run_state(spec) == "complete"


@pytest.mark.notebook
def test_local_and_submitit_executors_give_the_inline_tables(tmp_path, data_root, monkeypatch):
    """Notebook 07 at smoke (two searches, two trainings), one thread per run everywhere: inline, a local pool of 2
    workers and submitit's local executor write the same tables (they hold no wall times)."""
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    extra = {"07": {"Ms": [1, 4]}}
    tables = {}
    for name, executor, options in (("inline", None, None), ("local", "local", {"workers": 2, "threads": 1}),
                                    ("submitit", "slurm", {"cluster": "local", "threads": 1, "timeout_min": 10})):
        report = reproduce("smoke", only=["07"], results=tmp_path / name, extra=extra, executor=executor,
                           executor_options=options, echo=lambda _: None)
        assert report.ok, report.problems()
        tables[name] = {p.name: p.read_text() for p in sorted((tmp_path / name / "tables").glob("*.csv"))}
        assert len(tables[name]) == 2
    assert tables["local"] == tables["inline"] == tables["submitit"]
    assert list((tmp_path / "submitit" / "submitit").glob("*_result.pkl"))  # the runs really went through submitit


@pytest.mark.notebook
def test_a_killed_reproduction_completes_without_running_a_finished_run_again(tmp_path, data_root):
    """SIGKILL the reproduction once the first search of notebook 07 has finished; the rerun completes and reads
    that search back (its files untouched) instead of running it again."""
    env = {**os.environ, "EGS_DATA_DIR": str(data_root), "OMP_NUM_THREADS": "1"}
    results = tmp_path / "r"
    command = [sys.executable, "-m", "egs", "reproduce", "--profile", "smoke", "--only", "07", "--results",
               str(results), "--param", "07:Ms=[1,4]"]
    first = results / "runs" / "07_ablation_M" / "M1" / "search" / "summary.json"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.exists(), "the first search never finished"
    done = {p: p.stat().st_mtime_ns for p in (results / "runs").rglob("summary.json")}
    again = subprocess.run(command, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in done.items())  # finished runs were not run again
    assert (results / "tables" / "table5_ablation_M.csv").is_file()


def test_cli_plan_and_bad_executor_options(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "egs", "reproduce", *a], capture_output=True, text=True)
    planned = run("--profile", "smoke", "--only", "02", "--plan")
    assert planned.returncode == 0 and "02_cifar10_search: 2 run(s)" in planned.stdout, planned.stderr
    bad = run("--profile", "smoke", "--only", "01", "--executor", "local", "--executor-option", "workers")
    assert bad.returncode != 0 and "must look like KEY=VALUE" in bad.stderr and "Traceback" not in bad.stderr
    config = tmp_path / "slurm.yaml"
    config.write_text("[1, 2]")
    bad = run("--profile", "smoke", "--only", "01", "--executor-config", str(config))
    assert bad.returncode != 0 and "must hold an object" in bad.stderr and "Traceback" not in bad.stderr
