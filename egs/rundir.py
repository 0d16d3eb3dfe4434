"""A run directory's guards: one process at a time, a writable folder, its identity, no leftovers.

* **Lock.** A run holds an OS-level lock (``fcntl.flock`` on ``.lock``) for its whole life, taken by
  rank 0 before any data is loaded; a second process gets one line naming the holder's PID. The OS
  releases the lock when its process dies (even by ``kill -9``), so a lock left by a dead process is
  taken over without any stale-file logic. Caveat: ``flock`` is unreliable on some network file
  systems (older NFS mounts emulate it per client); keep run directories on a local or a
  lock-aware shared file system.
* **Probe.** Before any data is loaded, a probe file is written and removed, so a read-only folder
  fails at once with one line, not after minutes of loading.
* **Leftovers.** A write killed mid-way leaves a ``.<name>.*.tmp`` file (:mod:`egs.files`); they are
  removed once the lock is held.
* **Identity.** ``run.json`` names the run; :func:`settings_fingerprint` digests every setting that can
  change results (all but :data:`NON_RESULT`), and every checkpoint records both, so a checkpoint of
  another run, or a change of settings on resume, is refused with one line.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from egs.errors import EGSError

NON_RESULT = ("device", "log_every", "tensorboard")  # settings that cannot change a run's results


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
        for leftover in self.path.glob(".*.tmp"):  # from writes killed mid-way (egs.files.atomic_open)
            leftover.unlink(missing_ok=True)

    def _acquire(self) -> None:
        import fcntl
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise EGSError(f"cannot lock the run directory {self.path} ({err.strerror}).") from None
            raise EGSError(f"the run directory {self.path} is in use by process {holder}; wait for it to finish "
                           "or choose another run directory.") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def read_json_file(path: Path, what: str) -> Any:
    """A run directory's JSON file, or one clear error naming it and the fix."""
    if not path.is_file():
        raise EGSError(f"cannot resume: {path} is missing, so the {what} is unknown; start a new run directory.")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EGSError(f"cannot resume: {path} is damaged ({err}); restore it, or start a new run directory.") from None
