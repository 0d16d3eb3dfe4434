"""A run directory's bookkeeping: JSON-lines metrics and atomic, resumable checkpoints."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from egs.files import atomic_open, write_text


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
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def write(self, record: dict[str, Any]) -> None:
        record = json.loads(json.dumps(record, sort_keys=True))
        self.records.append(record)
        if self.writes:
            with open(self.path, "a") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")

    def read(self) -> list[dict[str, Any]]:
        return list(self.records)

    def truncate(self, lines: int) -> None:
        """Keep the first ``lines`` records (those a checkpoint accounts for)."""
        self.records = self._read_file()[:lines]
        if self.writes:
            write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary sibling, then rename: never a torn checkpoint."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=False)
