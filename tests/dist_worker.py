"""Launched by ``torchrun --nproc_per_node 2`` from tests/test_distributed.py (gloo, CPU).

Runs smoke-sized conv search (whole, and interrupted after a few steps), conv evaluation training,
recurrent search and language-model training in one process group, and writes, per rank, a trace
``OUT/rank<r>.pt`` that the test compares across ranks:

* per step: the sampled codes and the architecture logits at sampling time;
* per run: a fingerprint of the final weights, the summary returned, and every file this process
  opened for writing, renamed or created inside OUT (from a Python audit hook), so the test can
  check that only rank 0 writes;
* the error raised when one rank's architecture logits are made to drift from the other's.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

OUT = Path(sys.argv[1])
torch.set_num_threads(1)
writes: list[str] = []


def _audit(event: str, args: tuple) -> None:
    """Record writes under OUT: open() in a writing mode, os.open with write flags, renames, mkdir."""
    path = None
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        path = args[0] if writing else None
    elif event in ("os.rename", "os.replace", "os.mkdir", "os.symlink"):
        path = args[1] if event != "os.mkdir" else args[0]
    if path is not None:
        text = os.fsdecode(path)
        if text.startswith(str(OUT)) and not Path(text).name.startswith("rank"):
            writes.append(text)


sys.addaudithook(_audit)

from egs.engine import distributed  # noqa: E402
from egs.core.errors import EGSError  # noqa: E402
from egs.arch.published import DARTS_V2, DARTS_V2_RNN  # noqa: E402
from egs.rnn.train import LMTrainer  # noqa: E402
from egs.rnn.search import RNNSearch
from egs.profiles.experiments import settings  # noqa: E402
from egs.conv.search import Search  # noqa: E402
from egs.conv.train import Trainer  # noqa: E402

trace: dict = {"steps": {}, "summaries": {}, "weights": {}}


def traced(cls, name: str):
    """``cls`` whose every sampled code (and the logits it came from) is appended to the trace."""
    steps = trace["steps"].setdefault(name, [])

    class Traced(cls):
        def sample(self):
            codes = super().sample()
            logits = [a.detach().clone() for a in self.model.arch_parameters()]
            values = list(codes.values()) if isinstance(codes, dict) else [codes]
            steps.append({"codes": [c.detach().clone() for c in values], "logits": logits})
            return codes
    return Traced


def finish(name: str, loop) -> None:
    try:
        trace["summaries"][name] = loop.run()
    except KeyboardInterrupt:
        trace["summaries"][name] = "interrupted"
    trace["weights"][name] = distributed.fingerprint(loop.model.parameters())


search_cfg = settings("search", "smoke", micro_batch=4)  # BatchNorm over 4 images on any number of ranks
finish("search", traced(Search, "search")(search_cfg, OUT / "search", progress=False))
partial = Search(search_cfg, OUT / "search_interrupted", progress=False)
try:
    partial.run(stop_after_steps=4)  # mid-epoch: 6 steps per epoch at smoke
except KeyboardInterrupt:
    pass
if (OUT / "search_from_one").exists():  # a 1-process checkpoint, continued by 2 processes
    finish("search_from_one", Search(search_cfg, OUT / "search_from_one", resume=True, progress=False))
finish("train", Trainer(settings("train_cifar", "smoke", epochs=2), DARTS_V2, OUT / "train", progress=False))
finish("rnn_search", traced(RNNSearch, "rnn_search")(settings("rnn_search", "smoke"), OUT / "rnn_search",
                                                      progress=False))
lm = LMTrainer(settings("lm_train_ptb", "smoke"), DARTS_V2_RNN, OUT / "lm_interrupted", progress=False)
try:
    lm.run(stop_after_steps=3)
except KeyboardInterrupt:
    pass
finish("lm", LMTrainer(settings("lm_train_ptb", "smoke"), DARTS_V2_RNN, OUT / "lm", progress=False))

ctx = distributed.context()
drifting = Search(search_cfg, OUT / "search_drift", progress=False)
if ctx.rank == 1:  # simulate the known failure: one rank's logits drift away from the others'
    with torch.no_grad():
        drifting.model.arch_parameters()[0][0, 1] += 1e-3
try:
    drifting.run()
    trace["drift_error"] = None
except EGSError as err:
    trace["drift_error"] = str(err)
trace.update(rank=ctx.rank, world=ctx.world, writes=sorted(set(writes)))
torch.save(trace, OUT / f"rank{ctx.rank}.pt")
distributed.shutdown()
