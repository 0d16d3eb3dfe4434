"""The settings of every experiment: one frozen dataclass per kind of run, and the lookup by profile.

One code path, three sizes: every experiment reads its sizes from :mod:`egs.profiles.table` through
:func:`settings` and nothing else differs between profiles (``smoke``: tests, ``cpu``: a 2-core laptop,
``paper``: GPUs). Why each value is what it is: ``docs/settings.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from egs.arch.space import get_space
from egs.core.checks import check_temperature, smallest_tau
from egs.core.errors import EGSError
from egs.families import FAMILIES, get_family
from egs.profiles.fields import DEFAULT_PROFILE, FIELD_CHECKS, check_profile
from egs.profiles.table import MONITORED_PROFILES, TABLE


@dataclass(frozen=True)
class Settings:
    """Base of every experiment's settings: each field is checked (type and range, :data:`egs.profiles.fields.FIELD_CHECKS`) on
    construction, by ``settings()``, ``dataclasses.replace`` and direct calls alike, and ints given
    for float fields become floats. A bad value raises one :class:`EGSError` naming the setting."""

    def __post_init__(self) -> None:
        for f in fields(self):
            check = FIELD_CHECKS.get(f.name)
            if check is None:  # a new field must say what it accepts
                raise EGSError(f"setting {f.name!r} of {type(self).__name__} has no check in egs.profiles.fields.FIELD_CHECKS.")
            object.__setattr__(self, f.name, check(getattr(self, f.name), f.name))


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
    random_cells: int = 0  # Table 1's size-matched random conv cells (paper: the random search below instead)
    random_rnn_cells: int = 0  # Table 3's random recurrent cells (likewise)
    search_seeds: tuple[int, ...] = (0, 1, 2, 3)  # DARTS ran 4 searches and kept the best (Sec. 3.3)
    ablation_Ms: tuple[int, ...] = tuple(range(1, 10))  # Table 5's trained M values
    single_draw_epochs: int = 0  # CIFAR-10 search epochs at M = 1 (Figure 3a/3b, Table 5); 0: the search's own
    # Best-of-N as DARTS (Sec. 3.3), which the paper inherits ("find the best cells according to their validation
    # performance", Sec. 4): with ``selection``, the cells of the ``search_seeds`` searches are each trained briefly
    # (select_cifar / select_ptb) and the best on validation is the one the tables train and transfer;
    # ``random_search_cells`` (CIFAR-10) and ``random_search_rnn_cells`` (PTB) random cells are selected the same way
    # for the random search baseline row (DARTS's counts: 24 and 8). 0 / False: no selection (the cpu tables train
    # every search's cell and use size-matched random cells, ``random_cells``).
    selection: bool = True
    random_search_cells: int = 24
    random_search_rnn_cells: int = 8
    # Random cells with exactly the (edge, op) picks into every node of each searched cell (egs.arch.baselines.
    # op_matched_random), one per searched cell (Table 5: per trained M): the control for density, which size- and
    # rule-matched random cells do not give (the node rule's random cells have about twice a searched cell's ops).
    op_matched_cells: bool = False


@dataclass(frozen=True)
class RunSettings(Settings):
    """What every run (search or training) has; the loop (:class:`egs.engine.loop.EpochLoop`) reads these.

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
    lr_reference_batch: int = 0  # 0: lr as given; N: lr * batch_size / N (see egs.engine.distributed)
    micro_batch: int = 0  # BatchNorm/accumulation group; 0: the whole per-process batch
    amp: bool = True
    seed: int = 0
    log_every: int = 50
    device: str = "auto"
    tensorboard: bool = True  # TensorBoard event files in <run_dir>/tensorboard (egs.engine.board); off at smoke and cpu


@dataclass(frozen=True)
class ArchSettings(RunSettings):
    """What conv and recurrent searches share: the space, the sampler (M, Eq. 5's lambda, the
    temperature), the architecture optimiser (Adam on alpha; joint Eq. 9 or first-order bilevel
    updates) and how the final architecture is derived.

    * ``rule``: the derivation rule (:mod:`egs.method.derivation`): "node" (the authors' exact per-node
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
        is one the sampler accepts for the float32 logits of a search (:func:`egs.core.checks.smallest_tau`)."""
        super().__post_init__()
        family = get_space(self.space).family
        if self.family is not None and family != self.family:
            other = get_family(family).search
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
    use the whole split. Mixed precision is off by default (``amp``). ``tar_beta``: DARTS's temporal activation
    regularisation of the weight loss, ``tar_beta * mean((h[1:] - h[:-1])^2)`` over the cell's raw outputs
    (AWD-LSTM; quark0/darts rnn/train_search.py and rnn/train.py, ``--beta 1e-3``; their AR, ``--alpha``, is 0 and
    not implemented)."""

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
    tar_beta: float = 1e-3


@dataclass(frozen=True)
class SearchSettings(ArchSettings):
    """CIFAR-10 cell search (Sec. 4.1.1). ``paper`` is DARTS's search recipe, which the paper inherits.

    ``train_size``/``val_size`` of 0 use the whole 25,000-image halves of the CIFAR-10 training set.
    ``cost`` and ``credit_beta`` define the efficiency credit (:mod:`egs.conv.credits`).
    """

    family: ClassVar[str | None] = "conv"
    C: int = 16
    layers: int = 8
    image_size: int = 32
    train_size: int = 0
    val_size: int = 0
    # The efficiency credit's cost (Eq. 5's l): the paper reads efficiency as "search time"; an op's multiply-adds
    # ("flops") are used as its device-independent share of that time, since "latency" (the literal reading, kept as
    # an option) makes a search depend on the machine's timing noise; "params" is the third option.
    cost: str = "flops"
    credit_beta: float = 1.0
    lr_min: float = 0.001
    momentum: float = 0.9
    channels_last: bool = True


@dataclass(frozen=True)
class TrainSettings(RunSettings):
    """Training a genotype from scratch (Sec. 4.1.2-4.1.3); ``paper`` is DARTS's CIFAR-10 recipe.

    ``auxiliary_weight`` 0 builds no auxiliary tower; ``schedule`` is ``cosine`` (to ``lr_min``) or
    ``poly`` (``lr * (1 - epoch / epochs) ** poly_power``). ``max_madds`` > 0 (ImageNet) makes ``C`` the widest
    network within that many multiply-adds per image (:func:`egs.conv.macs.fit_width`, which must run before
    training: the paper's mobile setting is a budget, "under 600M", Sec. 4.1.3, not a width).
    """

    dataset: str = "cifar10"  # "cifar10" or "imagenet"
    epochs: int = 600
    batch_size: int = 96
    C: int = 36
    layers: int = 20
    image_size: int = 32
    max_madds: int = 0  # > 0: C is fitted to this many multiply-adds per image (egs.conv.macs.fit_width); 0: C as given
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

    DARTS's search uses fixed-length BPTT windows; its TAR (``tar_beta``) is in the weight loss, not in bilevel's
    search-val loss of alpha (AR is 0). The architecture optimiser is DARTS's: Adam with lr 3e-3, its default
    betas (0.9, 0.999).

    ``lam`` 0.5 as the paper ("always fixed", Eq. 5), with the efficiency credit l of
    :func:`egs.rnn.supernet.efficiency_credit` (``credit_beta``) from each op's multiply-adds on its edge. Measured
    at paper size (emb 300, batch 256, one edge-step forward + backward, 2 CPU cores, 4 runs): tanh 3.1-4.6 ms,
    relu and sigmoid 0.91-0.94 of it, identity 0.87-0.90, the edge's matmul alone 0.68-0.70, "none" 0 (the edge
    is skipped); so l is near-uniform over the activations but favours "none" (0.40 against 0.15 each; by the
    timings 0.39 against 0.14-0.16): not a flatter p only but a prior for fewer edges, i.e. less search time.
    """

    family: ClassVar[str | None] = "rnn"
    batch_size: int = 256
    space: str = "rnn"
    M: int = 4
    lam: float = 0.5
    credit_beta: float = 1.0
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
    test_batch_size: int = 1  # DARTS evaluates the test split as one stream (rnn/train.py: test_batch_size = 1)
    weight_decay: float = 8e-7
    nonmono: int = 5
    log_every: int = 200


EXPERIMENTS: dict[str, type[Settings]] = {
    "sampling": SamplingSettings, "protocol": ProtocolSettings, "search": SearchSettings,
    "ablation_search": SearchSettings, "train_cifar": TrainSettings, "train_imagenet": TrainSettings,
    "ablation_train": TrainSettings, "rnn_search": RNNSearchSettings, "lm_train_ptb": LMTrainSettings,
    "lm_train_wikitext2": LMTrainSettings, "select_cifar": TrainSettings, "select_ptb": LMTrainSettings,
}
"""Experiment name -> its settings class (the values per profile: :data:`egs.profiles.table.TABLE`)."""


def search_settings(profile: str = DEFAULT_PROFILE, **overrides: Any) -> Any:
    """The tables' CIFAR-10 search settings: ``settings("search", profile, **overrides)``, except that a
    search at M = 1 without explicit ``epochs`` runs the protocol's ``single_draw_epochs`` (if set).
    With one draw per node, M = 1 moves its logits slowest (notebook 02's evidence)."""
    cfg = settings("search", profile, **overrides)
    longer = settings("protocol", profile).single_draw_epochs
    return replace(cfg, epochs=longer) if cfg.M == 1 and longer and overrides.get("epochs") is None else cfg


def _experiment(name: str) -> tuple[type[Settings], Any]:
    """The settings class and per-profile values of experiment ``name``: the built-in table, else the
    experiments a registered family brings (:attr:`egs.families.Family.experiments`)."""
    if name in EXPERIMENTS:
        return EXPERIMENTS[name], TABLE[name]
    for family in FAMILIES.values():
        if isinstance(name, str) and name in family.experiments:
            return family.experiment(name)
    known = [*EXPERIMENTS, *(e for f in FAMILIES.values() for e in f.experiments)]
    raise EGSError(f"unknown experiment {name!r}; choose one of {', '.join(known)}.")


def settings(experiment: str, profile: str = DEFAULT_PROFILE, **overrides: Any) -> Any:
    """The settings of ``experiment`` at ``profile``, with keyword ``overrides`` applied.

    Overrides of ``None`` are ignored, so notebook parameters can default to "use the profile".
    """
    check_profile(profile)
    kind, table = _experiment(experiment)
    values = dict(table[profile])
    if "tensorboard" in kind.__dataclass_fields__ and profile not in MONITORED_PROFILES:
        values.setdefault("tensorboard", False)
    base = kind(**values)
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(base.__dataclass_fields__))
    if unknown:
        raise EGSError(f"unknown setting(s) {', '.join(unknown)} for {experiment!r}; valid: "
                       f"{', '.join(base.__dataclass_fields__)}.")
    return replace(base, **given)
