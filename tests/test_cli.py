"""The command line: real subprocesses, clean errors without tracebacks, non-zero exits."""
from __future__ import annotations

import os
import subprocess
import sys


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "egs", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_data_fetch_with_mirror_and_status(tmp_path, mirror):
    out = run("data", "fetch", "ptb", "wikitext2", "--mirror", str(mirror), "--data-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "ptb: ready" in out.stdout and "wikitext2: ready" in out.stdout
    status = run("data", "status", "--data-dir", str(tmp_path))
    assert "ptb        ready (mirror:" in status.stdout and "cifar10    missing" in status.stdout


def test_mirror_from_environment(tmp_path, mirror):
    out = run("data", "fetch", "ptb", "--data-dir", str(tmp_path), env={"EGS_DATA_MIRROR": str(mirror)})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ptb" / "train.txt").is_symlink()


def test_errors_are_one_line_without_traceback(tmp_path):
    out = run("data", "fetch", "ptb", "--mirror", str(tmp_path / "absent"), "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.startswith("egs: error: mirror ") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_dataset_is_rejected_by_argparse():
    out = run("data", "fetch", "mnist")
    assert out.returncode == 2 and "invalid choice: 'mnist'" in out.stderr
