"""Ensemble Gumbel-Softmax (Chang et al., 2019, Sec. 3.3, Definition 1) and its exact distribution.

An edge with K candidate operations carries a probability vector ``p`` (Eq. 5). Ensemble
Gumbel-Softmax (EGS) draws M independent Gumbel-softmax samples from ``p`` and combines them by an
element-wise max, so the resulting binary code may switch on several operations at once.

* :func:`ensemble_gumbel_softmax` is the differentiable sampler used in search, batched over any
  number of edges. In hard mode the forward value is an exact {0, 1} code (the ops hit by M
  categorical draws) and the backward pass is the gradient of the soft ensemble
  ``max_m softmax((logits + g_m) / tau)`` (straight-through). With ``M = 1`` it is exactly the
  ordinary hard Gumbel-softmax.
* :func:`code_distribution` computes, without sampling, the probability of every one of the 2^K
  codes for given ``p`` and M. Hard codes do not depend on ``tau``: the forward code is the set of
  distinct outcomes of M i.i.d. categorical(p) draws, so

      P(code = S) = M! [x^M] prod_{k in S} (exp(p_k x) - 1),

  the number of ways M labelled draws cover exactly S (an exponential generating function; all
  terms are non-negative, so there is no inclusion-exclusion cancellation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral
from typing import Sequence

import torch

from egs.checks import check_M, check_tau
from egs.errors import EGSError

MAX_EXACT_K = 16  # 2^16 codes; plenty for the paper's K = 8 (conv) and K = 5 (recurrent)


def _check_logits(logits: object) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise EGSError(f"logits must be a torch.Tensor of shape (..., K), got {type(logits).__name__}; "
                       "wrap it with torch.as_tensor(..., dtype=torch.float32).")
    if logits.dim() == 0 or logits.shape[-1] < 1:
        raise EGSError(f"logits of shape {tuple(logits.shape)} have no operation axis: pass a tensor of "
                       "shape (..., K) with K >= 1 candidate operations in the last dimension.")
    if not logits.is_floating_point():
        raise EGSError(f"logits have dtype {logits.dtype}; use a floating dtype "
                       "(logits.float()) so that gradients can flow.")
    if not bool(torch.isfinite(logits).all()):
        raise EGSError("logits contain NaN or infinite values; the sampler needs finite logits "
                       "(use log(p) with p > 0, or clamp the logits).")
    return logits


def sample_gumbel(shape: Sequence[int], *, like: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise ``-log(E)``, ``E ~ Exp(1)``, with the dtype/device of ``like``."""
    e = torch.empty(shape, dtype=like.dtype, device=like.device).exponential_(generator=generator)
    return -e.clamp_min_(torch.finfo(like.dtype).tiny).log()


def ensemble_gumbel_softmax(logits: torch.Tensor, M: int, tau: float = 1.0, hard: bool = True,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one ensemble Gumbel-softmax code per row of ``logits`` (Definition 1).

    Args:
        logits: (..., K) unnormalised log-probabilities, e.g. ``log p`` with ``p`` from Eq. 5.
            Every leading index is an independent edge, so all edges are sampled in one call.
        M: number of Gumbel-softmax draws combined by element-wise max (M >= 1).
        tau: softmax temperature of each draw (> 0).
        hard: if True the forward value is the exact binary code ``max_m onehot(argmax(logits + g_m))``
            and gradients are those of the soft ensemble (straight-through); if False the soft
            ensemble ``max_m softmax((logits + g_m) / tau)`` itself is returned.
        generator: optional ``torch.Generator`` (on the logits' device) for reproducible draws.

    Returns:
        A tensor shaped like ``logits``. With ``M = 1`` and ``hard=True`` this is the ordinary
        straight-through Gumbel-softmax; its code is distributed as categorical(softmax(logits)).
    """
    M, tau, logits = check_M(M), check_tau(tau), _check_logits(logits)
    perturbed = logits.unsqueeze(0) + sample_gumbel((M, *logits.shape), like=logits, generator=generator)
    soft = torch.softmax(perturbed / tau, dim=-1).amax(dim=0)
    if not hard:
        return soft
    # argmax of softmax(z / tau) is argmax of z for any tau > 0: the hard draws are categorical(p).
    one_hot = torch.zeros_like(perturbed).scatter_(-1, perturbed.argmax(dim=-1, keepdim=True), 1.0)
    code = one_hot.amax(dim=0).detach()
    # code + (soft - soft) is exactly `code` in the forward pass, and d/dlogits is that of `soft`.
    return code + (soft - soft.detach())


# ----------------------------------------------------------------------------- exact distribution

def all_codes(K: int) -> torch.Tensor:
    """All 2^K binary codes as a (2^K, K) bool tensor; row ``i`` has bit k set iff ``i >> k & 1``."""
    idx = torch.arange(2 ** K)
    return (idx.unsqueeze(1) >> torch.arange(K)) & 1 == 1


def code_index(code: torch.Tensor) -> torch.Tensor:
    """The row of :func:`all_codes` that equals each binary code in ``code`` (..., K) -> (...)."""
    bits = (code > 0.5).long()
    return (bits << torch.arange(code.shape[-1], device=code.device)).sum(-1)


def _as_prob(p: object) -> torch.Tensor:
    try:
        t = torch.as_tensor(p, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise EGSError(f"p={p!r} is not a numeric probability vector: pass a list or tensor of "
                       "non-negative numbers summing to 1.") from err
    t = t.detach().cpu()
    if t.dim() == 0 or t.shape[-1] < 1:
        raise EGSError(f"p={p!r} has no operation axis: pass shape (..., K) with K >= 1.")
    K = t.shape[-1]
    if K > MAX_EXACT_K:
        raise EGSError(f"K={K} operations give 2^{K} codes, too many to enumerate exactly; the exact "
                       f"distribution supports K <= {MAX_EXACT_K}. Use Monte Carlo for larger K.")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise EGSError(f"p={p!r} must contain finite, non-negative probabilities.")
    if not bool(((t.sum(-1) - 1).abs() <= 1e-6).all()):
        raise EGSError(f"p={p!r} sums to {t.sum(-1).tolist()}, not 1; normalise it (p / p.sum()) "
                       "or pass softmax(logits).")
    return t / t.sum(-1, keepdim=True)


@dataclass(frozen=True)
class CodeDistribution:
    """Exact distribution of hard EGS codes for probability vector(s) ``p`` (..., K) and ensemble size M.

    ``probs[..., i]`` is the probability of code ``codes[i]``; every quantity is exact (float64).
    """

    p: torch.Tensor
    M: int
    codes: torch.Tensor  # (2^K, K) bool
    probs: torch.Tensor  # (..., 2^K) float64

    @property
    def K(self) -> int:
        return self.codes.shape[1]

    def marginals(self) -> torch.Tensor:
        """P(code_k = 1) for each op, (..., K); equals ``1 - (1 - p_k)^M`` (see :func:`inclusion_probability`)."""
        return self.probs @ self.codes.to(torch.float64)

    def num_active(self) -> torch.Tensor:
        """Distribution of the number of active ops |code|, (..., K + 1)."""
        sizes = self.codes.sum(1)
        out = torch.zeros(*self.probs.shape[:-1], self.K + 1, dtype=torch.float64)
        return out.index_add_(-1, sizes, self.probs)

    def expected_active(self) -> torch.Tensor:
        """Expected number of active ops per code, (...)."""
        return self.marginals().sum(-1)

    def support(self, atol: float = 0.0) -> torch.Tensor:
        """Boolean mask (..., 2^K) of the codes with probability > ``atol``."""
        return self.probs > atol

    def most_probable(self) -> torch.Tensor:
        """The most probable code of each distribution, (..., K) bool (ties: the lowest code index)."""
        return self.codes[self.probs.argmax(-1)]


def code_distribution(p: object, M: int) -> CodeDistribution:
    """Exact probabilities of all 2^K hard EGS codes for ``p`` (..., K) and M draws.

    Uses the exponential generating function of surjections: the M draws land exactly on the set S
    with probability ``M! [x^M] prod_{k in S} (e^{p_k x} - 1)``. Codes are built one op at a time,
    each step a truncated polynomial product, vectorised over all codes and edges.
    """
    M = check_M(M)
    p = _as_prob(p)
    K = p.shape[-1]
    lead = p.shape[:-1]
    n = torch.arange(M + 1, dtype=torch.float64)
    log_fact = torch.lgamma(n + 1)
    # polys[..., S, d] = [x^d] prod_{k in S} (e^{p_k x} - 1), truncated at degree M.
    polys = torch.zeros(*lead, 1, M + 1, dtype=torch.float64)
    polys[..., 0, 0] = 1.0
    diff = n.view(1, -1) - n.view(-1, 1)  # diff[a, b] = b - a
    for k in range(K):
        pk = p[..., k].unsqueeze(-1)  # (..., 1)
        coeff = torch.where(n > 0, pk ** n / log_fact.exp(), torch.zeros(()))  # (..., M + 1)
        toeplitz = coeff[..., diff.clamp_min(0).long()] * (diff > 0)  # (..., M+1, M+1)
        polys = torch.cat([polys, polys @ toeplitz], dim=-2)
    probs = polys[..., M] * math.factorial(M)
    return CodeDistribution(p=p, M=M, codes=all_codes(K), probs=probs)


def most_probable_code(p: torch.Tensor, M: int) -> torch.Tensor:
    """The most probable hard code of each row of ``p`` (..., K), as floats on ``p``'s device (exact)."""
    return code_distribution(p.detach().double().cpu(), M).most_probable().to(p.device, torch.float32)


@torch.no_grad()
def derivation_codes(supernet, method: str = "most_probable", generator: torch.Generator | None = None):
    """The codes a supernet's final architecture is read from: each edge's most probable code (exact,
    ``supernet.most_probable_codes()``) or a sampled one (``supernet.sample(generator)``)."""
    if method == "most_probable":
        return supernet.most_probable_codes()
    if method == "sample":
        return supernet.sample(generator)
    raise EGSError(f"unknown derivation method {method!r}; use 'most_probable' or 'sample'.")


def inclusion_probability(p: object, M: int) -> torch.Tensor:
    """Closed form of P(code_k = 1) = 1 - (1 - p_k)^M: op k is hit by at least one of M draws."""
    M, p = check_M(M), _as_prob(p)
    return 1.0 - (1.0 - p) ** M


def num_possible_codes(K: int, M: int) -> int:
    """Number of distinct codes with non-zero probability when every p_k > 0: sum_{j=1}^{min(K,M)} C(K, j)."""
    M = check_M(M)
    return sum(math.comb(K, j) for j in range(1, min(K, M) + 1))


def empirical_code_distribution(p: object, M: int, n_samples: int, tau: float = 1.0,
                                generator: torch.Generator | None = None,
                                chunk: int = 65536) -> torch.Tensor:
    """Monte-Carlo frequencies (2^K,) of the hard codes drawn by :func:`ensemble_gumbel_softmax`."""
    p = _as_prob(p)
    if p.dim() != 1:
        raise EGSError(f"p must be a single probability vector (K,), got shape {tuple(p.shape)}.")
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 1:
        raise EGSError(f"n_samples={n_samples!r} must be a positive integer.")
    logits = p.clamp_min(1e-300).log()  # p_k = 0 -> a very negative, finite logit: never drawn
    counts = torch.zeros(2 ** p.shape[0], dtype=torch.float64)
    done = 0
    while done < n_samples:
        b = min(chunk, n_samples - done)
        codes = ensemble_gumbel_softmax(logits.expand(b, -1), M, tau=tau, hard=True, generator=generator)
        counts += torch.bincount(code_index(codes), minlength=counts.numel()).double()
        done += b
    return counts / n_samples
