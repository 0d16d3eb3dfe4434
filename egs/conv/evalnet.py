"""The evaluation network of a genotype for a dataset: CIFAR-10 or ImageNet (mobile setting).

Both follow DARTS (quark0/darts cnn/model.py) layer for layer (:mod:`egs.conv.network`). Their forward pass
returns the logits; ``net(x, with_aux=True)`` returns ``(logits, aux_logits)``, where
``aux_logits`` is None unless the network has an auxiliary head and is in training mode. The
training loop sets ``net.drop_prob`` (DARTS: ``0.2 * epoch / epochs``); it acts only in training.
"""
from __future__ import annotations

import torch

from egs.conv.network import Network, NetworkImageNet, count_parameters
from egs.core.errors import EGSError
from egs.arch.genotype import Genotype

EVAL_DATASETS = ("cifar10", "imagenet")
PAPER_CIFAR = {"C": 36, "layers": 20}  # the paper's CIFAR-10 evaluation network (Sec. 4.1.2, as DARTS)


def eval_network(genotype: Genotype, dataset: str = "cifar10", C: int = PAPER_CIFAR["C"], layers: int = PAPER_CIFAR["layers"],
                 num_classes: int | None = None, auxiliary: bool = False) -> Network | NetworkImageNet:
    """Build the evaluation network of ``genotype`` for ``dataset``.

    Paper sizes: CIFAR-10 C = 36, 20 cells, 10 classes; ImageNet C = 48, 14 cells, 1000 classes.
    ``C`` and ``layers`` size it, ``num_classes=None`` takes the dataset's class count, ``auxiliary`` adds
    DARTS's auxiliary head.
    """
    if dataset == "cifar10":
        return Network(C, 10 if num_classes is None else num_classes, layers, genotype, auxiliary=auxiliary)
    if dataset == "imagenet":
        return NetworkImageNet(C, 1000 if num_classes is None else num_classes, layers, genotype,
                               auxiliary=auxiliary)
    raise EGSError(f"dataset={dataset!r} has no evaluation network; use one of {', '.join(EVAL_DATASETS)}.")


def paper_params(genotype: Genotype) -> int:
    """Parameters of the paper-size CIFAR-10 evaluation network of a conv ``genotype`` (20 cells, C = 36, no
    auxiliary head), built on ``meta`` (no memory)."""
    with torch.device("meta"):
        return count_parameters(Network(PAPER_CIFAR["C"], 10, PAPER_CIFAR["layers"], genotype))
