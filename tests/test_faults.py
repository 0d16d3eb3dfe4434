"""Fault injection: every way a run can be mixed up, damaged or stopped gives one clear line, the right
exit status, and loses or changes nothing that was there before."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from egs.errors import EGSError
from egs.genotype import DARTS_V2
from egs.profiles import settings
from egs.rundir import RunLock
from egs.runlog import load_checkpoint
from egs.sampler import code_distribution, ensemble_gumbel_softmax, smallest_tau
from egs.search import Search
from egs.train import Trainer

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


@pytest.mark.parametrize("damage", ["missing", "malformed"])
def test_a_missing_or_malformed_config_names_the_file(finished, tmp_path, env, damage):
    mine = _copy(finished, tmp_path)
    if damage == "missing":
        (mine / "config.json").unlink()
    else:
        (mine / "config.json").write_text("{not json")
    line = one_line(_resume(mine, env))
    assert "config.json" in line and ("missing" in line or "damaged" in line)


def _interrupted(run: Path, data_root: Path) -> None:
    """A 2-epoch smoke search stopped in its second epoch."""
    with pytest.raises(KeyboardInterrupt):
        Search(TWO, run, data_root=data_root, progress=False).run(stop_after_steps=8)


TWO = settings("search", "smoke", epochs=2, device="cpu")


def test_a_torn_metrics_line_is_dropped_and_the_run_resumes(tmp_path, data_root):
    mine = tmp_path / "torn"
    _interrupted(mine, data_root)
    with open(mine / "metrics.jsonl", "a") as f:
        f.write('{"type": "step", "epo')  # a write cut short by a crash
    with pytest.warns(UserWarning, match="torn last line"):
        run = Search(TWO, mine, resume=True, data_root=data_root, progress=False)
    run.run()
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
    with pytest.raises(EGSError, match="no space left on the device.*last good checkpoint is kept"):
        run.run()
    assert (mine / "checkpoint.pt").read_bytes() == good and not list(mine.glob(".*.tmp"))


def test_orphaned_temporary_files_are_removed_at_the_next_start(finished, tmp_path, data_root):
    mine = _copy(finished, tmp_path)
    (mine / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    Search(settings("search", "smoke", epochs=1, device="cpu"), mine, resume=True, data_root=data_root,
           progress=False).close()
    assert not list(mine.glob(".*.tmp"))


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
    from egs.__main__ import _report

    def interrupted():
        raise KeyboardInterrupt()  # Ctrl-C while the data loads: no message of its own

    assert _report(interrupted) == 130 and capsys.readouterr().err == "egs: interrupted\n"


def test_a_diverging_run_stops_at_the_step_and_keeps_its_last_checkpoint(tmp_path, data_root):
    cfg = settings("train_cifar", "smoke", epochs=2, lr=1e30, device="cpu")
    run = Trainer(cfg, DARTS_V2, tmp_path / "nan", data_root=data_root, progress=False)
    with pytest.raises(EGSError, match=r"training loss is not finite .* at epoch 1, step \d+ .*diverged"):
        run.run()
    assert not (tmp_path / "nan" / "checkpoint.pt").exists()  # no checkpoint of a diverged state


@pytest.mark.parametrize("bad", ["epochs=1.5", "lam=abc", "tau_end=NaN", "M=0"])
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
    run = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.Popen([str(torchrun), "--nproc_per_node", "2", "-m", "egs", "search", "--profile", "smoke",
                             "--epochs", "40", "--device", "cpu", "--run-dir", str(run), "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "checkpoint.pt").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # torchrun forwards it to both workers
    _, err = proc.communicate(timeout=120)
    assert err.count("egs: search stopped by SIGTERM") == 1, err  # said once, by rank 0
    assert _resume_exit(run, env) == 0


def _resume_exit(run: Path, env: dict) -> int:
    return cli("search", "--profile", "smoke", "--epochs", "40", "--device", "cpu", "--run-dir", str(run), "--resume",
               "--no-progress", env=env).returncode


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_the_sampler_never_returns_nan_or_inf(dtype):
    big = 6e4 if dtype == torch.float16 else 1e30
    low = smallest_tau(dtype)
    for scale in (0.0, 1.0, big):
        uniform = torch.rand(14, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1  # within +-scale
        logits = (uniform * scale).to(dtype).requires_grad_()
        for tau in (10.0, 1.0, 1e-3, 1e-30, low):
            code = ensemble_gumbel_softmax(logits, 7, tau, generator=torch.Generator().manual_seed(1))
            (code * torch.arange(8, dtype=dtype)).sum().backward()
            assert code.dtype == dtype and torch.isfinite(code).all() and torch.isfinite(logits.grad).all()
            assert set(code.detach().float().unique().tolist()) <= {0.0, 1.0}
            logits.grad = None
    with pytest.raises(EGSError, match="smallest temperature"):
        ensemble_gumbel_softmax(torch.zeros(3, dtype=dtype), 2, low / 10)


def test_the_exact_distribution_for_large_M():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    dist = code_distribution(p, 200)
    assert torch.isfinite(dist.probs).all() and float(dist.probs.sum()) == pytest.approx(1.0)
    assert float(dist.marginals()[3]) == pytest.approx(1 - 0.95 ** 200)
    with pytest.raises(EGSError, match="M=1001 is beyond 1000"):
        code_distribution(p, 1001)
