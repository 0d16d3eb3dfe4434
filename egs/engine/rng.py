"""Random generators' states as checkpoint entries, for exact resume (per rank under torchrun)."""
from __future__ import annotations

from typing import Any

import torch

from egs.engine import distributed


class GeneratorState:
    """Adapter giving a ``torch.Generator`` the ``state_dict`` interface of the other objects."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu() if self.generator.device.type == "cpu" else state)


class GlobalRNGState:
    """The global torch RNGs (drop-path masks, dropout) of every rank, saved and restored with a checkpoint.

    Each rank draws its own masks. A rank with no saved state (resuming with more processes than
    wrote the checkpoint) continues from rank 0's state, reseeded by its rank.
    """

    def __init__(self, ctx: distributed.Context, device: torch.device) -> None:
        self.ctx, self.device = ctx, device

    def state_dict(self) -> dict[str, Any]:
        mine = {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        return {"ranks": distributed.gather_object(mine, self.ctx)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ranks = state["ranks"]
        mine = ranks[self.ctx.rank] if self.ctx.rank < len(ranks) else ranks[0]
        torch.set_rng_state(mine["cpu"].cpu())
        if mine["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"].cpu(), self.device)
        if self.ctx.rank >= len(ranks):
            torch.manual_seed(int(torch.randint(2**62, (1,))) + self.ctx.rank)
