"""Fault injection: every way a run can be mixed up, damaged or stopped gives one clear line, the right
exit status, and loses or changes nothing that was there before."""
from __future__ import annotations

import errno
import json
import math
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from egs.cli.main import main
from egs.core.errors import EGSError
from egs.core.files import write_json
from egs.arch.genotype import load_genotype
from egs.arch.published import DARTS_V2
from egs.profiles.experiments import settings
from egs.engine.rundir import RunLock
from egs.engine.runlog import load_checkpoint
from egs.conv.search import Search
from egs.conv.train import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
SMOKE = settings("search", "smoke", epochs=1, device="cpu")


def cli(*args: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "egs", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def one_line(out: subprocess.CompletedProcess, status: int = 2) -> str:
    """The command failed with ``status`` and said why in one line, without a traceback."""
    assert out.returncode == status, (out.returncode, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("egs: ") and "Traceback" not in out.stderr, out.stderr
    return lines[0]


@pytest.fixture
def env(data_root):
    return {**os.environ, "EGS_DATA_DIR": str(data_root), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_root):
    """A finished 1-epoch smoke search, copied fresh by each test that damages it."""
    d = tmp_path_factory.mktemp("runs") / "done"
    Search(SMOKE, d, data_root=data_root, progress=False).run()
    return d


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / run.name
    shutil.copytree(run, target)
    return target


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}


def _resume(run: Path, env: dict, *more: str, epochs: int = 1) -> subprocess.CompletedProcess:
    return cli("search", "--profile", "smoke", "--epochs", str(epochs), "--device", "cpu", "--run-dir", str(run),
               "--resume", "--no-progress", *more, env=env)


def test_a_foreign_checkpoint_is_refused_and_nothing_is_truncated(finished, tmp_path, env, data_root):
    mine = _copy(finished, tmp_path)
    other = tmp_path / "other"
    Search(settings("search", "smoke", epochs=1, device="cpu", seed=5, M=3), other, data_root=data_root,
           progress=False).run()
    shutil.copy(other / "checkpoint.pt", mine / "checkpoint.pt")
    before = _snapshot(mine)
    line = one_line(_resume(mine, env, epochs=1))
    assert "belongs to run" in line and json.loads((mine / "run.json").read_text())["run_id"] in line
    assert _snapshot(mine) == before  # metrics.jsonl is not truncated to the foreign checkpoint


def test_changing_a_result_setting_on_resume_is_refused(finished, tmp_path, env):
    mine = _copy(finished, tmp_path)
    config = json.loads((mine / "config.json").read_text())
    (mine / "config.json").write_text(json.dumps({**config, "M": 3}))
    before = _snapshot(mine)
    assert "belongs to run" not in (line := one_line(_resume(mine, env, "--M", "3", epochs=1)))
    assert "other settings" in line and _snapshot(mine) == before
    assert "differ in M" in one_line(_resume(_copy(finished, tmp_path / "b"), env, "--M", "3"))


@pytest.mark.parametrize("damage", ["truncated", "empty", "random", "foreign_shapes"])
def test_a_damaged_checkpoint_names_the_file(finished, tmp_path, env, damage):
    mine = _copy(finished, tmp_path)
    ckpt = mine / "checkpoint.pt"
    data = ckpt.read_bytes()
    if damage == "truncated":
        ckpt.write_bytes(data[: len(data) // 3])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "random":
        ckpt.write_bytes(random.Random(0).randbytes(4096))
    else:  # the right identity, the wrong shapes (another configuration)
        state = torch.load(ckpt, weights_only=False)
        state["model"]["alpha_normal"] = torch.zeros(3, 3)
        torch.save(state, ckpt)
    before = _snapshot(mine)
    line = one_line(_resume(mine, env))
    assert str(ckpt) in line and ("damaged" in line or "does not fit" in line)
    assert _snapshot(mine) == before


# Seeds whose 4 KiB of random bytes make unpickling raise OverflowError, ValueError, UnicodeDecodeError and
# MemoryError (found by enumeration; a CI run once drew an OverflowError that escaped as a traceback), then more.
@pytest.mark.parametrize("seed", [43, 45, 102, 454, *range(20)])
def test_random_bytes_in_a_checkpoint_give_one_clear_error(tmp_path, seed):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(random.Random(seed).randbytes(4096))
    with pytest.raises(EGSError, match="checkpoint.pt is damaged and cannot be read"):
        load_checkpoint(ckpt)


def _interrupted(run: Path, data_root: Path) -> None:
    """A 2-epoch smoke search stopped in its second epoch (at step 2)."""
    with pytest.raises(KeyboardInterrupt):
        Search(TWO, run, data_root=data_root, progress=False).run(stop_after_steps=8)


TWO = settings("search", "smoke", epochs=2, device="cpu")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root):
    """A 2-epoch smoke search run without a stop: what every resumed run must end with."""
    d = tmp_path_factory.mktemp("runs") / "whole"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests it is compared with (one_thread): the same float rounding
    try:
        Search(TWO, d, data_root=data_root, progress=False).run()
    finally:
        torch.set_num_threads(threads)
    return d


def _assert_same_result(run: Path, reference: Path) -> None:
    """The same genotype, epoch records (but for their times) and final weights as ``reference``."""
    epochs = lambda d: [{k: v for k, v in r.items() if k != "elapsed_s"}  # noqa: E731
                        for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())
                        if r["type"] == "epoch"]
    assert load_genotype(run / "genotype.json") == load_genotype(reference / "genotype.json")
    assert epochs(run) == epochs(reference) and len(epochs(run)) == TWO.epochs
    mine, theirs = (load_checkpoint(d / "checkpoint.pt")["model"] for d in (run, reference))
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def _stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("damage", [{"config.json": None}, {"config.json": "[1, 2]", "run.json": None}])
def test_a_lost_config_or_run_json_is_restored_from_the_checkpoint(tmp_path, data_root, uninterrupted, capsys,
                                                                   damage):
    """config.json or run.json missing (None) or damaged, the checkpoint good: both are restored from the
    checkpoint's copies with one warning line each, and the run resumes to the uninterrupted run's result."""
    mine = tmp_path / "lost"
    _interrupted(mine, data_root)
    original = {name: json.loads((mine / name).read_text()) for name in damage}
    for name, text in damage.items():
        (mine / name).unlink() if text is None else (mine / name).write_text(text)
    capsys.readouterr()
    Search(TWO, mine, resume=True, data_root=data_root, progress=False).run()
    assert _stderr_lines(capsys) == [f"egs: warning: {mine / name} was {'missing' if text is None else 'damaged'}; "
                                     "restored it from the checkpoint's copy." for name, text in damage.items()]
    assert {name: json.loads((mine / name).read_text()) for name in damage} == original
    _assert_same_result(mine, uninterrupted)


def test_a_lost_config_without_a_copy_names_the_file(finished, tmp_path, env):
    """A checkpoint of an older egs keeps no copy of config.json: the error stands, and nothing is changed."""
    mine = _copy(finished, tmp_path)
    state = torch.load(mine / "checkpoint.pt", weights_only=False)
    del state["record"]
    torch.save(state, mine / "checkpoint.pt")
    (mine / "config.json").unlink()
    before = _snapshot(mine)
    line = one_line(_resume(mine, env))
    assert f"{mine / 'config.json'} is missing" in line and _snapshot(mine) == before


def test_a_torn_metrics_line_is_dropped_with_one_warning_line_and_the_run_resumes(tmp_path, data_root, capsys):
    mine = tmp_path / "torn"
    _interrupted(mine, data_root)
    with open(mine / "metrics.jsonl", "a") as f:
        f.write('{"type": "step", "epo')  # a write cut short by a crash
    capsys.readouterr()
    Search(TWO, mine, resume=True, data_root=data_root, progress=False).run()
    assert _stderr_lines(capsys) == [f"egs: warning: {mine / 'metrics.jsonl'}: dropped its torn last line (a write "
                                     "cut short); the log goes on."]
    records = [json.loads(line) for line in (mine / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]


def test_one_process_per_run_directory_and_a_dead_holders_lock_is_taken_over(tmp_path, env):
    run = tmp_path / "busy"
    held = RunLock(run)
    line = one_line(cli("search", "--profile", "smoke", "--run-dir", str(run), "--no-progress", env=env))
    assert f"in use by process {os.getpid()}" in line
    held.release()
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / ".lock").write_text("999999")  # a lock file whose process is gone: no flock held
    RunLock(tmp_path / "stale").release()


def test_an_unwritable_run_directory_fails_before_any_data_is_loaded(tmp_path, env):
    (tmp_path / "file").write_text("not a folder")
    started = time.perf_counter()
    line = one_line(cli("search", "--profile", "smoke", "--run-dir", str(tmp_path / "file" / "run"), env=env))
    assert "cannot write into the run directory" in line and time.perf_counter() - started < 60


def test_a_full_disk_keeps_the_last_good_checkpoint(tmp_path, data_root, monkeypatch):
    mine = tmp_path / "full"
    _interrupted(mine, data_root)
    good = (mine / "checkpoint.pt").read_bytes()
    run = Search(TWO, mine, resume=True, data_root=data_root, progress=False)

    def full(*_, **__):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(EGSError, match=r"checkpoint.pt \(no space left on the device\); the last good checkpoint "
                                       r"\(epoch 2, step 2\) is kept: .* resume with --resume\.$"):
        run.run()
    assert (mine / "checkpoint.pt").read_bytes() == good and not list(mine.glob(".*.tmp"))


def _full_disk_for(monkeypatch, name: str, code: int = errno.ENOSPC) -> None:
    """Every atomic write of a file called ``name`` fails at its final rename with the OS error ``code`` (by
    default as on a full disk)."""
    replace = os.replace

    def full(src, dst, *args, **kwargs):
        if Path(dst).name == name:
            raise OSError(code, os.strerror(code))
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)


def test_a_full_disk_at_an_epoch_genotype_gives_one_line_and_the_run_resumes(tmp_path, data_root, uninterrupted,
                                                                             monkeypatch, capsys):
    mine = tmp_path / "genotype"
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    _full_disk_for(monkeypatch, "epoch_002.json")
    args = ["search", "--profile", "smoke", "--epochs", "2", "--device", "cpu", "--run-dir", str(mine), "--no-progress"]
    assert main(args) == 2
    target = mine / "genotypes" / "epoch_002.json"
    assert _stderr_lines(capsys) == [f"egs: error: cannot write {target} (no space left on the device); the last good "
                                     "checkpoint (the end of epoch 1) is kept: free space or fix the folder, then "
                                     "resume with --resume."]
    assert load_checkpoint(mine / "checkpoint.pt")["epoch"] == 1 and not target.exists()
    assert (mine / "genotypes" / "epoch_001.json").is_file() and not list(mine.glob("**/.*.tmp"))
    monkeypatch.undo()  # the disk has room again (undo also drops EGS_DATA_DIR: set it again)
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    assert main([*args, "--resume"]) == 0
    _assert_same_result(mine, uninterrupted)


def test_a_full_disk_at_the_summary_keeps_the_final_checkpoint(finished, tmp_path, data_root, monkeypatch):
    mine = tmp_path / "summary"
    _full_disk_for(monkeypatch, "summary.json")
    with pytest.raises(EGSError, match=r"^cannot write .*summary.json \(no space left on the device\); the last good "
                                       r"checkpoint \(the end of epoch 1\) is kept: .* resume with --resume\.$"):
        Search(SMOKE, mine, data_root=data_root, progress=False).run()
    assert not (mine / "summary.json").exists() and not list(mine.glob(".*.tmp"))
    checkpoint = (mine / "checkpoint.pt").read_bytes()
    monkeypatch.undo()
    summary = Search(SMOKE, mine, resume=True, data_root=data_root, progress=False).run()
    assert json.loads((mine / "summary.json").read_text()) == summary
    assert (mine / "checkpoint.pt").read_bytes() == checkpoint
    assert load_genotype(mine / "genotype.json") == load_genotype(finished / "genotype.json")


def test_a_file_that_cannot_be_written_is_one_error_and_the_old_file_stays(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    write_json(target, {"old": 1})
    for code, reason in ((errno.ENOSPC, "no space left on the device"), (errno.EROFS, "the file system is read-only"),
                         (errno.EACCES, "permission denied")):
        _full_disk_for(monkeypatch, "summary.json", code)
        with pytest.raises(EGSError, match=rf"^cannot write {target} \({reason}\); the previous file is kept: free "
                                           r"space or choose a writable folder, then try again\.$") as err:
            write_json(target, {"new": 2})
        monkeypatch.undo()
        assert isinstance(err.value, OSError) and err.value.errno == code  # what a cache that may fail catches
        assert json.loads(target.read_text()) == {"old": 1} and not list(tmp_path.glob(".*.tmp"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(EGSError, match=r"cannot write .*file/out.json \("):  # ENOTDIR or EEXIST, by the OS
        write_json(tmp_path / "file" / "out.json", {})


def test_orphaned_temporary_files_are_removed_at_the_next_start(finished, tmp_path, data_root):
    mine = _copy(finished, tmp_path)
    (mine / ".checkpoint.pt.x1y2ab_9.tmp").write_bytes(b"half a checkpoint")
    (mine / "genotypes" / ".epoch_002.json.k3l4mn_5.tmp").write_text('{"half": ')
    before = _snapshot(mine)
    Search(settings("search", "smoke", epochs=1, device="cpu"), mine, resume=True, data_root=data_root,
           progress=False).close()
    assert not list(mine.glob("**/.*.tmp")) and _snapshot(mine) == {k: v for k, v in before.items() if k[0] != "."}


def test_a_failed_start_releases_its_lock_though_a_notebook_keeps_the_error(finished, tmp_path, data_root):
    """A notebook keeps its last exception, and with it the half-built loop: a retry in the same process must
    not find the run directory "in use by process <its own PID>"."""
    mine = _copy(finished, tmp_path)
    (mine / "checkpoint.pt").write_bytes(b"")
    kept = []
    attempts = [lambda: Search(SMOKE, tmp_path / "new", resume=True, data_root=data_root, progress=False),  # no run
                lambda: Search(SMOKE, tmp_path / "new", data_root=tmp_path / "no-data", progress=False),  # no data
                lambda: Search(SMOKE, mine, resume=True, data_root=data_root, progress=False)]  # damaged checkpoint
    for attempt in attempts:
        with pytest.raises(EGSError) as failed:
            attempt()
        kept.append(failed)  # the traceback holds the failed loop
    for folder in (tmp_path / "new", mine):
        RunLock(folder).release()
    Search(SMOKE, tmp_path / "new", data_root=data_root, progress=False).close()  # the retry succeeds
    assert [type(k.value) for k in kept] == [EGSError] * 3


def test_a_search_started_from_python_holds_its_lock_while_it_runs(tmp_path, data_root):
    run = Search(SMOKE, tmp_path / "py", data_root=data_root, progress=False)
    refusals, step = [], run.train_step

    def step_and_try_the_lock(batch):
        if not refusals:
            with pytest.raises(EGSError, match=rf"in use by process {os.getpid()} \(this process\): a run built "
                                               r"earlier is still open; run it, or call its close\(\)"):
                RunLock(tmp_path / "py")
            refusals.append(run.step)
        return step(batch)

    run.train_step = step_and_try_the_lock
    run.run()
    assert refusals == [0]
    RunLock(tmp_path / "py").release()  # free once the run has ended


def test_derive_on_a_training_run_and_damaged_datasets(tmp_path, env, data_root, mirror):
    train_run = tmp_path / "train"
    Trainer(settings("train_cifar", "smoke", epochs=1, device="cpu"), DARTS_V2, train_run, data_root=data_root,
            progress=False).run()
    assert "training run" in one_line(cli("derive", str(train_run), env=env))
    broken = tmp_path / "data"
    shutil.copytree(mirror / "cifar10", broken / "cifar10")
    batch = broken / "cifar10" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    line = one_line(cli("search", "--profile", "smoke", "--run-dir", str(tmp_path / "s"), "--no-progress",
                        env={**env, "EGS_DATA_DIR": str(broken)}))
    assert str(batch) in line and "egs data fetch cifar10 --force" in line


def test_a_damaged_corpus_names_the_file(tmp_path, env, mirror):
    broken = tmp_path / "data"
    shutil.copytree(mirror / "ptb", broken / "ptb")
    train = broken / "ptb" / "train.txt"
    train.write_bytes(train.read_bytes()[:5000] + b"\xff\xfe not utf-8\n")
    line = one_line(cli("train", "DARTS_V2", "--dataset", "ptb", "--profile", "smoke", "--run-dir", str(tmp_path / "t"),
                        "--no-progress", env={**env, "EGS_DATA_DIR": str(broken)}))
    assert str(train) in line and "egs data fetch ptb --force" in line


def test_an_interruption_before_the_first_step_says_so(capsys):
    from egs.cli.main import _report

    def interrupted():
        raise KeyboardInterrupt()  # Ctrl-C while the data loads: no message of its own

    assert _report(interrupted) == 130 and capsys.readouterr().err == "egs: interrupted\n"


def test_a_run_diverging_before_its_first_checkpoint_says_there_is_none(tmp_path, data_root):
    cfg = settings("train_cifar", "smoke", epochs=2, lr=1e30, device="cpu")
    run = Trainer(cfg, DARTS_V2, tmp_path / "nan", data_root=data_root, progress=False)
    with pytest.raises(EGSError, match=r"^the training loss is not finite .* at epoch 1, step \d+ .*: the run "
                                       r"diverged; it has no checkpoint yet: lower the learning rate .* start it "
                                       r"again\.$") as err:
        run.run()
    assert "--resume" not in str(err.value) and not (tmp_path / "nan" / "checkpoint.pt").exists()


def test_a_run_diverging_after_a_checkpoint_keeps_it_and_says_so(tmp_path, data_root):
    cfg = settings("train_cifar", "smoke", epochs=2, device="cpu")
    run = Trainer(cfg, DARTS_V2, tmp_path / "nan2", data_root=data_root, progress=False)
    step = run.train_step

    def poisoned(batch):  # the loss of epoch 2, step 3 is NaN
        out = step(batch)
        return {**out, "loss": out["loss"] * math.nan} if (run.epoch, run.step) == (1, 2) else out

    run.train_step = poisoned
    with pytest.raises(EGSError, match=r"^the training loss is not finite .* at epoch 2, step 3 .*: the run diverged; "
                                       r"its last checkpoint \(the end of epoch 1\) is kept: resume with --resume"):
        run.run()
    kept = load_checkpoint(tmp_path / "nan2" / "checkpoint.pt")
    records = [json.loads(line) for line in (tmp_path / "nan2" / "metrics.jsonl").read_text().splitlines()]
    assert (kept["epoch"], kept["step"]) == (1, 0) and kept["metrics_lines"] <= len(records)
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1]


@pytest.mark.parametrize("bad", ["epochs=1.5", "lam=abc", "tau_end=NaN", "M=0", "tau_end=1e-40"])
def test_bad_settings_on_the_command_line(tmp_path, env, bad):
    line = one_line(cli("search", "--profile", "smoke", "--set", bad, "--run-dir", str(tmp_path / "r"), env=env))
    assert bad.split("=")[0] in line and not (tmp_path / "r").exists()


def test_sigterm_checkpoints_like_ctrl_c_and_the_run_resumes(tmp_path, env):
    run = tmp_path / "term"
    proc = subprocess.Popen([sys.executable, "-m", "egs", "search", "--profile", "smoke", "--epochs", "40",
                             "--device", "cpu", "--run-dir", str(run), "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "checkpoint.pt").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err and "Traceback" not in err, err
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    done = _resume_exit(run, env)
    assert done == 0 and state["epoch"] < 40


def test_sigterm_under_torchrun_checkpoints_every_rank(tmp_path, env):
    """torchrun sends SIGTERM to each worker's process group: every worker checkpoints (rank 0 writes) and exits
    143, rank 0 says so in one egs line. torchrun itself then prints its own SignalException traceback and exits
    non-zero (1): its behaviour, not ours (README). A shell around each worker records the worker's exit status."""
    run = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    worker = (f"trap : TERM; {shlex.quote(sys.executable)} -m egs search --profile smoke --epochs 40 --device cpu "
              f"--run-dir {shlex.quote(str(run))} --no-progress; echo $? > {shlex.quote(str(tmp_path))}/exit.$RANK")
    proc = subprocess.Popen([str(torchrun), "--nproc_per_node", "2", "--no-python", "sh", "-c", worker], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "checkpoint.pt").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert err.count("egs: search stopped by SIGTERM") == 1, err  # said once, by rank 0
    assert {p.name: p.read_text().strip() for p in tmp_path.glob("exit.*")} == {"exit.0": "143", "exit.1": "143"}, err
    assert proc.returncode != 0 and "SignalException" in err  # torchrun's own report of the signal it got
    state = load_checkpoint(run / "checkpoint.pt")
    assert len(state["global_rng"]["ranks"]) == 2 and (0, 0) < (state["epoch"], state["step"]) < (40, 0)
    assert _resume_exit(run, env) == 0


def _resume_exit(run: Path, env: dict) -> int:
    return cli("search", "--profile", "smoke", "--epochs", "40", "--device", "cpu", "--run-dir", str(run), "--resume",
               "--no-progress", env=env).returncode
