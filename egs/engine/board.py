"""Live monitoring: TensorBoard event files mirrored from a run's metrics log.

``metrics.jsonl`` stays the run's record; the event files under ``<run_dir>/tensorboard/`` are a view of
it for watching long runs (``tensorboard --logdir runs/``), written by rank 0 as records are logged:

* every number of a step record as ``step/<key>`` at the global step (``epoch * steps_per_epoch + step``),
  of an epoch record as ``epoch/<key>`` at the epoch: losses, accuracies, perplexities, temperature,
  entropy, expected active ops; a per-cell value is ``<key>/<cell>`` and a per-edge list its mean (the
  per-op probabilities ``p`` are left to the notebooks' heatmaps);
* for searches, each epoch's derived cells (``genotypes/epoch_NNN.json``) drawn as images
  (``cells/<kind>``), when Graphviz's ``dot`` is there.

A resumed run rebuilds the folder from the part of the log its checkpoint accounts for, so its curves
equal an uninterrupted run's: nothing logged after the checkpoint survives as a stale point.
Settings: ``tensorboard`` (on in the ``paper`` profile, off at ``smoke`` and ``cpu``); the package is the
optional extra ``egs[tensorboard]``.
"""
from __future__ import annotations

import io
import math
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from egs.core.errors import EGSError, warn

_SKIP = ("type", "epoch", "step")


def scalars(record: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """The ``(tag, value)`` pairs of a metrics record: finite numbers as they are, dicts by key, flat lists of
    numbers as their mean; nested lists, strings and booleans are left out."""
    for key, value in record.items():
        if not prefix and key in _SKIP:
            continue
        tag = f"{prefix}{key}"
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, (int, float)):
            if math.isfinite(value):
                yield tag, float(value)
        elif isinstance(value, Mapping):
            yield from scalars(value, f"{tag}/")
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            yield tag, float(sum(value) / len(value))


class Board:
    """The TensorBoard view of one run directory; a no-op unless ``enabled`` (rank 0, ``tensorboard=True``).

    Building one clears ``<run_dir>/tensorboard``; :meth:`replay` then writes the records a resumed run keeps.
    """

    def __init__(self, run_dir: str | Path, steps_per_epoch: int, enabled: bool) -> None:
        self.run_dir, self.steps_per_epoch = Path(run_dir), steps_per_epoch
        self.dir = self.run_dir / "tensorboard"
        self.writer = None
        self._draw = True
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise EGSError("tensorboard=True needs the tensorboard package: pip install 'egs[tensorboard]' (or "
                           "pip install tensorboard), or turn it off with tensorboard=False "
                           "(--set tensorboard=false).") from None
        shutil.rmtree(self.dir, ignore_errors=True)
        self.writer = SummaryWriter(str(self.dir))

    def replay(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Write ``records`` (a resumed run's log up to its checkpoint) into the fresh event files."""
        for record in records:
            self.write(record, flush=False)
        if self.writer is not None:
            self.writer.flush()

    def write(self, record: Mapping[str, Any], flush: bool = True) -> None:
        """Mirror one metrics record (and, for an epoch of a search, its derived cells)."""
        if self.writer is None or record.get("type") not in ("step", "epoch"):
            return
        kind = record["type"]
        at = record["epoch"] if kind == "epoch" else (record["epoch"] - 1) * self.steps_per_epoch + record["step"]
        for tag, value in scalars(record):
            self.writer.add_scalar(f"{kind}/{tag}", value, at)
        if kind == "epoch":
            self._cells(record["epoch"])
        if flush:
            self.writer.flush()

    def _cells(self, epoch: int) -> None:
        path = self.run_dir / "genotypes" / f"epoch_{epoch:03d}.json"
        if not self._draw or not path.is_file():
            return
        if shutil.which("dot") is None:
            self._draw = False
            warn("TensorBoard gets no cell images: Graphviz's `dot` is not installed (apt-get install graphviz).")
            return
        import numpy as np
        from PIL import Image

        from egs.arch.diagram import cell_diagram, title
        from egs.arch.genotype import load_genotype
        genotype = load_genotype(path)
        for kind, cell in genotype.cells().items():
            png = cell_diagram(cell, caption=f"{title(genotype, kind)}, epoch {epoch}").pipe(format="png")
            image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            self.writer.add_image(f"cells/{kind}", image, epoch, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
