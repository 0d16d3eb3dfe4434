"""A run directory's bookkeeping: JSON-lines metrics and atomic, resumable checkpoints.

Damage gives one clear line, never a traceback: a metrics file whose last line was torn by a crash
loses that line (with one ``egs: warning:`` line; the log is append-only, so nothing else is affected),
any other malformed line is an error naming it; a checkpoint that cannot be read (truncated, empty,
random bytes) names the file; a write that fails for lack of space (or any OS error) raises
:class:`egs.core.errors.WriteError` naming the file, and keeps the previous, good checkpoint (writes are
atomic, :mod:`egs.core.files`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from egs.core.errors import EGSError, WriteError, warn
from egs.core.files import JSONFileError, atomic_open, parse_json, write_text


class MetricsLog:
    """Append-only JSON-lines file, mirrored in memory; :meth:`truncate` drops lines written after a
    checkpoint. ``write=False`` (ranks other than 0) keeps the records in memory only."""

    def __init__(self, path: str | os.PathLike, write: bool = True) -> None:
        self.path, self.writes = Path(path), write
        self.records = self._read_file()

    @property
    def lines(self) -> int:
        return len(self.records)

    def _read_file(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [line for line in self.path.read_text(errors="replace").splitlines() if line.strip()]
        records = []
        for number, line in enumerate(lines, 1):
            try:
                records.append(parse_json(line, f"{self.path} line {number}", "metrics record"))
            except JSONFileError:
                if number < len(lines):
                    raise EGSError(f"{self.path} line {number} is not a JSON record; restore the file or start a "
                                   "new run directory.") from None
                if self.writes:  # said once, by the process that owns the file (rank 0)
                    warn(f"{self.path}: dropped its torn last line (a write cut short); the log goes on.")
        return records

    def write(self, record: dict[str, Any]) -> None:
        record = json.loads(json.dumps(record, sort_keys=True))
        self.records.append(record)
        if self.writes:
            try:
                with open(self.path, "a") as f:
                    f.write(json.dumps(record, sort_keys=True) + "\n")
            except OSError as err:
                raise WriteError(self.path, err) from None

    def read(self) -> list[dict[str, Any]]:
        return list(self.records)

    def truncate(self, lines: int) -> None:
        """Keep the first ``lines`` records (those a checkpoint accounts for); call it before any :meth:`write`."""
        self.records = self.records[:lines]
        if self.writes:
            write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary sibling, then rename: never a torn checkpoint; a failed write raises
    :class:`egs.core.errors.WriteError` and keeps the previous checkpoint."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's state, or one line naming a damaged file."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # noqa: BLE001 - unpickling damaged bytes can raise almost any error (Memory, ...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise EGSError(f"{path} is damaged and cannot be read ({first}); restore it, or delete the run directory "
                       "and start again.") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise EGSError(f"{path} is not an egs checkpoint; restore it, or start a new run directory.")
    return state
