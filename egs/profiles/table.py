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
_SEARCH_PAPER = dict(select_candidates=32, select_batches=32)
_TRAIN_SMOKE = dict(epochs=2, batch_size=8, C=4, layers=3, image_size=8, train_size=48, test_size=32,
                    auxiliary_weight=0.0, cutout=2, log_every=2)
_TRAIN_CPU = dict(epochs=3, batch_size=64, C=8, layers=5, image_size=16, train_size=5000, val_size=2000, lr=0.08,
                  auxiliary_weight=0.0, drop_path=0.0, cutout=0, log_every=25)

TABLE: dict[str, dict[str, dict[str, Any]]] = {
    "sampling": {  # notebook 01: Monte-Carlo draws beside the exact distributions
        "smoke": dict(mc_samples=4_000, count_samples=2_000),
        "cpu": dict(mc_samples=200_000, count_samples=100_000),
        "paper": dict(mc_samples=1_000_000, count_samples=1_000_000),
    },
    "protocol": {  # seeds per trained cell, random cells, search seeds (docs/settings.md#protocol)
        "smoke": dict(seeds=(0,), random_cells=1, ablation_Ms=(1, 4, 7), single_draw_epochs=3),
        "cpu": dict(seeds=(0, 1, 2), random_cells=3, random_rnn_cells=2, search_seeds=(0, 1), ablation_Ms=(1, 4, 7),
                    single_draw_epochs=12),
        "paper": dict(),
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
        "paper": dict(),  # DARTS's CIFAR-10 evaluation recipe (Sec. 4.1.2)
    },
    "ablation_train": {  # Table 5's trainings: the validated protocol (docs/settings.md#ablation_search)
        "smoke": {**_TRAIN_SMOKE, "epochs": 1},
        "cpu": _TRAIN_CPU,
        "paper": dict(),
    },
    "train_imagenet": {  # the ImageNet mobile setting (Sec. 4.1.3; docs/settings.md#train_imagenet)
        "smoke": dict(dataset="imagenet", epochs=1, batch_size=2, C=4, layers=3, image_size=32, lr=0.1,
                      schedule="poly", weight_decay=3e-5, label_smoothing=0.1, auxiliary_weight=0.0, drop_path=0.0,
                      cutout=0, workers=0, log_every=1),
        "cpu": dict(dataset="imagenet", epochs=1, batch_size=32, C=8, layers=5, image_size=64, train_size=2000,
                    test_size=500, lr=0.1, schedule="poly", weight_decay=3e-5, label_smoothing=0.1,
                    auxiliary_weight=0.0, drop_path=0.0, cutout=0, workers=2),
        "paper": dict(dataset="imagenet", epochs=250, batch_size=128, C=48, layers=14, image_size=224, lr=0.1,
                      schedule="poly", weight_decay=3e-5, label_smoothing=0.1, drop_path=0.0, cutout=0),
    },
    "rnn_search": {  # PTB recurrent cell search (docs/settings.md#rnn_search; studies/rules.py)
        "smoke": dict(epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800, val_tokens=200,
                      log_every=5, select_candidates=4, select_batches=2),
        "cpu": dict(epochs=4, batch_size=32, eval_batch_size=10, emb=64, train_tokens=100_000, val_tokens=20_000,
                    log_every=25, select_candidates=16, select_batches=8),  # the paper's method, not re-tuned
        "paper": dict(select_candidates=32, select_batches=32),  # DARTS's PTB search with the paper's M = 4
    },
    "lm_train_ptb": {  # training a recurrent genotype on PTB (docs/settings.md#lm_train_ptb; studies/protocol.py)
        "smoke": dict(epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800, val_tokens=200,
                      test_tokens=200, nonmono=1, log_every=5),
        "cpu": dict(epochs=3, batch_size=32, emb=64, train_tokens=100_000, val_tokens=20_000, test_tokens=0,
                    nonmono=2, log_every=50),  # the validated cpu protocol: setting R1 of studies/protocol.py
        "paper": dict(),
    },
    "lm_train_wikitext2": {  # the PTB cell on WikiText-2 (docs/settings.md#lm_train_wikitext2)
        "smoke": dict(corpus="wikitext2", epochs=2, batch_size=4, eval_batch_size=2, bptt=8, emb=16, train_tokens=800,
                      val_tokens=200, test_tokens=200, nonmono=1, weight_decay=5e-7, dropouth=0.15, log_every=5),
        "cpu": dict(corpus="wikitext2", epochs=2, batch_size=32, emb=64, train_tokens=100_000, val_tokens=20_000,
                    test_tokens=20_000, nonmono=2, weight_decay=5e-7, dropouth=0.15, log_every=50),
        "paper": dict(corpus="wikitext2", emb=700, weight_decay=5e-7, dropouth=0.15),  # DARTS's WikiText-2 setting
    },
}
