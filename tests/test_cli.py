"""The command line: real subprocesses, clean errors without tracebacks, non-zero exits."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from egs.profiles import experiments as profiles
from egs.profiles.fields import PROFILES


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


def _parsers(parser: argparse.ArgumentParser, name: str = "egs"):
    """``(name, parser)`` of ``parser`` and of every sub-command under it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _parsers(p, f"{name} {sub}")


def _help_texts():
    """``(command, option, its formatted help)`` of every option of every command, as ``--help`` prints it."""
    from egs.cli.parser import build_parser
    for command, parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and action.help != argparse.SUPPRESS:
                yield command, action, formatter._expand_help(action)


def test_every_option_explains_itself_and_states_its_default():
    seen = set()
    for command, action, text in _help_texts():
        seen.add(command)
        option = "/".join(action.option_strings)
        assert text.strip(), f"{command} {option} has no help"
        on_off = action.nargs == 0  # --help, --version and plain on/off flags
        assert on_off or "default" in text, f"{command} {option} does not state its default: {text!r}"
        assert "default: None" not in text, f"{command} {option}: {text!r}"
    assert {"egs search", "egs train", "egs derive", "egs draw", "egs reproduce", "egs data fetch",
            "egs data status"} <= seen


def test_profile_defaults_in_the_help_are_the_profiles_values():
    helps = {(command, action.dest): text for command, action, text in _help_texts()}
    lam = helps[("egs search", "lam")]
    conv = [profiles.settings("search", p).lam for p in PROFILES]
    rnn = [profiles.settings("rnn_search", p).lam for p in PROFILES]
    assert conv == [0.5, 1.0, 0.5] and rnn == [1.0, 1.0, 0.5]  # what the text below must then say
    assert "conv 0.5 at smoke, 1.0 at cpu, 0.5 at paper; rnn 1.0 at smoke, 1.0 at cpu, 0.5 at paper; nb201 1.0" in lam
    assert "paper: 0.5" not in lam
    assert "conv 7; rnn/nb201 4" in helps[("egs search", "M")]
    assert "2 at smoke, 4 at cpu, 50 at paper" in helps[("egs search", "epochs")]
    from egs.repro.reproduce import _Layout, figures_dir
    assert "figures/ at cpu" in helps[("egs reproduce", "figures")]
    assert "RESULTS/figures at smoke and paper" in helps[("egs reproduce", "figures")]
    assert _Layout("cpu", None, None, None).figures == figures_dir()
    for profile in ("smoke", "paper"):
        layout = _Layout(profile, None, None, None)
        assert layout.figures == layout.results / "figures"


def test_version():
    from egs import __version__
    out = run("--version")
    assert out.returncode == 0 and out.stdout == f"egs {__version__}\n"


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("args", [("data", "status"), ("draw", "DARTS_V2"), ("--help",)])
def test_output_into_a_closed_pipe_ends_quietly(tmp_path, args, buffered):
    """`egs ... | head -0`: the reader is gone before egs writes; exit 0, nothing on stderr."""
    args = (*args, "--out", str(tmp_path)) if args[0] == "draw" else args
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED" or not buffered}
    env |= {"EGS_DATA_DIR": str(tmp_path)} | ({} if buffered else {"PYTHONUNBUFFERED": "1"})
    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run([sys.executable, "-m", "egs", *args], stdout=write, stderr=subprocess.PIPE, text=True,
                             env=env, timeout=120)
    finally:
        os.close(write)
    assert out.returncode == 0 and out.stderr == ""


def test_data_status_names_the_folder_it_checked(tmp_path):
    first = run("data", "status", "--data-dir", str(tmp_path / "a")).stdout.splitlines()[0]
    assert first == f"datasets in {(tmp_path / 'a').resolve()}:"
    first = run("data", "status", env={"EGS_DATA_DIR": str(tmp_path / "b")}).stdout.splitlines()[0]
    assert first == f"datasets in {(tmp_path / 'b').resolve()}:"


def _one_line(out: subprocess.CompletedProcess, status: int, start: str) -> str:
    assert out.returncode == status, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith(start), out.stderr
    return out.stderr


def test_unwritable_output_is_one_line_not_a_traceback(tmp_path, mirror):
    """A file where a folder must go fails for root too (chmod does not stop root)."""
    (tmp_path / "file").write_text("")
    err = _one_line(run("draw", "DARTS_V2", "--out", str(tmp_path / "file" / "cells")), 2, "egs: error: ")
    assert str(tmp_path / "file" / "cells") in err
    err = _one_line(run("data", "fetch", "ptb", "--mirror", str(mirror), "--data-dir", str(tmp_path / "file" / "d")),
                    2, "egs: error: cannot write ")
    assert str(tmp_path / "file" / "d") in err and "a part of the path is a file, not a folder" in err


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc to see the handler installed")
def test_sigterm_during_start_up_is_one_line_and_status_143(tmp_path, data_root):
    """SIGTERM as soon as main() catches it, long before the search loop (torch is still being imported)."""
    proc = subprocess.Popen([sys.executable, "-m", "egs", "search", "--profile", "smoke", "--device", "cpu",
                             "--no-progress", "--run-dir", str(tmp_path / "run")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "EGS_DATA_DIR": str(data_root)})
    deadline = time.monotonic() + 60
    while proc.poll() is None and not _catches_sigterm(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    _one_line(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), 143, "egs: stopped by SIGTERM")
    assert out == "" and not (tmp_path / "run" / "summary.json").exists()
