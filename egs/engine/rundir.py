"""A run directory's guards: one process at a time, a writable folder, its identity, no leftovers.

* **Lock.** A run holds an OS-level lock (``fcntl.flock`` on ``.lock``) for its whole life, taken by
  rank 0 before any data is loaded; a second process gets one line naming the holder's PID. The OS
  releases the lock when its process dies (even by ``kill -9``), so a lock left by a dead process is
  taken over without any stale-file logic. Caveat: ``flock`` is unreliable on some network file
  systems (older NFS mounts emulate it per client); keep run directories on a local or a
  lock-aware shared file system.
* **Probe.** Before any data is loaded, a probe file is written and removed, so a read-only folder
  fails at once with one line, not after minutes of loading.
* **Leftovers.** A write killed mid-way leaves a ``.<name>.*.tmp`` file (:mod:`egs.core.files`); they are
  removed once the lock is held, in the run directory and the subfolders egs writes (:data:`SUBFOLDERS`).
* **Identity.** ``run.json`` names the run; :func:`settings_fingerprint` digests every setting that can
  change results (all but :data:`NON_RESULT`), and every checkpoint records both, so a checkpoint of
  another run, or a change of settings on resume, is refused with one line (:func:`check_run_dir`,
  :func:`own_checkpoint`). Every checkpoint also keeps copies of ``config.json`` and ``run.json``: a
  run whose files were lost or damaged but whose checkpoint is good is restored from them and resumes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from egs.core.errors import EGSError, warn
from egs.core.files import JSONFileError, read_json, write_json
from egs.core.locks import lock_file
from egs.engine.runlog import load_checkpoint

NON_RESULT = ("device", "log_every", "tensorboard")  # settings that cannot change a run's results
SUBFOLDERS = ("genotypes", "tensorboard")  # the folders egs writes inside a run directory (with atomic writes)


def settings_fingerprint(record: Mapping[str, Any]) -> str:
    """sha256 (16 hex digits) of a run's settings record, the settings in :data:`NON_RESULT` left out."""
    kept = {k: v for k, v in record.items() if k not in NON_RESULT}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def result_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a record that can change results (for comparing a stored run with a resumed one)."""
    return {k: v for k, v in json.loads(json.dumps(record)).items() if k not in NON_RESULT}


class RunLock:
    """The lock and probe of a run directory (rank 0 only); :meth:`release` (or the object's end) frees it."""

    def __init__(self, path: Path) -> None:
        self.path, self._fd = Path(path), None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".probe-{os.getpid()}"
            probe.write_text("egs")
            probe.unlink()
        except OSError as err:
            raise EGSError(f"cannot write into the run directory {self.path} ({err.strerror or err}); choose a "
                           "writable run directory (--run-dir).") from None
        self._acquire()
        for folder in (self.path, *(self.path / name for name in SUBFOLDERS)):
            for leftover in folder.glob(".*.tmp"):  # from writes killed mid-way (egs.core.files.atomic_open)
                leftover.unlink(missing_ok=True)

    def _acquire(self) -> None:
        self._fd = lock_file(self.path / ".lock", f"run directory {self.path}",
                             "wait for it to finish or choose another run directory",
                             "a run built earlier is still open; run it, or call its close(), or choose another run "
                             "directory")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """A run directory's JSON file (an object), or one clear error naming it and the fix."""
    if not path.is_file():
        raise EGSError(f"cannot resume: {path} is missing, so the {what} is unknown; start a new run directory.")
    try:
        value = read_json(path, what)
    except (JSONFileError, OSError) as err:
        reason = err.reason if isinstance(err, JSONFileError) else err.strerror or str(err)
        raise EGSError(f"cannot resume: {path} is damaged ({reason}); restore it, or start a new run directory.") from None
    if not isinstance(value, dict):
        raise EGSError(f"cannot resume: {path} is damaged (not a JSON object); restore it, or start a new run "
                       "directory.")
    return value


def read_or_restore(path: Path, what: str, copy: Callable[[], Any], write: bool = True) -> dict[str, Any]:
    """:func:`read_json_file`, or, if the file is missing or damaged, the copy a checkpoint keeps (``copy()``;
    None for a checkpoint of an older egs: then the error stands), written back (if ``write``: rank 0) with a
    one-line warning."""
    try:
        return read_json_file(path, what)
    except EGSError:
        kept = copy()
        if not isinstance(kept, dict):
            raise
    if write:
        state = "damaged" if path.exists() else "missing"
        warn(f"{path} was {state}; restored it from the checkpoint's copy.")
        write_json(path, kept)
    return kept


_COMMANDS = {"search": "egs search", "nb201 search": "egs search --space nb201", "rnn search": "egs search --space rnn",
             "train": "egs train", "lm train": "egs train --dataset ptb"}  # the command that starts each kind of run


def check_run_dir(path: Path, resume: bool, record: Mapping[str, Any], write: bool = True, kind: str | None = None) -> None:
    """Refuse to start over a run, to resume none, to resume another ``kind`` of run (a search run as a training,
    by its ``run.json``) or with other settings than the run's own (``config.json``, restored from the
    checkpoint's copy if it is missing or damaged; ``write``: rank 0)."""
    ckpt = path / "checkpoint.pt"
    if not resume:
        if ckpt.exists():
            raise EGSError(f"{path} already holds a run; pass --resume to continue it or choose another run directory.")
        return
    if not ckpt.exists():
        raise EGSError(f"cannot resume: {ckpt} does not exist; start the run without --resume.")
    try:
        theirs = read_json(path / "run.json", "run record").get("kind")
    except (JSONFileError, OSError, AttributeError):  # damaged or lost: restored below from the checkpoint's copy
        theirs = None
    if kind is not None and theirs not in (None, kind):
        how = _COMMANDS.get(theirs, "the command that started it")
        raise EGSError(f"cannot resume {path} as a {kind} run: it is a {theirs} run (its run.json); resume it with "
                       f"`{how} ... --resume --run-dir {path}`, or choose another run directory.")
    stored = result_settings(read_or_restore(path / "config.json", "run's settings",
                                             lambda: load_checkpoint(ckpt).get("record"), write))
    now = result_settings(record)
    if stored != now:
        changed = sorted(k for k in set(stored) | set(now) if stored.get(k) != now.get(k))
        raise EGSError(f"cannot resume {path}: its settings differ in {', '.join(changed)}; "
                       "resume with the run's own settings or start a new run directory.")


def own_checkpoint(path: Path, record: Mapping[str, Any], device: Any = "cpu",
                   write: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoint of the run directory ``path`` and its ``run.json`` (restored from the checkpoint's copy
    if it is lost), refused with one line unless the checkpoint belongs to this run and to settings ``record``
    (:func:`check_checkpoint`)."""
    state = load_checkpoint(path / "checkpoint.pt", device)
    run_info = read_or_restore(path / "run.json", "run's identity", lambda: state.get("run"), write)
    check_checkpoint(path / "checkpoint.pt", state, run_info.get("run_id"), record)
    return state, run_info


def check_checkpoint(ckpt: Path, state: Mapping[str, Any], run_id: Any, record: Mapping[str, Any],
                     action: str = "resume") -> None:
    """Refuse (one line, "cannot ``action``: ...") a checkpoint ``state`` that another run wrote (its run id is
    not ``run_id``, the run directory's) or that other settings than ``record`` wrote (their fingerprints)."""
    if state.get("run_id") != run_id:
        raise EGSError(f"cannot {action}: {ckpt} belongs to run {state.get('run_id')}, but {ckpt.parent} is run "
                       f"{run_id} (run.json); a checkpoint belongs to its own run only: put back the run's own "
                       "checkpoint or start a new run directory.")
    if state.get("settings") != settings_fingerprint(record):
        raise EGSError(f"cannot {action}: {ckpt} (run {run_id}) was written with other settings than these "
                       f"(fingerprint {state.get('settings')} != {settings_fingerprint(record)}); use the run's own "
                       "settings (its config.json) or start a new run directory.")
