"""What conv (:mod:`egs.search`) and recurrent (:mod:`egs.lm`) architecture searches share.

Each step samples an architecture with ensemble Gumbel-softmax (:class:`egs.loop.CodeSampler`) and
trains it. ``joint`` mode is the paper's Eq. 9: one backward pass over the sampled architecture's
loss updates both the weights ``w`` (SGD, gradient norm clipped) and the logits ``alpha`` (Adam).
``bilevel`` mode is first-order DARTS: an ``alpha`` step on a search-val batch (with its own sampled
codes), then a ``w`` step on a search-train batch. The temperature of each epoch comes from the one
schedule of the settings (:meth:`egs.profiles.ArchSettings.temperature`).
"""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn

from egs.files import write_json
from egs.genotype import Genotype, save_genotype
from egs.loop import CodeSampler, EpochLoop
from egs.profiles import ArchSettings


def mean_active_ops(codes: torch.Tensor | Mapping[str, torch.Tensor]) -> float:
    """Non-zero ops per edge in sampled ``codes`` (one (E, K) tensor or one per cell type; op 0 is "none")."""
    tensors = list(codes.values()) if isinstance(codes, Mapping) else [codes]
    return sum(float(c.detach()[:, 1:].sum()) for c in tensors) / sum(len(c) for c in tensors)


class ArchitectureSearch(EpochLoop):
    """An EGS search loop: the sampler, the two optimizers, joint or bilevel steps, the temperature.

    A subclass builds its supernet (with ``arch_parameters()``, ``weight_parameters()``, ``sample()``
    and a ``tau`` attribute) and its weight optimizer, calls :meth:`start_search`, and implements
    :meth:`loss` and :meth:`arch_batch` besides the loop's own hooks.
    """

    cfg: ArchSettings
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer
    sampler: CodeSampler

    def start_search(self, model: nn.Module, w_opt: torch.optim.Optimizer, stateful: Mapping[str, Any],
                     forward: Callable[..., Any] | None = None) -> None:
        """Create the architecture optimizer (Adam on alpha) and the code sampler, then start the loop."""
        cfg = self.cfg
        self.w_opt = w_opt
        self.a_opt = torch.optim.Adam(model.arch_parameters(), cfg.arch_lr, betas=(cfg.arch_beta1, cfg.arch_beta2),
                                      weight_decay=cfg.arch_weight_decay)
        self.sampler = CodeSampler(model, cfg.seed, self.dist, self.device)
        self.start(model, {"w_opt": w_opt, "a_opt": self.a_opt, "gen": self.sampler, **stateful}, forward)

    def sample(self) -> Any:
        """This step's architecture codes (:class:`egs.loop.CodeSampler`)."""
        return self.sampler(self.where())

    @abstractmethod
    def loss(self, codes: Any, *part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean loss, output)`` of the architecture ``codes`` on one (micro-)batch."""

    @abstractmethod
    def arch_batch(self) -> Sequence[torch.Tensor]:
        """The search-val batch of this step's ``alpha`` update in ``bilevel`` mode."""

    def begin_epoch(self) -> None:
        self.model.tau = self.cfg.temperature(self.epoch)

    def search_step(self, batch: Sequence[torch.Tensor], dim: int = 0) -> tuple[float, torch.Tensor, Any]:
        """One search step on ``batch`` (split along ``dim`` into micro-batches); returns the loss, the
        output of :meth:`loss` for the whole batch and the sampled codes."""
        if self.cfg.mode == "bilevel":  # first-order DARTS: alpha on a search-val batch first
            codes = self.sample()
            self.a_opt.zero_grad(set_to_none=True)
            self.backward(self.arch_batch(), lambda *part: self.loss(codes, *part), dim)
            self.update([self.a_opt])
        codes = self.sample()
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        value, out = self.backward(batch, lambda *part: self.loss(codes, *part), dim)
        joint = self.cfg.mode == "joint"  # Eq. 9: alpha from the same backward pass as w
        self.update([self.w_opt, self.a_opt] if joint else [self.w_opt], clip=self.model.weight_parameters())
        return value, out, codes

    def write_results(self, genotype: Genotype, summary: dict[str, Any]) -> dict[str, Any]:
        """``genotype.json`` and ``summary.json`` in the run directory (rank 0); returns ``summary``."""
        if self.dist.main:
            save_genotype(genotype, self.dir / "genotype.json")
            write_json(self.dir / "summary.json", summary)
        return summary

    def save_epoch_genotype(self, genotype: Genotype) -> Path:
        path = self.dir / "genotypes" / f"epoch_{self.epoch + 1:03d}.json"
        if self.dist.main:
            save_genotype(genotype, path)
        return path
