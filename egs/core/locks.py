"""Folders that one process at a time may write: an exclusive ``flock`` on a lock file inside them.

The lock file holds the owner's process id, so a refusal names the process that holds the folder. The kernel
frees an ``flock`` when its process ends, however it ends (``kill -9`` included), so a lock left by a dead
process is simply free again: nothing to clean up, no stale-lock guesswork. Used for run directories
(:class:`egs.engine.rundir.RunLock`), a reproduction's results folder and figures (:mod:`egs.repro.guard`) and
a dataset folder being fetched (:func:`egs.data.fetch.fetch`).
"""
from __future__ import annotations

import errno
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from egs.core.errors import EGSError

BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class LockBusy(EGSError):
    """The lock is held by another process (or this one): the folder is in use."""


def lock_file(path: str | os.PathLike, what: str, fix: str, own_fix: str | None = None, shared: bool = False) -> int:
    """Take an exclusive (or ``shared``) lock on the file ``path`` (created if missing) and return its descriptor
    (closing it frees the lock). If another process holds it: one EGSError, "the <what> is in use by process N;
    <fix>" (``own_fix`` instead when N is this process). An exclusive holder writes its process id into the file."""
    import fcntl
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as err:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
        os.close(fd)
        if err.errno not in BUSY:
            raise EGSError(f"cannot lock the {what} ({path}: {err.strerror}).") from None
        if holder == str(os.getpid()):
            raise LockBusy(f"the {what} is in use by process {holder} (this process): {own_fix or fix}.") from None
        raise LockBusy(f"the {what} is in use by process {holder}; {fix}.") from None
    if not shared:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    return fd


def wait_for_lock(path: str | os.PathLike, timeout: float, poll: float = 0.1) -> bool:
    """Wait up to ``timeout`` seconds until no process holds any lock on ``path`` (True), else False; holds nothing
    afterwards."""
    import fcntl
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as err:
                if err.errno not in BUSY or time.monotonic() > deadline:
                    return False
                time.sleep(poll)
    finally:
        os.close(fd)


@contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the ``with`` block, waiting for another
    holder to finish first (e.g. two fetches of one dataset: the second finds the files the first wrote)."""
    import fcntl
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
