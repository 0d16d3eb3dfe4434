"""The three experiment sizes: ``smoke`` (tests), ``cpu`` (a 2-core laptop), ``paper`` (GPUs).

One code path, three sizes: every experiment reads its sizes from here and nothing else differs
between profiles. Each experiment has a frozen dataclass of settings and one instance per profile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, ClassVar

from egs.checks import (check_bool, check_choice, check_int, check_lam, check_M, check_rate, check_real,
                        check_temperature, smallest_tau)
from egs.errors import EGSError

PROFILES = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"

MODES = ("joint", "bilevel")  # Eq. 9 (one backward pass for w and alpha) or first-order DARTS
DERIVATION_RULES = ("node", "select", "edge")  # egs.derivation
EFFECTIVENESS = ("softmax", "relu")  # how alpha becomes the effectiveness credit h (egs.supernet)
TAU_SCHEDULES = ("geometric", "linear")
COSTS = ("flops", "params", "latency")  # efficiency-credit cost metrics (egs.credits)
TRAIN_DATASETS = ("cifar10", "imagenet")
SCHEDULES = ("cosine", "poly")
CORPORA = ("ptb", "wikitext2")


def _int(minimum: int = 1) -> Callable[[object, str], int]:
    return lambda value, name: check_int(value, name, minimum)


def _real(low: float | None = None, high: float | None = None, low_open: bool = False,
          high_open: bool = False) -> Callable[[object, str], float]:
    return lambda value, name: check_real(value, name, low, high, low_open, high_open)


def _choice(*options: str) -> Callable[[object, str], str]:
    return lambda value, name: check_choice(value, name, options)


def _ints(minimum: int = 1) -> Callable[[object, str], tuple[int, ...]]:
    def check(value: object, name: str) -> tuple[int, ...]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not list(value):
            raise EGSError(f"{name}={value!r} must be a non-empty list of integers >= {minimum}.")
        return tuple(check_int(v, f"{name} entry", minimum) for v in value)
    return check


def _space(value: object, name: str) -> str:
    from egs.space import get_space  # light: no torch
    if not isinstance(value, str):
        raise EGSError(f"{name}={value!r} must name a search space (conv, rnn or one you declared).")
    return get_space(value).name


def _device(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise EGSError(f"{name}={value!r} must name a device: auto, cpu, cuda or cuda:N.")
    return value


_POSITIVE, _COUNT, _SIZE = _real(0.0, low_open=True), _int(1), _int(0)  # > 0; >= 1; >= 0 (0: everything)
_RATE, _NONNEGATIVE, _BETA = check_rate, _real(0.0), _real(0.0, 1.0, high_open=True)

# The type and range of every setting, by name (a name means the same thing in every experiment).
RULES: dict[str, Callable[[object, str], Any]] = {
    # every run
    "epochs": _COUNT, "batch_size": _COUNT, "lr": _POSITIVE, "weight_decay": _NONNEGATIVE, "grad_clip": _POSITIVE,
    "lr_reference_batch": _SIZE, "micro_batch": _SIZE, "amp": check_bool, "tensorboard": check_bool, "seed": _SIZE,
    "log_every": _COUNT, "device": _device,
    # architecture search (Eq. 5, Definition 1, Eq. 9)
    "M": lambda v, _: check_M(v), "lam": lambda v, _: check_lam(v), "tau_start": check_temperature,
    "tau_end": check_temperature,
    "mode": _choice(*MODES), "arch_lr": _NONNEGATIVE, "arch_beta1": _BETA, "arch_beta2": _BETA,
    "arch_weight_decay": _NONNEGATIVE, "cost": _choice(*COSTS), "credit_beta": _NONNEGATIVE,
    "space": _space, "rule": _choice(*DERIVATION_RULES), "select_candidates": _COUNT, "select_batches": _COUNT,
    "effectiveness": _choice(*EFFECTIVENESS), "arch_reg": _NONNEGATIVE, "tau_schedule": _choice(*TAU_SCHEDULES),
    # conv networks and images
    "C": _COUNT, "layers": _int(3), "image_size": _int(8), "train_size": _SIZE, "val_size": _SIZE,
    "test_size": _SIZE, "lr_min": _NONNEGATIVE, "momentum": _BETA, "channels_last": check_bool,
    "dataset": _choice(*TRAIN_DATASETS), "schedule": _choice(*SCHEDULES), "poly_power": _POSITIVE,
    "auxiliary_weight": _NONNEGATIVE, "drop_path": _RATE, "cutout": _SIZE, "label_smoothing": _RATE,
    "workers": _SIZE, "compile": check_bool,
    # language models
    "corpus": _choice(*CORPORA), "eval_batch_size": _COUNT, "bptt": _int(2), "emb": _COUNT,
    "train_tokens": _SIZE, "val_tokens": _SIZE, "test_tokens": _SIZE, "nonmono": _COUNT,
    "dropout": _RATE, "dropouth": _RATE, "dropoutx": _RATE, "dropouti": _RATE, "dropoute": _RATE,
    # notebook 01; the tables' protocol
    "mc_samples": _COUNT, "count_samples": _SIZE, "Ks": _ints(1), "Ms": _ints(1),
    "seeds": _ints(0), "random_cells": _SIZE, "random_rnn_cells": _SIZE, "search_seeds": _ints(0),
    "ablation_Ms": _ints(1), "single_draw_epochs": _SIZE,
}


@dataclass(frozen=True)
class Settings:
    """Base of every experiment's settings: each field is checked (type and range, :data:`RULES`) on
    construction, by ``settings()``, ``dataclasses.replace`` and direct calls alike, and ints given
    for float fields become floats. A bad value raises one :class:`EGSError` naming the setting."""

    def __post_init__(self) -> None:
        for f in fields(self):
            rule = RULES.get(f.name)
            if rule is None:  # a new field must say what it accepts
                raise EGSError(f"setting {f.name!r} of {type(self).__name__} has no rule in egs.profiles.RULES.")
            object.__setattr__(self, f.name, rule(getattr(self, f.name), f.name))


@dataclass(frozen=True)
class SamplingSettings(Settings):
    """Notebook 01 (Figure 1, Propositions 2-3): exact distributions checked against Monte Carlo."""

    mc_samples: int = 1_000_000  # Monte-Carlo draws per (p, M) for the code distribution
    Ks: tuple[int, ...] = (2, 5, 8)  # numbers of candidate ops in the Proposition tables
    Ms: tuple[int, ...] = tuple(range(1, 10))  # ensemble sizes M = 1..9
    count_samples: int = 0  # Monte-Carlo draws used to count the distinct codes seen (Prop. 3)


@dataclass(frozen=True)
class ProtocolSettings(Settings):
    """How the notebooks measure their tables: training seeds per cell (Table 1 is "the mean of 4
    independent runs", Sec. 4.1.2), random baseline cells, and search seeds."""

    seeds: tuple[int, ...] = (0, 1, 2, 3)
    random_cells: int = 1  # Table 1's random conv cells
    random_rnn_cells: int = 1  # Table 3's random recurrent cells
    search_seeds: tuple[int, ...] = (0,)
    ablation_Ms: tuple[int, ...] = tuple(range(1, 10))  # Table 5's trained M values
    single_draw_epochs: int = 0  # CIFAR-10 search epochs at M = 1 (Figure 3a/3b, Table 5); 0: the search's own


@dataclass(frozen=True)
class RunSettings(Settings):
    """What every run (search or training) has; the loop (:class:`egs.loop.EpochLoop`) reads these.

    ``batch_size`` is the global batch: under torchrun each of N processes trains on ``batch_size / N``
    of it. ``lr`` is the weight learning rate for that batch; ``lr_reference_batch`` > 0 scales it by
    ``batch_size / lr_reference_batch`` (linear scaling). ``micro_batch`` > 0 splits each process's
    batch into groups of that many rows (images, or streams for language models; gradients
    accumulated, BatchNorm statistics per group): with it set, a run trains the same way on any
    number of processes (see ``EpochLoop.backward``). ``amp`` (mixed precision) applies on CUDA only.
    """

    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    lr_reference_batch: int = 0  # 0: lr as given; N: lr * batch_size / N (see egs.distributed)
    micro_batch: int = 0  # BatchNorm/accumulation group; 0: the whole per-process batch
    amp: bool = True
    seed: int = 0
    log_every: int = 50
    device: str = "auto"
    tensorboard: bool = True  # TensorBoard event files in <run_dir>/tensorboard (egs.board); off at smoke and cpu


@dataclass(frozen=True)
class ArchSettings(RunSettings):
    """What conv and recurrent searches share: the space, the sampler (M, Eq. 5's lambda, the
    temperature), the architecture optimiser (Adam on alpha; joint Eq. 9 or first-order bilevel
    updates) and how the final architecture is derived.

    * ``rule``: the derivation rule (:mod:`egs.derivation`): "node" (the authors' exact per-node
      rule), "select" (the paper's text: ``select_candidates`` architectures sampled from p, scored
      with the shared weights on ``select_batches`` search-val batches, the best kept) or "edge".
    * The authors' released code (DATA-NAS) differs from DARTS in choices the paper does not state;
      each is an option here: ``effectiveness`` "relu" (h = relu(alpha) normalised) instead of
      "softmax"; ``arch_reg`` > 0 adds ``arch_reg * mean |h - c / sum c|`` to the alpha update
      (authors: 0.1); ``tau_schedule`` "linear" (the authors' code intends tau = 5 - 4 epoch / 150,
      but as released never passes the epoch, so it runs at tau = 1); ``arch_weight_decay`` 0
      (authors) or 1e-3 (DARTS).
    * :meth:`temperature` is the one schedule from ``tau_start`` (first epoch) to ``tau_end`` (last):
      geometric or linear. The paper gives no temperature.
    """

    family: ClassVar[str | None] = None  # the space family these settings search (None: any)
    space: str = "conv"
    M: int = 7
    lam: float = 0.5
    tau_start: float = 1.0
    tau_end: float = 1.0
    tau_schedule: str = "geometric"
    mode: str = "joint"  # "joint" (Eq. 9) or "bilevel" (first-order DARTS)
    arch_lr: float = 3e-4
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    effectiveness: str = "softmax"
    arch_reg: float = 0.0
    rule: str = "node"
    select_candidates: int = 16
    select_batches: int = 4

    def temperature(self, epoch: int) -> float:
        """The Gumbel-softmax temperature of ``epoch`` (0-based), from ``tau_start`` to ``tau_end``."""
        if self.epochs <= 1:
            return self.tau_start
        t = epoch / (self.epochs - 1)
        if self.tau_schedule == "linear":
            return self.tau_start + (self.tau_end - self.tau_start) * t
        return self.tau_start * (self.tau_end / self.tau_start) ** t

    def __post_init__(self) -> None:
        """Besides each field's rule: the space's family fits the settings (a conv search needs a conv-family
        space), and every epoch's temperature (not only ``tau_start`` and ``tau_end``, which the rules check)
        is one the sampler accepts for the float32 logits of a search (:func:`egs.checks.smallest_tau`)."""
        super().__post_init__()
        from egs.space import get_space
        family = get_space(self.space).family
        if self.family is not None and family != self.family:
            other = {"conv": "search", "rnn": "rnn_search"}[family]
            raise EGSError(f"space={self.space!r} belongs to the {family!r} family, but {type(self).__name__} searches "
                           f"{self.family!r}-family spaces; choose a space of that family, or search this one with "
                           f"egs.settings({other!r}, ..., space={self.space!r}).")
        for epoch in range(self.epochs):
            tau = self.temperature(epoch)
            if not (math.isfinite(tau) and tau >= smallest_tau("float32")):
                check_temperature(tau, f"the temperature of epoch {epoch + 1} ({self.tau_schedule} schedule from "
                                       f"tau_start={self.tau_start} to tau_end={self.tau_end})")


@dataclass(frozen=True)
class LMSettings(RunSettings):
    """What recurrent search and language-model training share: the corpus, its streams and BPTT
    windows, the model size and DARTS's dropouts. ``batch_size`` counts streams; ``*_tokens`` of 0
    use the whole split. Mixed precision is off by default (``amp``)."""

    corpus: str = "ptb"
    eval_batch_size: int = 10
    bptt: int = 35
    emb: int = 300  # embedding = hidden size
    train_tokens: int = 0
    val_tokens: int = 0
    lr: float = 20.0
    grad_clip: float = 0.25
    amp: bool = False
    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    dropoute: float = 0.1


@dataclass(frozen=True)
class SearchSettings(ArchSettings):
    """CIFAR-10 cell search (Sec. 4.1.1). ``paper`` is DARTS's search recipe, which the paper inherits.

    ``train_size``/``val_size`` of 0 use the whole 25,000-image halves of the CIFAR-10 training set.
    ``cost`` and ``credit_beta`` define the efficiency credit (:mod:`egs.credits`).
    """

    family: ClassVar[str | None] = "conv"
    C: int = 16
    layers: int = 8
    image_size: int = 32
    train_size: int = 0
    val_size: int = 0
    cost: str = "flops"  # efficiency credit: "flops", "params" or "latency"
    credit_beta: float = 1.0
    lr_min: float = 0.001
    momentum: float = 0.9
    channels_last: bool = True


@dataclass(frozen=True)
class TrainSettings(RunSettings):
    """Training a genotype from scratch (Sec. 4.1.2-4.1.3); ``paper`` is DARTS's CIFAR-10 recipe.

    ``auxiliary_weight`` 0 builds no auxiliary tower; ``schedule`` is ``cosine`` (to ``lr_min``) or
    ``poly`` (``lr * (1 - epoch / epochs) ** poly_power``).
    """

    dataset: str = "cifar10"  # "cifar10" or "imagenet"
    epochs: int = 600
    batch_size: int = 96
    C: int = 36
    layers: int = 20
    image_size: int = 32
    train_size: int = 0  # 0: the whole training set (less the validation slice)
    val_size: int = 0  # images held out of the training set for per-epoch validation (0: none; test logged)
    test_size: int = 0  # 0: the whole test (ImageNet: validation) set
    lr_min: float = 0.0
    schedule: str = "cosine"
    poly_power: float = 1.0
    momentum: float = 0.9
    auxiliary_weight: float = 0.4
    drop_path: float = 0.2  # increased linearly from 0 over the epochs, as in DARTS
    cutout: int = 16
    label_smoothing: float = 0.0
    workers: int = 4  # ImageNet data-loading processes
    channels_last: bool = True
    compile: bool = False


@dataclass(frozen=True)
class RNNSearchSettings(LMSettings, ArchSettings):
    """Recurrent cell search on PTB (Sec. 4.2); ``paper`` is DARTS's PTB search recipe.

    DARTS's search uses fixed-length BPTT windows; its activation regularisers (AR/TAR) are not used
    here. The architecture optimiser is DARTS's: Adam with lr 3e-3, its default betas (0.9, 0.999).
    """

    family: ClassVar[str | None] = "rnn"
    batch_size: int = 256
    space: str = "rnn"
    M: int = 4
    lam: float = 1.0
    weight_decay: float = 5e-7
    arch_lr: float = 3e-3
    arch_beta1: float = 0.9
    dropoute: float = 0.0


@dataclass(frozen=True)
class LMTrainSettings(LMSettings):
    """Training a recurrent cell from scratch (DARTS's PTB recipe: averaged SGD, variable BPTT).

    NT-ASGD: plain SGD until the validation loss has not improved on the best of all but the last
    ``nonmono`` epochs, then averaged SGD; the averaged weights are evaluated and reported.
    """

    epochs: int = 1600  # the paper trains the PTB cell for 1,600 epochs (Sec. 4.2.2)
    emb: int = 850
    test_tokens: int = 0
    weight_decay: float = 8e-7
    nonmono: int = 5
    log_every: int = 200


_SETTINGS: dict[str, dict[str, Any]] = {
    "rnn_search": {
        # Tests only: the smallest sizes that run every code path, the method as `paper`; select: 4 candidates on
        # 2 of the 12 search-val windows (enough to exercise the rule, not to choose well).
        "smoke": RNNSearchSettings(epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16,
                                   train_tokens=800, val_tokens=200, log_every=5, select_candidates=4,
                                   select_batches=2),
        # About 2 minutes on 2 cores: the first 100,000 training tokens (as the cpu training protocol),
        # embedding/hidden 64, batch 32, 4 epochs. The architecture optimisation is `paper`'s (DARTS's), not
        # re-tuned for this profile as the conv search was: softmax credit h, lambda = 1, no regulariser,
        # constant tau = 1, Adam 3e-3 with DARTS's weight decay 1e-3 on alpha. Its logits barely move in 4 epochs
        # (entropy of h 0.998 of log K in the cpu reproduction), so the rule decides much of the cell.
        # Rule: node. The recurrent model's size does not depend on the cell, so the rule rests on search-val
        # perplexity with the shared weights (studies/rules.py, studies/results/rules_cpu.jsonl, on the cpu
        # reproduction's searches; notebook 05 repeats it on its own search): at M = 4 the three rules cannot be
        # told apart (held-out perplexity node 1548, edge 1539, select 1563; node - edge +0.007 +- 0.019 nats,
        # node - select -0.013 +- 0.022), at M = 1 (Figure 3c) node is far ahead (2745 against select 3281 and
        # edge 4321; -0.19 +- 0.02 and -0.48 +- 0.03 nats). Select: 16 candidates on 8 of the 58 search-val
        # windows; in the same study its held-out gain rose with the windows up to 8 and 32 candidates gained
        # nothing over 16 at M = 4; about 0.25-0.5 s per candidate-window on 2 cores, so about a minute.
        "cpu": RNNSearchSettings(epochs=4, batch_size=32, eval_batch_size=10, emb=64, train_tokens=100_000,
                                 val_tokens=20_000, log_every=25, select_candidates=16, select_batches=8),
        # DARTS's PTB search (Adam 3e-3, betas (0.9, 0.999), weight decay 1e-3 on alpha) with the paper's M = 4;
        # softmax credit h (the paper's Eq. 3; the authors' relu credit is an option), no regulariser (the authors'
        # 0.1 * mean |h - c / sum c| is an option, and the authors released no recurrent code), constant tau = 1
        # (the paper gives none); lambda = 1 (no resource cost is defined for activations). The node rule, as at
        # cpu (the rule rests on search-val perplexity; notebook 05 measures it on this search). Select: 32
        # candidates on 32 of PTB valid's 210 windows: at cpu the gain still rose with the windows and, at M = 1,
        # with the candidates; 1,024 forward windows, a small share of a 50-epoch search (estimated, not timed).
        "paper": RNNSearchSettings(select_candidates=32, select_batches=32),
    },
    "lm_train_ptb": {
        "smoke": LMTrainSettings(epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800,
                                 val_tokens=200, test_tokens=200, nonmono=1, log_every=5),
        # The validated cpu protocol (setting R1 of studies/protocol.py, chosen on PTB valid): 100,000
        # training tokens, embedding/hidden 64, 3 epochs: DARTS_V2's cell reaches 566 +- 4 valid perplexity,
        # its identity twin 659 +- 58 (3 seeds, separated; a unigram model scores about 690), about 50 s per
        # training on 2 cores. The test split (all 82,430 tokens) is evaluated once, at the end.
        "cpu": LMTrainSettings(epochs=3, batch_size=32, emb=64, train_tokens=100_000, val_tokens=20_000,
                               test_tokens=0, nonmono=2, log_every=50),
        "paper": LMTrainSettings(),
    },
    "lm_train_wikitext2": {
        "smoke": LMTrainSettings(corpus="wikitext2", epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16,
                                 train_tokens=800, val_tokens=200, test_tokens=200, nonmono=1,
                                 weight_decay=5e-7, dropouth=0.15, log_every=5),
        # As PTB's cpu protocol but 2 epochs (the 33,278-word softmax makes an epoch ~3x dearer): the
        # WikiText-2 transfer is the breadth the cpu budget cuts first (one seed, not validated).
        "cpu": LMTrainSettings(corpus="wikitext2", epochs=2, batch_size=32, emb=64, train_tokens=100_000,
                               val_tokens=20_000, test_tokens=20_000, nonmono=2, weight_decay=5e-7,
                               dropouth=0.15, log_every=50),
        # DARTS's WikiText-2 setting: embedding = hidden = 700, weight decay 5e-7, hidden dropout 0.15.
        "paper": LMTrainSettings(corpus="wikitext2", emb=700, weight_decay=5e-7, dropouth=0.15),
    },
    "train_cifar": {
        "smoke": TrainSettings(epochs=2, batch_size=8, C=4, layers=3, image_size=8, train_size=48,
                               test_size=32, auxiliary_weight=0.0, cutout=2, log_every=2),
        # The validated cpu protocol (setting Q4 of studies/protocol.py, chosen on a 2,000-image validation
        # slice held out of the training set): 16x16 images, 5,000 training images, 5 cells with 8 initial
        # channels, 3 epochs at lr 0.08 (234 steps), no drop-path, no cutout (regularisers only slow a run
        # this short down), no auxiliary tower (its 5x5 pooling needs the 8x8 map of 32x32 inputs). It
        # separates DARTS_V2 from its parameter-free twin with 3 seeds (55.8 +- 1.4 vs 64.7 +- 1.5 % val
        # error, Welch p = 5e-5) in about 25 s per DARTS_V2 training on 2 cores; the test set (all 10,000
        # images) is evaluated once, at the end.
        "cpu": TrainSettings(epochs=3, batch_size=64, C=8, layers=5, image_size=16, train_size=5000,
                             val_size=2000, lr=0.08, auxiliary_weight=0.0, drop_path=0.0, cutout=0, log_every=25),
        "paper": TrainSettings(),
    },
    "train_imagenet": {
        "smoke": TrainSettings(dataset="imagenet", epochs=1, batch_size=2, C=4, layers=3, image_size=32,
                               lr=0.1, schedule="poly", weight_decay=3e-5, label_smoothing=0.1,
                               auxiliary_weight=0.0, drop_path=0.0, cutout=0, workers=0, log_every=1),
        "cpu": TrainSettings(dataset="imagenet", epochs=1, batch_size=32, C=8, layers=5, image_size=64,
                             train_size=2000, test_size=500, lr=0.1, schedule="poly", weight_decay=3e-5,
                             label_smoothing=0.1, auxiliary_weight=0.0, drop_path=0.0, cutout=0, workers=2),
        # ImageNet mobile setting (Sec. 4.1.3): 14 cells, C = 48, 224x224, 250 epochs, batch 128,
        # lr 0.1 with a poly schedule, weight decay 3e-5, label smoothing 0.1, auxiliary tower.
        "paper": TrainSettings(dataset="imagenet", epochs=250, batch_size=128, C=48, layers=14, image_size=224,
                               lr=0.1, schedule="poly", weight_decay=3e-5, label_smoothing=0.1,
                               drop_path=0.0, cutout=0),
    },
    "search": {
        # Tests only: the smallest sizes that run every code path, the method as `paper` (softmax credit h,
        # lambda = 0.5, no regulariser, constant tau = 1, DARTS's weight decay 1e-3 on alpha); select: 4
        # candidates on 2 of the 4 search-val batches (enough to exercise the rule, not to choose well).
        "smoke": SearchSettings(epochs=2, batch_size=8, C=4, layers=3, image_size=8, train_size=48,
                                val_size=32, log_every=2, select_candidates=4, select_batches=2),
        # Sized for a 2-core laptop (about 4 minutes): 16x16 images, 5,000 search-train and 2,000 search-val
        # images, a 5-cell network with 8 initial channels (the validated train_cifar sizes), batch 64, 4 epochs
        # (312 steps). The method is setting C10 of studies/search.py (evidence in notebook 02): the paper's
        # softmax credit with the authors' released choices lambda = 1 and no weight decay on alpha, and an
        # architecture lr of 3e-2, outside the usual [3e-4, 3e-3] because the evidence says so: alpha's gradient
        # is about 1e-3 per element with a per-step signal-to-noise ratio of 0.3-0.4, so DARTS's weight decay of
        # 1e-3 on alpha cancels it and 312 Adam steps of 3e-3 cannot move the logits past their noise (entropy
        # of h at 0.996-0.999 of log K for lr 3e-3 with or without the authors' relu credit and regulariser;
        # C1, C2, C9, C12). At lr 3e-2 without weight decay h's entropy falls to 0.51 / 0.82 of log K and the
        # derived cell beats the alpha = 0 cell on search-val (0.288 vs 0.244); with the paper's lambda = 0.5 the
        # entropy falls as far (0.79 / 0.82) but the derived cell lost to the alpha = 0 cell (0.248 vs 0.317; C11).
        # Softmax credit h, not the authors' relu: with relu and their regulariser (C5) h's entropy fell less
        # (0.81 / 0.84) and the derived cell barely beat the alpha = 0 cell (0.232 vs 0.224); so no regulariser.
        # Constant tau = 1 (the paper gives none; the authors' code runs at 1): a linear 2 -> 0.5 schedule (C7)
        # won on seed 0 (0.302 vs 0.212) but lost on seed 1 (0.234 vs 0.240, C7s1). Rule: node, by notebook 07's
        # criterion (derived sizes against Table 5). Select (studies/rules.py, studies/results/rules_cpu.jsonl, on
        # the cpu reproduction's M = 7 search): 16 candidates on 8 of the 32 search-val batches. The batches matter
        # more than the candidates: on 1-4 batches any number of candidates gained at most 0.007 held-out accuracy
        # over the candidates' mean (an oracle 0.02), on 8 batches 16 candidates gained 0.012 and 32 candidates
        # 0.014 for twice the cost; about 0.2 s per candidate-batch on 2 cores, so about 30 s a derivation.
        "cpu": SearchSettings(epochs=4, batch_size=64, C=8, layers=5, image_size=16, train_size=5000,
                              val_size=2000, lam=1.0, arch_lr=3e-2, arch_weight_decay=0.0, log_every=25,
                              select_candidates=16, select_batches=8),
        # The paper's text, which "always inherits" DARTS's settings: softmax credit h, no regulariser,
        # architecture weight decay 1e-3 (DARTS; the authors' released code uses 0), tau = 1 (the paper gives
        # none; the authors' released code runs at 1), lambda = 0.5 (Sec. 3.2.2), M = 7 (Sec. 4.1.1). The
        # authors' relu credit, regulariser and linear schedule are options (ArchSettings), not the paper's text.
        # Derivation: the node rule, chosen by notebook 07's criterion (derived sizes against Table 5). Select: 32
        # candidates on 32 of the 390 search-val batches: at cpu the gain still rose with the batches (up to 8 of
        # 32) and with the candidates; 1,024 forward passes, a small share of a 50-epoch search (not timed).
        "paper": SearchSettings(select_candidates=32, select_batches=32),
    },
    # The tables' protocol: seeds per trained cell, random cells, search seeds.
    "protocol": {
        "smoke": ProtocolSettings(seeds=(0,), random_cells=1, ablation_Ms=(1, 4, 7), single_draw_epochs=3),
        # Every trained cell with 3 seeds (intervals and Welch tests), 2 search seeds, 3 random conv and 2
        # random recurrent cells, Table 5 at M = 1, 4, 7: the breadth the cpu budget allows. M = 1 (Figure 3,
        # Table 5) is searched 12 epochs instead of 4: with one draw per node its logits move slowest; at 4
        # epochs the reduction cell's entropy of h stayed at 0.940 of log K, at 8 it reached 0.898, at 12 0.868
        # (studies/search.py C10M1, C10M1L; about 130 s). Meanwhile its normal cell's mass moves mostly onto
        # "none" (notebook 02 shows it).
        "cpu": ProtocolSettings(seeds=(0, 1, 2), random_cells=3, random_rnn_cells=2, search_seeds=(0, 1),
                                ablation_Ms=(1, 4, 7), single_draw_epochs=12),
        "paper": ProtocolSettings(),
    },
    "sampling": {
        "smoke": SamplingSettings(mc_samples=4_000, count_samples=2_000),
        "cpu": SamplingSettings(mc_samples=200_000, count_samples=100_000),
        "paper": SamplingSettings(mc_samples=1_000_000, count_samples=1_000_000),
    },
}

# Notebook 07 (Table 5, Sec. 4.3.1): a search for each M = 1..9 (the derivation rules' sizes), and the cells of
# the protocol's `ablation_Ms` trained with its seeds. Those trained M are searched with the full `search`
# settings (long enough for the logits to move; notebook 02's runs are reused for its M and its Figure 3 M);
# the others only feed the rule-size table, with `ablation_search` (at `cpu`, one epoch). Training uses the
# validated `train_cifar` protocol. `paper` is the paper's own search and 600-epoch evaluation for every M.
_SETTINGS["ablation_search"] = {
    "smoke": replace(_SETTINGS["search"]["smoke"], epochs=1),
    "cpu": replace(_SETTINGS["search"]["cpu"], epochs=1),  # the rule table's short searches (Table 5 trains long ones)
    "paper": _SETTINGS["search"]["paper"],
}
_SETTINGS["ablation_train"] = {
    "smoke": replace(_SETTINGS["train_cifar"]["smoke"], epochs=1),
    "cpu": _SETTINGS["train_cifar"]["cpu"],  # the validated protocol
    "paper": _SETTINGS["train_cifar"]["paper"],
}

# Live monitoring (egs.board) is for long runs: on in the paper profile, off where it would only cost time.
for _experiment, _sizes in _SETTINGS.items():
    for _profile in ("smoke", "cpu"):
        if "tensorboard" in _sizes[_profile].__dataclass_fields__:
            _sizes[_profile] = replace(_sizes[_profile], tensorboard=False)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise EGSError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} "
                       "(smoke = tests, cpu = a laptop, paper = the paper's settings on GPUs).")
    return profile


def search_settings(profile: str = DEFAULT_PROFILE, **overrides: Any) -> Any:
    """The tables' CIFAR-10 search settings: ``settings("search", profile, **overrides)``, except that a
    search at M = 1 without explicit ``epochs`` runs the protocol's ``single_draw_epochs`` (if set).
    With one draw per node, M = 1 moves its logits slowest (notebook 02's evidence)."""
    cfg = settings("search", profile, **overrides)
    longer = settings("protocol", profile).single_draw_epochs
    return replace(cfg, epochs=longer) if cfg.M == 1 and longer and overrides.get("epochs") is None else cfg


def settings(experiment: str, profile: str = DEFAULT_PROFILE, **overrides: Any) -> Any:
    """The settings of ``experiment`` at ``profile``, with keyword ``overrides`` applied.

    Overrides of ``None`` are ignored, so notebook parameters can default to "use the profile".
    """
    check_profile(profile)
    if experiment not in _SETTINGS:
        raise EGSError(f"unknown experiment {experiment!r}; choose one of {', '.join(_SETTINGS)}.")
    base = _SETTINGS[experiment][profile]
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(base.__dataclass_fields__))
    if unknown:
        raise EGSError(f"unknown setting(s) {', '.join(unknown)} for {experiment!r}; valid: "
                       f"{', '.join(base.__dataclass_fields__)}.")
    return replace(base, **given)
