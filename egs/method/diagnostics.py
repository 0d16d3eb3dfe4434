"""Does a search learn? Measurements of what the architecture logits did and why (issue: the cpu search).

* :func:`gradient_snr`: the signal-to-noise ratio of alpha's gradient per step under the
  straight-through estimator, at a search's current state: many gradients, each from a fresh
  sampled architecture and batch, none applied. Per element ``|mean| / std``, and for the whole
  vector ``||mean|| / sqrt(E ||g - mean||^2)`` (below 1 one step's gradient is mostly noise).
* :func:`normalised_entropy`: the mean per-edge entropy of the effectiveness credit h, in units of
  log K (1 at alpha = 0 with softmax; the issue's target is a fall of at least 0.1 by the end).
* :func:`alpha_zero_genotype`: the cell a rule derives when alpha has not moved at all (the credit
  alone decides), the baseline a search must beat.
* :func:`agreement` and :func:`random_agreement`: how many (cell, edge, op) choices two cells share
  (Jaccard), and the same for two cells drawn at alpha = 0, for telling whether two search seeds
  found the same thing or just two random things.
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Iterable, Iterator

import torch

from egs.arch.genotype import Genotype
from egs.arch.baselines import random_genotype


def _choices(genotype: Genotype) -> set[tuple[str, int, int, str]]:
    return {(kind, i, j, op) for kind, cell in genotype.cells().items() for (i, j), ops in cell.edges.items()
            for op in ops}


def agreement(a: Genotype, b: Genotype) -> float:
    """Jaccard overlap of two cells' (cell type, edge, op) choices: 1 identical, 0 disjoint."""
    x, y = _choices(a), _choices(b)
    return len(x & y) / len(x | y) if x | y else 1.0


def random_agreement(space: str, rule: str, M: int, pairs: int = 200, seed: int = 0) -> float:
    """Mean :func:`agreement` of two independent random cells of ``rule`` drawn at uniform p (alpha = 0, no
    efficiency credit), over ``pairs`` pairs."""
    rng = random.Random(seed)
    style = "edge" if rule == "select" else rule
    total = 0.0
    for _ in range(pairs):
        a = random_genotype(space, rng.randrange(2**31), style=style, M=M)
        b = random_genotype(space, rng.randrange(2**31), style=style, M=M)
        total += agreement(a, b)
    return total / pairs


@torch.no_grad()
def normalised_entropy(model) -> dict[str, float]:
    """Mean per-edge entropy of h over log K, per cell type."""
    log_k = math.log(model.space.K)
    return {kind: sum(v) / len(v) / log_k for kind, v in model.edge_entropy("h").items()}


@torch.no_grad()
def alpha_zero_genotype(model, rule: str) -> Genotype:
    """The genotype ``rule`` derives from ``model`` with alpha reset to its starting value (0, or 1 for the
    relu credit): what the efficiency credit and the rule decide alone. ``model`` is left unchanged."""
    saved = [a.detach().clone() for a in model.arch_parameters()]
    for a in model.arch_parameters():
        a.fill_(1.0 if model.effectiveness == "relu" else 0.0)
    try:
        return model.derive("node" if rule == "select" else rule)
    finally:
        for a, s in zip(model.arch_parameters(), saved):
            a.copy_(s)


def gradient_snr(search, samples: int = 32, seed: int = 0) -> dict[str, Any]:
    """alpha's gradient at ``search``'s current state (an :class:`egs.engine.search.ArchitectureSearch`),
    ``samples`` times, each from its own sampled codes and training batch (the loss the joint update
    uses; the search-val batch for bilevel), nothing updated. Returns the median per-element SNR, the
    vector SNR and the mean gradient norm."""
    model, grads = search.model, []
    generator = torch.Generator(search.device).manual_seed(seed)
    batches = _cycle(lambda: search.batches(search.epoch, 0)) if search.cfg.mode == "joint" else None
    for _ in range(samples):
        codes = model.sample(generator)
        batch = next(batches) if batches is not None else search.arch_batch()
        tensors = [t for t in batch if isinstance(t, torch.Tensor)][:2]
        if hasattr(model, "init_hidden"):  # a language model: from a zero hidden state
            tensors.append(model.init_hidden(tensors[0].shape[1]))
        model.zero_grad(set_to_none=True)
        loss, _ = search.loss(codes, *tensors)
        loss.backward()
        # a cell whose every sampled op is "none" gives its logits no gradient at all (None): zeros
        grads.append(torch.cat([(a.grad if a.grad is not None else torch.zeros_like(a)).detach().reshape(-1)
                                for a in model.arch_parameters()]).double().cpu())
        model.zero_grad(set_to_none=True)
    g = torch.stack(grads)
    mean, std = g.mean(0), g.std(0).clamp_min(1e-30)
    noise = (g - mean).pow(2).sum(1).mean().sqrt()
    return {"samples": samples, "snr_median": float((mean.abs() / std).median()),
            "snr_vector": float(mean.norm() / noise.clamp_min(1e-30)), "grad_norm": float(g.norm(dim=1).mean())}


def _cycle(make: Callable[[], Iterable]) -> Iterator:
    while True:
        yield from make()
