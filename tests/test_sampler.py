"""Ensemble Gumbel-softmax: exact distribution, Monte Carlo, gradients, shapes, errors."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from egs.core.checks import FLOAT_MAX, GRADIENT_HEADROOM
from egs.core.errors import EGSError
from egs.method.sampler import (all_codes, code_distribution, code_index, empirical_code_distribution,
                                ensemble_gumbel_softmax, inclusion_probability, num_possible_codes)
from egs.core.checks import smallest_tau


def brute_force_codes(p: list[float], M: int) -> torch.Tensor:
    """P(code) by enumerating all K^M sequences of draws (independent of the EGF method)."""
    K = len(p)
    probs = torch.zeros(2 ** K, dtype=torch.float64)
    for seq in itertools.product(range(K), repeat=M):
        probs[sum(1 << k for k in set(seq))] += math.prod(p[k] for k in seq)
    return probs


@pytest.mark.parametrize("p,M", [([0.5, 0.5], 2), ([0.2, 0.3, 0.5], 4), ([0.1, 0.0, 0.6, 0.3], 3),
                                 ([0.25] * 4, 5), ([1.0], 3), ([0.7, 0.2, 0.1], 1)])
def test_exact_distribution_equals_enumeration_of_draws(p, M):
    dist = code_distribution(p, M)
    assert torch.allclose(dist.probs, brute_force_codes(p, M), atol=1e-14, rtol=0)
    assert dist.probs.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_exact_distribution_batched_and_large_K_sums_to_one():
    p = torch.softmax(torch.randn(14, 10, generator=torch.Generator().manual_seed(0)), -1)
    dist = code_distribution(p, 9)
    assert dist.probs.shape == (14, 2 ** 10)
    assert torch.allclose(dist.probs.sum(-1), torch.ones(14, dtype=torch.float64), atol=1e-12)
    assert (dist.probs >= 0).all()
    # Batched rows equal the unbatched computation.
    assert torch.allclose(dist.probs[3], code_distribution(p[3], 9).probs, atol=1e-15)


def test_m1_is_the_categorical_distribution():
    p = [0.1, 0.2, 0.3, 0.4]
    dist = code_distribution(p, 1)
    onehot = dist.codes.sum(1) == 1
    assert dist.probs[~onehot].abs().max() == 0
    for k in range(4):
        assert dist.probs[1 << k].item() == pytest.approx(p[k], abs=1e-15)


def test_marginals_and_counts():
    p = [0.05, 0.15, 0.3, 0.5]
    for M in range(1, 7):
        dist = code_distribution(p, M)
        assert torch.allclose(dist.marginals(), inclusion_probability(p, M), atol=1e-13)
        assert dist.num_active().sum().item() == pytest.approx(1.0, abs=1e-12)
        assert dist.num_active()[min(M, 4) + 1:].sum().item() == 0  # never more than M ops
        assert int(dist.support().sum()) == num_possible_codes(4, M)
    assert num_possible_codes(8, 7) == 2 ** 8 - 2 and num_possible_codes(8, 9) == 255


def test_most_probable_code():
    assert code_distribution([0.5, 0.5], 2).most_probable().tolist() == [True, True]
    assert code_distribution([0.9, 0.05, 0.05], 2).most_probable().tolist() == [True, False, False]
    batch = code_distribution([[0.5, 0.5], [0.95, 0.05]], 2).most_probable()
    assert batch.tolist() == [[True, True], [True, False]]


def test_monte_carlo_matches_exact_within_statistical_bound():
    p, M, n = [0.1, 0.2, 0.3, 0.4], 3, 200_000
    exact = code_distribution(p, M).probs
    mc = empirical_code_distribution(p, M, n, generator=torch.Generator().manual_seed(1))
    stderr = (exact * (1 - exact) / n).sqrt()
    assert ((mc - exact).abs() <= 5 * stderr + 1e-12).all()
    assert (mc[exact == 0] == 0).all()  # never a code outside the support
    # Chi-square over the support, 14 degrees of freedom: 99.9% quantile is 36.1.
    support = exact > 0
    chi2 = (n * (mc[support] - exact[support]) ** 2 / exact[support]).sum().item()
    assert chi2 < 36.1


def test_hard_codes_are_binary_with_one_to_M_ones():
    logits = torch.randn(500, 8)
    for M in (1, 4, 7):
        code = ensemble_gumbel_softmax(logits, M, generator=torch.Generator().manual_seed(M))
        assert set(code.unique().tolist()) <= {0.0, 1.0}
        ones = code.sum(-1)
        assert ones.min() >= 1 and ones.max() <= M
    assert (ensemble_gumbel_softmax(logits, 1).sum(-1) == 1).all()


def test_m1_equals_torch_gumbel_softmax_with_the_same_noise():
    logits = torch.randn(6, 5, requires_grad=True)
    ref_logits = logits.detach().clone().requires_grad_()
    torch.manual_seed(123)
    ours = ensemble_gumbel_softmax(logits, 1, tau=0.7)
    torch.manual_seed(123)
    ref = F.gumbel_softmax(ref_logits, tau=0.7, hard=True)
    assert torch.equal(ours, (ref > 0.5).float())
    weights = torch.randn(6, 5)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-6)


def test_gradients_reach_the_logits_in_hard_mode():
    logits = torch.zeros(14, 8, requires_grad=True)
    code = ensemble_gumbel_softmax(logits, 7, tau=1.0, generator=torch.Generator().manual_seed(0))
    (code * torch.arange(8.0)).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    # The straight-through forward value is exactly binary, not 1 - 1e-8.
    assert torch.equal(code, code.round())


def test_soft_mode_is_the_max_of_soft_samples():
    logits = torch.randn(3, 8)
    soft = ensemble_gumbel_softmax(logits, 4, tau=2.0, hard=False,
                                   generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    from egs.method.sampler import sample_gumbel
    noise = sample_gumbel((4, 3, 8), like=logits, generator=g)
    expected = torch.softmax((logits + noise) / 2.0, -1).amax(0)
    assert torch.allclose(soft, expected)
    assert (soft.sum(-1) >= 1 - 1e-6).all() and (soft <= 1).all()


def test_shapes_batching_dtype_and_independence():
    logits = torch.zeros(2, 14, 8, dtype=torch.float64)
    code = ensemble_gumbel_softmax(logits, 4, generator=torch.Generator().manual_seed(0))
    assert code.shape == (2, 14, 8) and code.dtype == torch.float64
    assert len({tuple(r.tolist()) for r in code.reshape(-1, 8)}) > 5  # edges sampled independently
    assert ensemble_gumbel_softmax(torch.zeros(8, dtype=torch.bfloat16), 2).dtype == torch.bfloat16


def test_same_seed_same_codes_different_seed_different_codes():
    logits = torch.randn(14, 8)
    a = ensemble_gumbel_softmax(logits, 7, generator=torch.Generator().manual_seed(5))
    b = ensemble_gumbel_softmax(logits, 7, generator=torch.Generator().manual_seed(5))
    c = ensemble_gumbel_softmax(logits, 7, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_tensors():
    logits = torch.randn(14, 8, device="cuda", requires_grad=True)
    code = ensemble_gumbel_softmax(logits, 4, generator=torch.Generator(device="cuda").manual_seed(0))
    assert code.device.type == "cuda"
    code.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_code_index_round_trip():
    codes = all_codes(5)
    assert torch.equal(code_index(codes.float()), torch.arange(32))


@pytest.mark.parametrize("kwargs,match", [
    ({"M": 0}, "M=0"), ({"M": 2.5}, "M=2.5"), ({"M": True}, "M=True"), ({"M": -3}, "M=-3"),
    ({"M": 2, "tau": 0.0}, "tau=0.0"), ({"M": 2, "tau": -1}, "tau=-1"),
    ({"M": 2, "tau": float("nan")}, "tau=nan"), ({"M": 2, "tau": "1"}, "tau='1'"),
])
def test_bad_sampler_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(EGSError, match=match):
        ensemble_gumbel_softmax(torch.zeros(8), **kwargs)


@pytest.mark.parametrize("logits,match", [
    (torch.tensor([0.0, float("nan")]), "NaN or infinite"),
    (torch.tensor([0.0, float("inf")]), "NaN or infinite"),
    (torch.tensor([1, 2]), "floating dtype"),
    (torch.tensor(1.0), "no operation axis"),
    ([0.0, 1.0], "torch.Tensor"),
])
def test_bad_logits_raise_clear_errors(logits, match):
    with pytest.raises(EGSError, match=match):
        ensemble_gumbel_softmax(logits, 2)


@pytest.mark.parametrize("p,M,match", [
    ([0.5, 0.6], 2, "sums to"), ([-0.1, 1.1], 2, "non-negative"), ([0.5, 0.5], 0, "M=0"),
    ([1.0 / 17] * 17, 2, "K=17"), ("abc", 2, "not a numeric"), ([float("nan"), 1.0], 2, "finite"),
])
def test_bad_distribution_arguments_raise_clear_errors(p, M, match):
    with pytest.raises(EGSError, match=match):
        code_distribution(p, M)


# ----------------------------------------------------------------------------- numerical safety (issue 14)

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_sampler_never_returns_nan_or_inf(dtype):
    big = 6e4 if dtype == torch.float16 else 1e30
    low = smallest_tau(dtype)
    for scale in (0.0, 1.0, big):
        uniform = torch.rand(14, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1  # within +-scale
        logits = (uniform * scale).to(dtype).requires_grad_()
        for tau in [t for t in (10.0, 1.0, 1e-2, 1e-3, 1e-30) if t >= low] + [low]:
            code = ensemble_gumbel_softmax(logits, 7, tau, generator=torch.Generator().manual_seed(1))
            (code * torch.arange(8, dtype=dtype)).sum().backward()
            assert code.dtype == dtype and torch.isfinite(code).all() and torch.isfinite(logits.grad).all()
            assert set(code.detach().float().unique().tolist()) <= {0.0, 1.0}
            logits.grad = None
    with pytest.raises(EGSError, match="smallest temperature"):
        ensemble_gumbel_softmax(torch.zeros(3, dtype=dtype), 2, low / 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_near_ties_at_the_smallest_tau_keep_gradients_finite_and_within_the_bound(dtype):
    """Zero logits tie every op, so some draws' perturbed logits lie within a few tau of each other, where a
    logit's gradient approaches min(M, K) max|g| / (2 tau): smallest_tau keeps that inside the dtype."""
    low, upstream = smallest_tau(dtype), torch.arange(8, dtype=dtype)
    largest = 0.0
    for seed in range(300):
        logits = torch.zeros(14, 8, dtype=dtype, requires_grad=True)
        code = ensemble_gumbel_softmax(logits, 7, low, generator=torch.Generator().manual_seed(seed))
        (code * upstream).sum().backward()
        assert torch.isfinite(logits.grad).all(), seed
        largest = max(largest, float(logits.grad.abs().max()))
    assert largest <= 7 * 7 / (2 * low) <= torch.finfo(dtype).max
    if dtype == torch.float16:  # near-ties were met: the bound is what kept them finite
        assert largest > 100


def test_float16_refuses_a_temperature_whose_gradient_it_cannot_hold():
    """At tau = 1e-5 (once accepted for float16) seed 1655 draws a near-tie whose float32 gradient exceeds
    float16's largest number, so casting it back gave -inf and inf; float16 now refuses that tau by name."""
    draw = torch.Generator().manual_seed(1655)
    with pytest.raises(EGSError, match=r"tau=1e-05 is below 0.00195, .* float16 logits .* use tau >= 0.00195"):
        ensemble_gumbel_softmax(torch.zeros(14, 8, dtype=torch.float16), 7, 1e-5, generator=draw)
    logits = torch.zeros(14, 8, requires_grad=True)
    code = ensemble_gumbel_softmax(logits, 7, 1e-5, generator=torch.Generator().manual_seed(1655))
    (code * torch.arange(8.0)).sum().backward()
    assert torch.finfo(torch.float16).max < float(logits.grad.abs().max()) <= 7 * 7 / (2 * 1e-5)


def test_the_smallest_temperatures_follow_from_each_dtypes_range():
    for dtype in DTYPES:
        name = str(dtype).removeprefix("torch.")
        assert FLOAT_MAX[name] == torch.finfo(dtype).max  # the torch-free table the settings check with
        assert 0 < smallest_tau(dtype) == GRADIENT_HEADROOM / 2 / torch.finfo(dtype).max
    assert smallest_tau(torch.float16) == pytest.approx(1.954e-3, rel=1e-3)
    assert smallest_tau(torch.float32) == pytest.approx(3.76e-37, rel=1e-3)


def test_the_exact_distribution_for_large_M():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    dist = code_distribution(p, 200)
    assert torch.isfinite(dist.probs).all() and float(dist.probs.sum()) == pytest.approx(1.0)
    assert float(dist.marginals()[3]) == pytest.approx(1 - 0.95 ** 200)
    with pytest.raises(EGSError, match="M=1001 is beyond 1000"):
        code_distribution(p, 1001)


@pytest.mark.parametrize("n,match", [(1.5, "n_samples=1.5 must be an integer"), (True, "n_samples=True"),
                                     (0, "n_samples=0 must be an integer >= 1")])
def test_monte_carlo_sample_counts_are_checked_like_every_integer(n, match):
    with pytest.raises(EGSError, match=match):
        empirical_code_distribution([0.5, 0.5], 2, n)
