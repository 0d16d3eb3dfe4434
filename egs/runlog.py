"""A run directory's bookkeeping: JSON-lines metrics and atomic, resumable checkpoints."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from egs.files import atomic_open, write_text


class MetricsLog:
    """Append-only JSON-lines file; :meth:`truncate` drops lines written after a checkpoint."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.lines = len(self.read()) if self.path.exists() else 0

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        self.lines += 1

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate(self, lines: int) -> None:
        """Keep the first ``lines`` records (those a checkpoint accounts for)."""
        kept = self.read()[:lines]
        write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        self.lines = len(kept)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary sibling, then rename: never a torn checkpoint."""
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=False)
