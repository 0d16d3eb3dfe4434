"""The value of every experiment's settings at each profile, as plain data (what differs from the class defaults).

``TABLE[experiment][profile]`` holds keyword arguments of the experiment's settings class
(:data:`egs.profiles.experiments.EXPERIMENTS`); :func:`egs.profiles.experiments.settings` builds them. Why each
value is what it is, with the studies behind it: ``docs/settings.md`` (one section per experiment, linked below).
"""
from __future__ import annotations

from typing import Any

MONITORED_PROFILES = ("paper",)  # TensorBoard (egs.engine.board) is on in these only: it costs time on short runs

_SEARCH_SMOKE = dict(epochs=2, batch_size=8, C=4, layers=3, image_size=8, train_size=48, val_size=32, log_every=2,
                     select_candidates=4, select_batches=2)
_SEARCH_CPU = dict(epochs=4, batch_size=64, C=8, layers=5, image_size=16, train_size=5000, val_size=2000, lam=1.0,
                   arch_lr=3e-2, arch_weight_decay=0.0, log_every=25, select_candidates=16, select_batches=8)
_SEARCH_PAPER = dict(select_candidates=32, select_batches=32, amp=False)  # fp32 as DARTS (docs/settings.md, amp)
_TRAIN_SMOKE = dict(epochs=2, batch_size=8, C=4, layers=3, image_size=8, train_size=48, test_size=32,
                    auxiliary_weight=0.0, cutout=2, log_every=2)
_TRAIN_CPU = dict(epochs=3, batch_size=64, C=8, layers=5, image_size=16, train_size=5000, val_size=2000, lr=0.08,
                  auxiliary_weight=0.0, drop_path=0.0, cutout=0, log_every=25)
# DARTS's CIFAR-10 recipe, but the per-epoch evaluation reads 5,000 class-balanced training images held out (train
# on 45,000) and the test set only once, at the end: DARTS logs the test error every epoch, which invites choosing
# on test. DARTS defines no such split; 5,000 (10%, 500 per class) is the usual 45k/5k one, its standard error
# about 0.25 points at 3% error: enough to follow a training, at a small cost in training data.
_TRAIN_PAPER = dict(val_size=5000, amp=False)  # fp32 as DARTS: no check of AMP against it yet (docs/settings.md)

TABLE: dict[str, dict[str, dict[str, Any]]] = {
    "sampling": {  # notebook 01: Monte-Carlo draws beside the exact distributions
        "smoke": dict(mc_samples=4_000, count_samples=2_000),
        "cpu": dict(mc_samples=200_000, count_samples=100_000),
        "paper": dict(mc_samples=1_000_000, count_samples=1_000_000),
    },
    "protocol": {  # seeds per trained cell, random cells, search seeds (docs/settings.md#protocol)
        "smoke": dict(seeds=(0,), random_cells=1, random_rnn_cells=1, search_seeds=(0,), ablation_Ms=(1, 4, 7),
                      single_draw_epochs=3, random_search_cells=2, random_search_rnn_cells=2,
                      op_matched_cells=True),  # every code path
        "cpu": dict(seeds=(0, 1, 2), random_cells=3, random_rnn_cells=2, search_seeds=(0, 1), ablation_Ms=(1, 4, 7),
                    single_draw_epochs=12, selection=False, random_search_cells=0, random_search_rnn_cells=0,
                    op_matched_cells=True),
        "paper": dict(),  # DARTS's protocol: 4 searches, best of them and best of 24 (8) random cells by selection
    },
    "search": {  # CIFAR-10 cell search (docs/settings.md#search; studies/search.py)
        "smoke": _SEARCH_SMOKE,  # tests only: the smallest sizes that run every code path, the method as paper
        "cpu": _SEARCH_CPU,  # setting C10 of studies/search.py, the validated train_cifar sizes, about 4 minutes
        "paper": _SEARCH_PAPER,  # the paper's text, which "always inherits" DARTS's settings
    },
    "ablation_search": {  # Table 5's rule-size searches (docs/settings.md#ablation_search)
        "smoke": {**_SEARCH_SMOKE, "epochs": 1},
        "cpu": {**_SEARCH_CPU, "epochs": 1},
        "paper": _SEARCH_PAPER,
    },
    "train_cifar": {  # training a conv genotype from scratch (docs/settings.md#train_cifar; studies/protocol.py)
        "smoke": _TRAIN_SMOKE,
        "cpu": _TRAIN_CPU,  # the validated cpu protocol: setting Q4 of studies/protocol.py
        "paper": _TRAIN_PAPER,  # DARTS's CIFAR-10 evaluation recipe (Sec. 4.1.2), validated on a held-out slice
    },
    "ablation_train": {  # Table 5's trainings: the validated protocol (docs/settings.md#ablation_search)
        "smoke": {**_TRAIN_SMOKE, "epochs": 1},
        "cpu": _TRAIN_CPU,
        "paper": _TRAIN_PAPER,
    },
    "select_cifar": {  # best-of-N selection: a short training from scratch, scored on the held-out slice
        "smoke": {**_TRAIN_SMOKE, "epochs": 1, "val_size": 16},
        "cpu": _TRAIN_CPU,  # unused: the cpu protocol selects nothing
        "paper": {**_TRAIN_PAPER, "epochs": 100},  # DARTS: "training from scratch for a short period" (100 epochs)
    },
    "train_imagenet": {  # the ImageNet mobile setting (Sec. 4.1.3; docs/settings.md#train_imagenet)
        "smoke": dict(dataset="imagenet", epochs=1, batch_size=2, C=4, layers=3, image_size=32, lr=0.1,
                      schedule="poly", weight_decay=3e-5, label_smoothing=0.1, auxiliary_weight=0.0, drop_path=0.0,
                      cutout=0, workers=0, log_every=1),
        "cpu": dict(dataset="imagenet", epochs=1, batch_size=32, C=8, layers=5, image_size=64, train_size=2000,
                    test_size=500, lr=0.1, schedule="poly", weight_decay=3e-5, label_smoothing=0.1,
                    auxiliary_weight=0.0, drop_path=0.0, cutout=0, workers=2),
        # C = 48 (DARTS's width for its cell) is replaced by the widest C under 600M multiply-adds, the paper's
        # budget (egs.conv.macs.fit_width). val_size: 10 training images per class held out (10,000 of 1.28M) for
        # the per-epoch evaluation, about 0.45 points standard error at 26% top-1; the ILSVRC-2012 val images
        # (the test set) are read once, at the end.
        "paper": dict(dataset="imagenet", epochs=250, batch_size=128, C=48, layers=14, image_size=224, lr=0.1,
                      schedule="poly", weight_decay=3e-5, label_smoothing=0.1, drop_path=0.0, cutout=0,
                      max_madds=600_000_000, val_size=10_000, amp=False),
    },
    # Recurrent family: tar_beta=0 (no TAR), lam=1 and the test split as eval-sized streams (test_batch_size) at
    # smoke and cpu, kept off at cpu so the validated cpu protocol and its recorded studies stay as measured (and
    # batch-1 testing would be slow on CPU); paper has DARTS's TAR (1e-3), batch-1 test and the paper's lam = 0.5.
    "rnn_search": {  # PTB recurrent cell search (docs/settings.md#rnn_search; studies/rules.py)
        "smoke": dict(epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800, val_tokens=200,
                      log_every=5, select_candidates=4, select_batches=2, lam=1.0, tar_beta=0.0),
        "cpu": dict(epochs=4, batch_size=32, eval_batch_size=10, emb=64, train_tokens=100_000, val_tokens=20_000,
                    log_every=25, select_candidates=16, select_batches=8, lam=1.0,
                    tar_beta=0.0),  # the paper's method at lambda = 1, not re-tuned
        "paper": dict(select_candidates=32, select_batches=32),  # DARTS's PTB search with the paper's M = 4
    },
    "lm_train_ptb": {  # training a recurrent genotype on PTB (docs/settings.md#lm_train_ptb; studies/protocol.py)
        "smoke": dict(epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800, val_tokens=200,
                      test_tokens=200, nonmono=1, log_every=5, tar_beta=0.0, test_batch_size=2),
        "cpu": dict(epochs=3, batch_size=32, emb=64, train_tokens=100_000, val_tokens=20_000, test_tokens=0,
                    nonmono=2, log_every=50, tar_beta=0.0,
                    test_batch_size=10),  # the validated cpu protocol: setting R1 of studies/protocol.py
        "paper": dict(),
    },
    "select_ptb": {  # best-of-N selection of recurrent cells: a short training, scored on PTB's validation split
        "smoke": dict(epochs=1, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800, val_tokens=200,
                      test_tokens=200, nonmono=1, log_every=5, tar_beta=0.0, test_batch_size=2),
        "cpu": dict(epochs=3, batch_size=32, emb=64, train_tokens=100_000, val_tokens=20_000, test_tokens=0,
                    nonmono=2, log_every=50, tar_beta=0.0, test_batch_size=10),  # unused at cpu
        "paper": dict(epochs=300),  # DARTS: 300 epochs for its PTB cells
    },
    "lm_train_wikitext2": {  # the PTB cell on WikiText-2 (docs/settings.md#lm_train_wikitext2)
        "smoke": dict(corpus="wikitext2", epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800,
                      val_tokens=200, test_tokens=200, nonmono=1, weight_decay=5e-7, dropouth=0.15, log_every=5,
                      tar_beta=0.0, test_batch_size=2),
        "cpu": dict(corpus="wikitext2", epochs=2, batch_size=32, emb=64, train_tokens=100_000, val_tokens=20_000,
                    test_tokens=20_000, nonmono=2, weight_decay=5e-7, dropouth=0.15, log_every=50, tar_beta=0.0,
                    test_batch_size=10),
        "paper": dict(corpus="wikitext2", emb=700, weight_decay=5e-7, dropouth=0.15),  # DARTS's WikiText-2 setting
    },
}
