"""Ctrl-C and SIGTERM deferred to a step boundary, so that a run checkpoints before it stops."""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Iterator


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT) or a scheduler's SIGTERM after a checkpoint; ``exit_status`` is
    the conventional 128 + signal number (130, 143)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_status = 128 + int(signum)


@contextmanager
def deferred_interrupt() -> Iterator[dict[str, Any]]:
    """Turn SIGINT and SIGTERM into a flag checked between steps, so an interrupted step still completes;
    ``flag["signal"]`` is the signal received."""
    flag: dict[str, Any] = {"stop": False, "signal": signal.SIGINT}
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, lambda sig, _: flag.update(stop=True, signal=sig))
        except ValueError:  # not in the main thread: leave the signals alone
            pass
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
