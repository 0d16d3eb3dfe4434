"""How a run shows progress: a bar in a terminal or JupyterLab, one line per epoch under papermill, nbconvert and in
logs."""
from __future__ import annotations

import json
import os
import sys

from egs.core.errors import EGSError


def in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill, nbconvert)."""
    return "ipykernel" in sys.modules


def progress_style() -> str:
    """How a run shows progress: "bar" (a per-step tqdm bar; a widget in Jupyter) or "epoch" (one printed line per
    epoch). ``$EGS_PROGRESS`` decides when set; otherwise a bar in a terminal and in a kernel that a Jupyter server
    started (JupyterLab sets ``JPY_SESSION_NAME``), and one line per epoch in a kernel run by papermill or
    nbconvert (the executed copy keeps one line per epoch) and where output goes to a file, a pipe or a
    scheduler's log (no carriage-return updates there)."""
    style = os.environ.get("EGS_PROGRESS")
    if style in ("bar", "epoch"):
        return style
    if style:
        raise EGSError(f"EGS_PROGRESS={style!r} is not a progress style; set it to 'bar' or 'epoch', or unset it.")
    if in_kernel():
        return "bar" if _server_kernel() else "epoch"
    interactive = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return "bar" if interactive else "epoch"


def _server_kernel() -> bool:
    """Whether this kernel was started by a Jupyter server (JupyterLab), not by papermill or nbconvert. The server
    sets ``JPY_SESSION_NAME`` and writes it as ``jupyter_session`` into the kernel's connection file; a papermill
    kernel started from a JupyterLab cell inherits the variable, but its connection file has no such entry."""
    session = os.environ.get("JPY_SESSION_NAME")
    if not session:
        return False
    try:
        from ipykernel.kernelapp import IPKernelApp
        if not IPKernelApp.initialized():
            return False
        with open(IPKernelApp.instance().connection_file) as f:
            return json.load(f).get("jupyter_session") == session
    except (ImportError, OSError, ValueError, AttributeError):
        return False
