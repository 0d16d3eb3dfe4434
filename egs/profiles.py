"""The three experiment sizes: ``smoke`` (tests), ``cpu`` (a 2-core laptop), ``paper`` (GPUs).

One code path, three sizes: every experiment reads its sizes from here and nothing else differs
between profiles. Each experiment has a frozen dataclass of settings and one instance per profile.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from egs.errors import EGSError

PROFILES = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"


@dataclass(frozen=True)
class SamplingSettings:
    """Notebook 01 (Figure 1, Propositions 2-3): exact distributions checked against Monte Carlo."""

    mc_samples: int  # Monte-Carlo draws per (p, M) for the code distribution
    Ks: tuple[int, ...] = (2, 5, 8)  # numbers of candidate ops in the Proposition tables
    Ms: tuple[int, ...] = tuple(range(1, 10))  # ensemble sizes M = 1..9
    count_samples: int = 0  # Monte-Carlo draws used to count the distinct codes seen (Prop. 3)


@dataclass(frozen=True)
class SearchSettings:
    """CIFAR-10 cell search (Sec. 4.1.1). ``paper`` is DARTS's search recipe, which the paper inherits.

    The temperature is not given by the paper; we keep tau = 1 (a geometric schedule from
    ``tau_start`` to ``tau_end`` is available). ``train_size``/``val_size`` of 0 use the whole
    25,000-image halves of the CIFAR-10 training set.

    ``batch_size`` is the global batch: under torchrun each of N processes trains on ``batch_size / N``
    of it. ``lr`` is the weight learning rate for that batch; ``lr_reference_batch`` > 0 scales it by
    ``batch_size / lr_reference_batch`` (linear scaling). ``micro_batch`` > 0 splits each process's
    batch into groups of that many images (gradients accumulated, BatchNorm statistics per group):
    with it set, a run trains the same way on any number of processes (see ``EpochLoop.backward``).
    AMP and channels_last apply on CUDA only.
    """

    epochs: int = 50
    batch_size: int = 64
    C: int = 16
    layers: int = 8
    image_size: int = 32
    train_size: int = 0
    val_size: int = 0
    M: int = 7
    lam: float = 0.5
    tau_start: float = 1.0
    tau_end: float = 1.0
    mode: str = "joint"  # "joint" (Eq. 9) or "bilevel" (first-order DARTS)
    cost: str = "flops"  # efficiency credit: "flops", "params" or "latency"
    credit_beta: float = 1.0
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_lr: float = 3e-4
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    lr_reference_batch: int = 0  # 0: lr as given; N: lr * batch_size / N (see egs.distributed)
    micro_batch: int = 0  # BatchNorm/accumulation group; 0: the whole per-process batch
    amp: bool = True
    channels_last: bool = True
    seed: int = 0
    log_every: int = 50
    device: str = "auto"


@dataclass(frozen=True)
class TrainSettings:
    """Training a genotype from scratch (Sec. 4.1.2-4.1.3); ``paper`` is DARTS's CIFAR-10 recipe.

    ``auxiliary_weight`` 0 builds no auxiliary tower; ``schedule`` is ``cosine`` (to ``lr_min``) or
    ``poly`` (``lr * (1 - epoch / epochs) ** poly_power``). AMP and channels_last apply on CUDA only.
    ``batch_size`` is the global batch over all torchrun processes; ``lr_reference_batch`` > 0 scales
    ``lr`` (and ``lr_min``) by ``batch_size / lr_reference_batch``; ``micro_batch`` as in
    :class:`SearchSettings`.
    """

    dataset: str = "cifar10"  # "cifar10" or "imagenet"
    epochs: int = 600
    batch_size: int = 96
    C: int = 36
    layers: int = 20
    image_size: int = 32
    train_size: int = 0  # 0: the whole training set
    test_size: int = 0  # 0: the whole test (validation) set
    lr: float = 0.025
    lr_min: float = 0.0
    schedule: str = "cosine"
    poly_power: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    auxiliary_weight: float = 0.4
    drop_path: float = 0.2  # increased linearly from 0 over the epochs, as in DARTS
    cutout: int = 16
    label_smoothing: float = 0.0
    workers: int = 4  # ImageNet data-loading processes
    lr_reference_batch: int = 0  # 0: lr as given; N: lr * batch_size / N (see egs.distributed)
    micro_batch: int = 0  # BatchNorm/accumulation group; 0: the whole per-process batch
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    log_every: int = 50
    device: str = "auto"


@dataclass(frozen=True)
class RNNSearchSettings:
    """Recurrent cell search on PTB (Sec. 4.2); ``paper`` is DARTS's PTB search recipe.

    ``train_tokens``/``val_tokens`` of 0 use the whole splits. DARTS's search uses fixed-length BPTT
    windows; its activation regularisers (AR/TAR) are not used here. ``batch_size`` (streams) is the
    global batch over all torchrun processes; ``lr_reference_batch`` as in :class:`SearchSettings`.
    """

    corpus: str = "ptb"
    epochs: int = 50
    batch_size: int = 256
    eval_batch_size: int = 10
    bptt: int = 35
    emb: int = 300  # embedding = hidden size
    train_tokens: int = 0
    val_tokens: int = 0
    M: int = 4
    lam: float = 1.0
    tau_start: float = 1.0
    tau_end: float = 1.0
    mode: str = "joint"
    lr: float = 20.0
    weight_decay: float = 5e-7
    grad_clip: float = 0.25
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    lr_reference_batch: int = 0
    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    dropoute: float = 0.0
    seed: int = 0
    log_every: int = 50
    device: str = "auto"


@dataclass(frozen=True)
class LMTrainSettings:
    """Training a recurrent cell from scratch (DARTS's PTB recipe: averaged SGD, variable BPTT).

    NT-ASGD: plain SGD until the validation loss has not improved on the best of all but the last
    ``nonmono`` epochs, then averaged SGD; the averaged weights are evaluated and reported.
    ``batch_size`` (streams) is the global batch over all torchrun processes; ``lr_reference_batch``
    as in :class:`SearchSettings`.
    """

    corpus: str = "ptb"
    epochs: int = 8000  # DARTS trains PTB "until convergence" with this cap
    batch_size: int = 64
    eval_batch_size: int = 10
    bptt: int = 35
    emb: int = 850
    train_tokens: int = 0
    val_tokens: int = 0
    test_tokens: int = 0
    lr: float = 20.0
    weight_decay: float = 8e-7
    grad_clip: float = 0.25
    nonmono: int = 5
    lr_reference_batch: int = 0
    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    dropoute: float = 0.1
    seed: int = 0
    log_every: int = 200
    device: str = "auto"


_SETTINGS: dict[str, dict[str, Any]] = {
    "rnn_search": {
        "smoke": RNNSearchSettings(epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16,
                                   train_tokens=800, val_tokens=200, log_every=5),
        # About 4 minutes on 2 cores: the first 200,000 training tokens, embedding/hidden 64, batch 32,
        # 5 epochs; everything else as DARTS's PTB search.
        "cpu": RNNSearchSettings(epochs=5, batch_size=32, eval_batch_size=10, emb=64, train_tokens=200_000,
                                 val_tokens=20_000, log_every=25),
        "paper": RNNSearchSettings(),
    },
    "lm_train_ptb": {
        "smoke": LMTrainSettings(epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800,
                                 val_tokens=200, test_tokens=200, nonmono=1, log_every=5),
        # 2-5 minutes per cell on 2 cores: 200,000 training tokens, embedding/hidden 128, 5 epochs.
        "cpu": LMTrainSettings(epochs=5, batch_size=32, emb=128, train_tokens=200_000, val_tokens=20_000,
                               test_tokens=20_000, nonmono=2, log_every=50),
        "paper": LMTrainSettings(),
    },
    "lm_train_wikitext2": {
        "smoke": LMTrainSettings(corpus="wikitext2", epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16,
                                 train_tokens=800, val_tokens=200, test_tokens=200, nonmono=1,
                                 weight_decay=5e-7, dropouth=0.15, log_every=5),
        # As PTB's cpu setting but 4 epochs (the 33,278-word softmax makes an epoch ~2.5x dearer), so that
        # the whole cpu reproduction stays under an hour on 2 cores.
        "cpu": LMTrainSettings(corpus="wikitext2", epochs=4, batch_size=32, emb=128, train_tokens=200_000,
                               val_tokens=20_000, test_tokens=20_000, nonmono=2, weight_decay=5e-7,
                               dropouth=0.15, log_every=50),
        # DARTS's WikiText-2 setting: embedding = hidden = 700, weight decay 5e-7, hidden dropout 0.15.
        "paper": LMTrainSettings(corpus="wikitext2", emb=700, weight_decay=5e-7, dropouth=0.15),
    },
    "train_cifar": {
        "smoke": TrainSettings(epochs=2, batch_size=8, C=4, layers=3, image_size=8, train_size=48,
                               test_size=32, auxiliary_weight=0.0, cutout=2, log_every=2),
        # A 2-core laptop, about 6 minutes per genotype: 16x16 images, 5,000 training and 2,000 test
        # images, 5 cells with 8 initial channels, 10 epochs. The auxiliary tower is off (its 5x5
        # pooling needs the 8x8 map of 32x32 inputs); cutout is scaled to 4 pixels.
        "cpu": TrainSettings(epochs=10, batch_size=64, C=8, layers=5, image_size=16, train_size=5000,
                             test_size=2000, auxiliary_weight=0.0, cutout=4, log_every=25),
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
        "smoke": SearchSettings(epochs=2, batch_size=8, C=4, layers=3, image_size=8, train_size=48,
                                val_size=32, log_every=2),
        # Sized for a 2-core laptop (about 10 minutes): 16x16 images, 5,000 search-train and 2,000
        # search-val images, a 5-cell network with 8 initial channels, 10 epochs (1,560 steps,
        # 12x fewer than the paper's search), so the architecture learning rate is 10x the paper's
        # for the logits to move as far; everything else as in the paper.
        "cpu": SearchSettings(epochs=10, batch_size=32, C=8, layers=5, image_size=16, train_size=5000,
                              val_size=2000, arch_lr=3e-3, log_every=25),
        "paper": SearchSettings(),
    },
    "sampling": {
        "smoke": SamplingSettings(mc_samples=4_000, count_samples=2_000),
        "cpu": SamplingSettings(mc_samples=200_000, count_samples=100_000),
        "paper": SamplingSettings(mc_samples=1_000_000, count_samples=1_000_000),
    },
}

# Notebook 07 (Table 5, Sec. 4.3.1): one search and one training from scratch for each M = 1..9, with
# the `search` and `train_cifar` settings of the same profile except as below. At `cpu` the nine pairs
# must fit in about 8 minutes on 2 cores: the search runs 2 epochs on 1,280 search-train / 512 search-val
# images, the training 2 epochs on 2,000 images, tested on 1,000 (measured on one thread: search + training
# 14 s for M = 1, 67 s for M = 7, 89 s for M = 9, about 7 minutes for all nine; larger M derives larger
# cells). `paper` is the paper's own search and 600-epoch evaluation for every M.
_SETTINGS["ablation_search"] = {
    "smoke": replace(_SETTINGS["search"]["smoke"], epochs=1),
    "cpu": replace(_SETTINGS["search"]["cpu"], epochs=2, train_size=1280, val_size=512, log_every=10),
    "paper": _SETTINGS["search"]["paper"],
}
_SETTINGS["ablation_train"] = {
    "smoke": replace(_SETTINGS["train_cifar"]["smoke"], epochs=1),
    "cpu": replace(_SETTINGS["train_cifar"]["cpu"], epochs=2, train_size=2000, test_size=1000, log_every=10),
    "paper": _SETTINGS["train_cifar"]["paper"],
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise EGSError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)} "
                       "(smoke = tests, cpu = a laptop, paper = the paper's settings on GPUs).")
    return profile


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
