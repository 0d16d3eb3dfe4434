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
from typing import Sequence

import torch

from egs.core.checks import FLOAT_MAX, check_int, check_M, check_temperature
from egs.core.errors import EGSError

MAX_EXACT_K = 16  # 2^16 codes; plenty for the paper's K = 8 (conv) and K = 5 (recurrent)


def _check_logits(logits: object, finite: bool = True) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise EGSError(f"logits must be a torch.Tensor of shape (..., K), got {type(logits).__name__}; "
                       "wrap it with torch.as_tensor(..., dtype=torch.float32).")
    if logits.dim() == 0 or logits.shape[-1] < 1:
        raise EGSError(f"logits of shape {tuple(logits.shape)} have no operation axis: pass a tensor of "
                       "shape (..., K) with K >= 1 candidate operations in the last dimension.")
    if str(logits.dtype).removeprefix("torch.") not in FLOAT_MAX:
        raise EGSError(f"logits have dtype {logits.dtype}; use a floating dtype: float32 (logits.float()), float16, "
                       "bfloat16 or float64 so that gradients can flow.")
    if finite and not bool(torch.isfinite(logits).all()):  # reading the flag is a host sync
        raise EGSError("logits contain NaN or infinite values; the sampler needs finite logits "
                       "(use log(p) with p > 0, or clamp the logits).")
    return logits


def sample_gumbel(shape: Sequence[int], *, like: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise ``-log(E)``, ``E ~ Exp(1)``, with the dtype/device of ``like``."""
    e = torch.empty(shape, dtype=like.dtype, device=like.device).exponential_(generator=generator)
    return -e.clamp_min_(torch.finfo(like.dtype).tiny).log()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def ensemble_gumbel_softmax(logits: torch.Tensor, M: int, tau: float = 1.0, hard: bool = True,
                            generator: torch.Generator | None = None, check_finite: bool = True) -> torch.Tensor:
    """Draw one ensemble Gumbel-softmax code per row of ``logits`` (Definition 1).

    Args:
        logits: (..., K) unnormalised log-probabilities, e.g. ``log p`` with ``p`` from Eq. 5.
            Every leading index is an independent edge, so all edges are sampled in one call.
        M: number of Gumbel-softmax draws combined by element-wise max (M >= 1).
        tau: softmax temperature of each draw (>= :func:`egs.core.checks.smallest_tau` of the logits' dtype).
        hard: if True the forward value is the exact binary code ``max_m onehot(argmax(logits + g_m))``
            and gradients are those of the soft ensemble (straight-through); if False the soft
            ensemble ``max_m softmax((logits + g_m) / tau)`` itself is returned.
        generator: optional ``torch.Generator`` (on the logits' device) for reproducible draws.
        check_finite: refuse NaN or infinite logits (the check reads a flag from the device: a host
            sync; the search loops, which call the sampler every step, check their logits once an epoch
            instead).

    Returns:
        A tensor shaped like ``logits`` (and of its dtype). With ``M = 1`` and ``hard=True`` this is
        the ordinary straight-through Gumbel-softmax; its code is distributed as categorical(softmax(logits)).

    Numerics: float16 and bfloat16 logits are sampled in float32 (the noise and the softmax), and each
    draw's perturbed logits are shifted by their maximum before the division by tau, so codes are exact
    and finite for every accepted input. Gradients are bounded: a draw with softmax ``s`` maps the upstream
    gradient ``g`` of the code to ``s_j (g_j - sum_k g_k s_k) / tau`` (restricted to the ops whose max it
    holds), at most ``max|g| / (2 tau)`` in magnitude (``s_j (1 - s_j) <= 1/4``), and at most ``min(M, K)``
    draws hold a max, so every logit's gradient is at most ``min(M, K) * max|g| / (2 tau)``. It reaches that
    size only at near-ties (perturbed logits within a few tau of each other; for tiny tau, exact ties),
    which is why ``tau >= smallest_tau(dtype)`` keeps it finite in ``dtype`` for ``min(M, K) * max|g| <= 256``
    (float16 needs tau >= 1.95e-3: at tau = 1e-5 the 0.25 / tau of a float32 gradient overflows float16).
    Otherwise tiny temperatures make gradients vanish: a draw's gradient is exactly zero once its
    second-largest perturbed logit lies more than about 104 * tau below the largest (exp underflows in
    float32); with Gumbel gaps of order 1 that is most draws for tau <= 1e-2 and all of them for tau <= 1e-4.
    """
    logits = _check_logits(logits, check_finite)
    M, tau = check_M(M), check_temperature(tau, "tau", str(logits.dtype).removeprefix("torch."))
    work = logits.to(_compute_dtype(logits.dtype))
    perturbed = work.unsqueeze(0) + sample_gumbel((M, *work.shape), like=work, generator=generator)
    shifted = perturbed - perturbed.detach().amax(dim=-1, keepdim=True)  # <= 0: no overflow in / tau
    soft = torch.softmax(shifted / tau, dim=-1).amax(dim=0)
    if not hard:
        return soft.to(logits.dtype)
    # argmax of softmax(z / tau) is argmax of z for any tau > 0: the hard draws are categorical(p).
    one_hot = torch.zeros_like(perturbed).scatter_(-1, perturbed.argmax(dim=-1, keepdim=True), 1.0)
    code = one_hot.amax(dim=0).detach()
    # code + (soft - soft) is exactly `code` in the forward pass, and d/dlogits is that of `soft`.
    return (code + (soft - soft.detach())).to(logits.dtype)


class _StraightThrough(torch.autograd.Function):
    """``out`` itself in the forward pass; in the backward pass ``out``'s gradient passes unchanged and the
    gate ``w`` gets ``sum(grad * out)``: exactly the gradients of ``out * w`` at ``w = 1``."""

    @staticmethod
    def forward(ctx, out: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(out)  # the op's own output: no second tensor is kept
        ctx.w_shape = w.shape
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        grad_w = (grad * out).sum().reshape(ctx.w_shape) if ctx.needs_input_grad[1] else None
        return grad, grad_w


def straight_through(out: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Route the gradient of a sampled op's output ``out`` to its hard code value ``w`` (exactly 1 in the
    forward pass of :func:`ensemble_gumbel_softmax`) without computing ``out * w``: the forward value is
    ``out`` itself and no extra activation is stored, while the backward pass gives ``w`` (hence alpha)
    exactly the gradient of ``out * w``. Only valid where ``w == 1``."""
    return _StraightThrough.apply(out, w)


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
        """The number of ops."""
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


MAX_EXACT_M = 1000  # binomial weights C(n, n') q^(n - n') overflow float64 beyond about n = 1030


def log_hit_weights(log_q: torch.Tensor, M: int) -> torch.Tensor:
    """``L[..., n', n] = log(C(n, n') q^(n - n'))`` for ``n > n'`` (else -inf), ``n, n' = 0..M`` (float64).

    The one recursion behind the exact code distribution (:func:`code_distribution`) and the exact
    derivation rules (:func:`egs.method.derivation.prefix_log_probabilities`): if ``a[n']`` is the probability
    that n' draws land exactly on (and cover) a set S, then ``sum_n' exp(L[n', n]) a[n']`` is that of
    n draws on S plus one more entry of probability q (choose which n - n' >= 1 draws hit it).
    """
    n = torch.arange(M + 1, dtype=torch.float64)
    m = n[None, :] - n[:, None]  # m[n', n] = n - n': the draws that hit the new entry
    log_binom = torch.lgamma(n + 1)[None, :] - torch.lgamma(n + 1)[:, None] - torch.lgamma(m.clamp_min(0) + 1)
    log_q = log_q.to(torch.float64)[..., None, None]
    weights = log_binom + torch.where(m > 0, m * log_q, torch.zeros((), dtype=torch.float64))
    return torch.where(m >= 1, weights, torch.tensor(-math.inf, dtype=torch.float64))


def code_distribution(p: object, M: int) -> CodeDistribution:
    """Exact probabilities of all 2^K hard EGS codes for ``p`` (..., K) and M draws (M <= 1000).

    ``a_S[n]``, the probability that n draws land exactly on the set S and hit each of its ops, is built
    one op at a time with :func:`log_hit_weights` (all terms non-negative: no cancellation, no M!, no
    overflow up to :data:`MAX_EXACT_M`), vectorised over all codes and edges; P(code = S) = a_S[M].
    Equivalently ``M! [x^M] prod_{k in S} (e^{p_k x} - 1)``, the exponential generating function of
    surjections.
    """
    M = check_M(M)
    if M > MAX_EXACT_M:
        raise EGSError(f"M={M} is beyond {MAX_EXACT_M}, the largest M the exact code distribution computes "
                       "(binomial weights overflow); use egs.method.derivation.prefix_log_probabilities (log space, any M) "
                       "or Monte Carlo.")
    p = _as_prob(p)
    K = p.shape[-1]
    polys = torch.zeros(*p.shape[:-1], 1, M + 1, dtype=torch.float64)
    polys[..., 0, 0] = 1.0  # the empty set: zero draws
    for k in range(K):
        weights = log_hit_weights(p[..., k].log(), M).exp()  # (..., M+1, M+1); q = 0 gives weight 0
        polys = torch.cat([polys, polys @ weights], dim=-2)
    return CodeDistribution(p=p, M=M, codes=all_codes(K), probs=polys[..., M])


def inclusion_probability(p: object, M: int) -> torch.Tensor:
    """Closed form of P(code_k = 1) = 1 - (1 - p_k)^M: op k is hit by at least one of M draws.

    Args: ``p``, probabilities (..., K) over the K ops (Eq. 5); ``M``, the ensemble size (draws per code)."""
    M, p = check_M(M), _as_prob(p)
    return 1.0 - (1.0 - p) ** M


def num_possible_codes(K: int, M: int) -> int:
    """Number of distinct codes with non-zero probability when every p_k > 0: sum_{j=1}^{min(K,M)} C(K, j)."""
    M = check_M(M)
    return sum(math.comb(K, j) for j in range(1, min(K, M) + 1))


def empirical_code_distribution(p: object, M: int, n_samples: int, tau: float = 1.0,
                                generator: torch.Generator | None = None,
                                chunk: int = 65536) -> torch.Tensor:
    """Monte-Carlo frequencies (2^K,) of the hard codes drawn by :func:`ensemble_gumbel_softmax` from the
    probability vector ``p`` with M draws, over ``n_samples`` codes at temperature ``tau`` (which does not
    change hard codes), drawn ``chunk`` at a time with ``generator``."""
    p = _as_prob(p)
    if p.dim() != 1:
        raise EGSError(f"p must be a single probability vector (K,), got shape {tuple(p.shape)}.")
    n_samples = check_int(n_samples, "n_samples", 1, "the number of Monte-Carlo codes to draw")
    logits = p.clamp_min(1e-300).log()  # p_k = 0 -> a very negative, finite logit: never drawn
    counts = torch.zeros(2 ** p.shape[0], dtype=torch.float64)
    done = 0
    while done < n_samples:
        b = min(chunk, n_samples - done)
        codes = ensemble_gumbel_softmax(logits.expand(b, -1), M, tau=tau, hard=True, generator=generator)
        counts += torch.bincount(code_index(codes), minlength=counts.numel()).double()
        done += b
    return counts / n_samples
