"""What conv (:mod:`egs.conv.search`) and recurrent (:mod:`egs.rnn.search`) architecture searches share.

Each step samples an architecture with ensemble Gumbel-softmax (:class:`CodeSampler`) and
trains it. ``joint`` mode is the paper's Eq. 9: one backward pass over the sampled architecture's
loss updates both the weights ``w`` (SGD, gradient norm clipped) and the logits ``alpha`` (Adam).
``bilevel`` mode is first-order DARTS: an ``alpha`` step on a search-val batch (with its own sampled
codes), then a ``w`` step on a search-train batch. The temperature of each epoch comes from the one
schedule of the settings (:meth:`egs.profiles.experiments.ArchSettings.temperature`); the authors' regulariser
(``arch_reg``) is added to the alpha update only.

Every epoch, and at the end, the architecture is derived with the run's rule (:mod:`egs.method.derivation`)
and written with its provenance (space, M, lambda, rule, run id, seed): ``genotypes/epoch_NNN.json``,
then ``genotype.json``, ``derivation.json`` (for ``select``: every candidate and its score) and
``summary.json``. The search loop of each family is
named in :mod:`egs.families`.
"""
from __future__ import annotations

from abc import abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from egs.core.errors import EGSError
from egs.core.files import write_json
from egs.arch.genotype import Genotype, save_genotype
from egs.engine.loop import EpochLoop
from egs.engine import distributed
from egs.engine.rng import GeneratorState
from egs.profiles.experiments import ArchSettings


def mean_active_ops(codes: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Non-zero ops per edge in sampled ``codes`` (one (E, K) tensor or one per cell type; op 0 is "none"),
    as a 0-d tensor (no host sync)."""
    tensors = list(codes.values()) if isinstance(codes, Mapping) else [codes]
    return sum(c.detach()[:, 1:].sum() for c in tensors) / sum(len(c) for c in tensors)


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Evaluate with each batch's own BatchNorm statistics, leaving the running statistics untouched.

    A search supernet's running statistics average over every sampled architecture, so they do not
    fit any single one: with them, the derived architecture's search-val loss was 15-60 nats at
    14-30% accuracy in our cpu CIFAR-10 search (measured). Batch statistics (BN in training mode with
    momentum 0; the batch counter is restored) evaluate it as it would be trained. Other layers
    (dropout) are in evaluation mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.training, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None
              else None) for m in norms]
    model.eval()
    for m in norms:
        m.train()
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, training, momentum, tracked in saved:
            m.train(training)
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
        model.train()


class CodeSampler:
    """Each step's architecture codes for a search loop: ``supernet.sample`` with the run's seeded
    generator, checked identical on every rank under torchrun (codes and the logits they came from:
    never assumed). Its ``state_dict`` is the generator's state, saved with every checkpoint."""

    def __init__(self, supernet: nn.Module, seed: int, ctx: distributed.Context, device: torch.device) -> None:
        self.supernet, self.ctx, self.device = supernet, ctx, device
        self.generator = torch.Generator(device).manual_seed(seed)
        self._state = GeneratorState(self.generator)

    def __call__(self, where: str) -> Any:
        """Draw this step's codes (``where`` names the step in the error a rank mismatch raises)."""
        codes = self.supernet.sample(self.generator)
        values = list(codes.values()) if isinstance(codes, dict) else [codes]
        distributed.check_identical([*self.supernet.arch_parameters(), *values], "architecture logits or sampled "
                                    "codes", where, self.ctx, self.device)
        return codes

    def state_dict(self) -> torch.Tensor:
        return self._state.state_dict()

    def load_state_dict(self, state: torch.Tensor) -> None:
        self._state.load_state_dict(state)


class ArchitectureSearch(EpochLoop):
    """An EGS search loop: the sampler, the two optimizers, joint or bilevel steps, the temperature.

    A subclass builds its supernet (with ``arch_parameters()``, ``weight_parameters()``, ``sample()``
    and a ``tau`` attribute) and its weight optimizer, calls :meth:`start_search`, and implements
    :meth:`loss`, :meth:`arch_batch`, :meth:`score`, :meth:`describe_score`, :meth:`rule_metrics` and
    :meth:`supernet_from` besides the loop's own hooks, and sets :attr:`score_name`. Everything that reads a
    search run back (:mod:`egs.engine.runs`: ``egs derive``, the rule comparison) uses only what is declared here.
    """

    score_name: ClassVar[str]  # what :meth:`score` measures, for records (higher is better)
    rules: ClassVar[tuple[str, ...]] = ("node", "select", "edge")  # the derivation rules its cells are compared by
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
        """This step's architecture codes (:class:`CodeSampler`)."""
        return self.sampler(self.where())

    @abstractmethod
    def loss(self, codes: Any, *part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean loss, output)`` of the architecture ``codes`` on one (micro-)batch."""

    @abstractmethod
    def arch_batch(self) -> Sequence[torch.Tensor]:
        """The search-val batch of this step's ``alpha`` update in ``bilevel`` mode."""

    @abstractmethod
    def score(self, codes: Any) -> float:
        """Search-val score (higher is better) of the architecture ``codes`` with the shared weights, on
        the fixed batches the ``select`` rule compares candidates on (``cfg.select_batches``)."""

    @staticmethod
    @abstractmethod
    def describe_score(score: float) -> str:
        """A :meth:`score` in words for a summary line, e.g. "search-val accuracy 0.4210"."""

    @abstractmethod
    def rule_metrics(self, codes: Any) -> dict[str, float]:
        """The metrics that compare derivation rules' cells ``codes`` with the shared weights (no training): on
        the ``select`` batches (what :meth:`score` ranks by) and on search-val data held out from them."""

    @classmethod
    @abstractmethod
    def supernet_from(cls, cfg: ArchSettings, state: Mapping[str, torch.Tensor]) -> nn.Module:
        """The run's supernet (on CPU) with the weights and logits of a checkpoint's ``state``."""

    def provenance(self, epochs_done: int) -> dict[str, Any]:
        """What a genotype derived now records about its origin."""
        return provenance(self.cfg, self.run_id, self.dir, epochs_done)

    def derive(self, epochs_done: int, rule: str | None = None) -> tuple[Genotype, dict[str, Any]]:
        """The architecture under ``rule`` (default: the run's), with its provenance, and a record of the
        derivation: for ``select`` every candidate with its score, the chosen one, and the score of the
        ``node`` cell on the same batches. ``select`` draws its candidates from a generator seeded by
        the run's seed and ``epochs_done``, so the training sampler is untouched and a rerun agrees."""
        m, cfg, rule = self.model, self.cfg, rule or self.cfg.rule
        generator = torch.Generator(self.device).manual_seed(cfg.seed * 1_000_003 + epochs_done)
        codes, records = m.derivation_codes(rule, generator, self.score, cfg.select_candidates)
        genotype = m.codes_to_genotype(codes).with_provenance(**{**self.provenance(epochs_done), "rule": rule})
        record: dict[str, Any] = {"rule": rule}
        if records:
            best = max(records, key=lambda r: (r["score"], -r["index"]))
            record.update(chosen=best["index"], chosen_score=best["score"],
                          node_score=self.score(m.derivation_codes("node")[0]),
                          candidates=[{"index": r["index"], "score": r["score"],
                                       "genotype": m.codes_to_genotype(r["codes"]).to_dict()} for r in records])
        return genotype, record

    def regularise(self, codes: Any) -> None:
        """Add the authors' regulariser (``cfg.arch_reg`` times :meth:`EGSSupernet.arch_regularizer`) to the
        gradient of alpha (nothing when off; its value is not read, which would cost a host sync per step)."""
        if self.cfg.arch_reg:
            reg = self.cfg.arch_reg * self.model.arch_regularizer(codes)
            self.precision.scaler.scale(reg).backward()

    def begin_epoch(self) -> None:
        """The epoch's temperature; and the logits checked finite (once an epoch: the sampler does not
        check them at every step, which would cost a host sync each time)."""
        if not all(bool(torch.isfinite(a).all()) for a in self.model.arch_parameters()):
            kept = self._kept()
            then = (f"its checkpoint ({kept}) holds them too: lower arch_lr and start a new run" if kept
                    else "lower arch_lr and start again")
            raise EGSError(f"the architecture logits of {self.dir} are NaN or inf at the start of epoch "
                           f"{self.epoch + 1}: the search diverged; {then}.")
        self.model.tau = self.cfg.temperature(self.epoch)

    def search_step(self, batch: Sequence[torch.Tensor], dim: int = 0) -> tuple[float, torch.Tensor, Any]:
        """One search step on ``batch`` (split along ``dim`` into micro-batches); returns the loss, the
        output of :meth:`loss` for the whole batch and the sampled codes."""
        frozen = self.arch_frozen()
        if self.cfg.mode == "bilevel" and not frozen:  # first-order DARTS: alpha on a search-val batch first
            codes = self.sample()
            self.a_opt.zero_grad(set_to_none=True)
            self.backward(self.arch_batch(), lambda *part: self.loss(codes, *part), dim)
            self.regularise(codes)
            self.update([self.a_opt])
        codes = self.sample()
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        value, out = self.backward(batch, lambda *part: self.loss(codes, *part), dim)
        joint = self.cfg.mode == "joint" and not frozen  # Eq. 9: alpha from the same backward pass as w
        if joint:
            self.regularise(codes)
        self.update([self.w_opt, self.a_opt] if joint else [self.w_opt], clip=self.model.weight_parameters())
        return value, out, codes

    def arch_frozen(self) -> bool:
        """Whether this step leaves alpha as it is (architectures are still sampled from p): never, unless a
        family's settings warm its weights up first (NAS-Bench-201: ``arch_warmup``)."""
        return False

    def write_results(self, genotype: Genotype, record: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        """``genotype.json``, ``derivation.json`` (the rule's record) and ``summary.json`` (with the
        genotype's provenance and, for ``select``, the chosen and the ``node`` cell's scores) in the run
        directory (rank 0); returns the summary."""
        summary = {**summary, **dict(genotype.provenance or {}), "genotype": str(self.dir / "genotype.json"),
                   **{k: record[k] for k in ("chosen_score", "node_score") if k in record}}
        if self.dist.main:
            save_genotype(genotype, self.dir / "genotype.json")
            write_json(self.dir / "derivation.json", record)
            write_json(self.dir / "summary.json", summary)
        return summary

    def save_epoch_genotype(self, genotype: Genotype) -> Path:
        path = self.dir / "genotypes" / f"epoch_{self.epoch + 1:03d}.json"
        if self.dist.main:
            save_genotype(genotype, path)
        return path


def provenance(cfg: ArchSettings, run_id: str, run_dir: str | Path, epochs_done: int) -> dict[str, Any]:
    """The provenance of a genotype derived from a search run after ``epochs_done`` epochs."""
    return {"space": cfg.space, "M": cfg.M, "lam": cfg.lam, "rule": cfg.rule, "effectiveness": cfg.effectiveness,
            "run_id": run_id, "seed": cfg.seed, "search_run": str(run_dir), "epochs": epochs_done}
