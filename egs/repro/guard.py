"""One reproduction per results folder, and no notebook process that outlives its reproduction.

* :class:`ReproductionLock`: an exclusive lock on ``<results>/.reproduce.lock`` (and, when the figures go to a
  folder outside the results, on ``<figures>/.reproduce.lock``) for the whole reproduction; a second
  reproduction on the same folder is refused in one line naming the process that holds it. A lock left by a
  dead process is free (the kernel drops an ``flock`` with its process).
* Children: papermill is started with the parent-death signal SIGKILL (Linux ``prctl``), so it dies with the
  reproduction even under ``kill -9``; its Jupyter kernel exits within a second of papermill (ipykernel's parent
  poller). Every kernel whose notebook imports egs holds a shared lock on ``<results>/.reproduce.kernels``
  (``$EGS_REPRODUCTION_KERNELS``, :func:`hold_kernel_lock`), and a new reproduction waits for that lock to be
  free before it runs a notebook, so no kernel of a killed reproduction still writes when the next one starts.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Callable

from egs.core.errors import EGSError
from egs.core.locks import lock_file, wait_for_lock

KERNELS_ENV = "EGS_REPRODUCTION_KERNELS"
KERNEL_WAIT_S = 30.0  # a kernel exits about 1 s after its papermill (ipykernel polls its parent every second)
_held: list[int] = []  # this kernel's shared lock, kept for the life of the process


class ReproductionLock:
    """The results folder (and ``figures``, if elsewhere) of one reproduction; :meth:`release` frees them."""

    def __init__(self, results: Path, figures: Path, echo: Callable[[str], None] = print) -> None:
        results.mkdir(parents=True, exist_ok=True)
        fix = "wait for that reproduction to finish, or pass another --results folder"
        self.fds = [lock_file(results / ".reproduce.lock", f"results folder {results}", fix)]
        try:
            if not figures.resolve().is_relative_to(results.resolve()):
                figures.mkdir(parents=True, exist_ok=True)
                self.fds.append(lock_file(figures / ".reproduce.lock", f"figures folder {figures}",
                                          "wait for that reproduction to finish, or pass another --figures folder"))
            self.kernels = results / ".reproduce.kernels"
            if not wait_for_lock(self.kernels, 0.0):
                echo(f"reproduce: waiting for the notebook kernels of a stopped reproduction in {results} to exit")
            if not wait_for_lock(self.kernels, KERNEL_WAIT_S):
                raise EGSError(f"a notebook kernel of an earlier reproduction still holds {self.kernels} after "
                               f"{KERNEL_WAIT_S:.0f} s; end it (see `fuser {self.kernels}`), then run again.")
        except BaseException:
            self.release()
            raise

    def child_env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` for a papermill child: its kernel takes the shared kernel lock when its notebook imports egs."""
        return {**env, KERNELS_ENV: str(self.kernels)}

    def release(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


def die_with_parent() -> None:
    """For ``subprocess.Popen(preexec_fn=...)``: the child gets SIGKILL when the process that started it ends
    (Linux; elsewhere nothing: there, a killed reproduction's notebook runs to its end)."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def hold_kernel_lock() -> None:
    """In a notebook kernel started by a reproduction (``$EGS_REPRODUCTION_KERNELS`` set): hold the shared kernel
    lock until this process ends (called when egs is imported; nothing otherwise)."""
    path = os.environ.get(KERNELS_ENV)
    if path and not _held:
        try:
            _held.append(lock_file(path, "kernel lock", "", shared=True))
        except (OSError, EGSError):  # never stop a notebook over its own guard; the reproduction still waits for papermill
            pass
