"""The one exception type that user-facing mistakes raise, and the one way egs warns.

Every :class:`EGSError` message names the offending value and says how to fix it; the CLI prints
it without a traceback and exits non-zero. :class:`WriteError` is the :class:`EGSError` of a file
that could not be written (full disk, read-only or missing folder, no permission): the previous
file is intact. :func:`warn` prints one ``egs: warning: ...`` line on stderr.
"""
from __future__ import annotations

import errno
import os
import sys


class EGSError(ValueError):
    """Bad input or missing resources, with a message that names the value and the fix."""


_REASONS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOTDIR: "a part of the path is a file, not a folder", errno.EDQUOT: "the disk quota is exceeded"}


class WriteError(EGSError, OSError):
    """``path`` could not be written (``err``, an ``OSError``); the previous file, if any, is kept.

    ``reason`` says why in words; ``fix`` is the message's advice (a run loop re-raises it with the
    state of its checkpoint instead, :meth:`egs.engine.loop.EpochLoop.run`). It is an ``OSError`` too (with
    ``err``'s ``errno``), so code that lets a write fail quietly (a cache) still catches it."""

    def __init__(self, path: str | os.PathLike, err: OSError,
                 fix: str = "free space or choose a writable folder, then try again") -> None:
        self.path = os.fspath(path)
        self.reason = _REASONS.get(err.errno, err.strerror or str(err) or type(err).__name__)
        super().__init__(f"cannot write {self.path} ({self.reason}); the previous file is kept: {fix}.")
        self.errno = err.errno  # (no strerror: str() stays the one-line message)


def warn(message: str) -> None:
    """One ``egs: warning: <message>`` line on stderr (the CLI's format; no Python warnings block)."""
    print(f"egs: warning: {message}", file=sys.stderr, flush=True)
