"""The Monte-Carlo "true TC" of a Gaussian aggregate posterior (dvae_core.metrics.total_correlation).

Known answers: a mixture whose means are Gaussian with covariance C and whose posteriors all have
std s is, as N → ∞, exactly N(0, C + s²I), with TC = −½ log det R (R its correlation matrix);
independent dimensions have TC 0; isolated point-like posteriors have TC (d−1)·log N.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dvae_core.metrics import gaussian_total_correlation
from dvae_core.metrics.total_correlation import aggregate_log_densities

torch.set_num_threads(1)


def gaussian_tc(cov: np.ndarray) -> float:
    sd = np.sqrt(np.diag(cov))
    return -0.5 * np.linalg.slogdet(cov / np.outer(sd, sd))[1]


def codes(cov, n, s, seed):
    means = np.random.default_rng(seed).multivariate_normal(np.zeros(len(cov)), cov, size=n)
    return means, np.full_like(means, 2 * math.log(s))


def test_mixture_log_densities_match_a_brute_force_sum():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    z = torch.randn(7, 3, generator=g, dtype=torch.float64)
    log_qz, log_qzj = aggregate_log_densities(z, mean, logvar)
    normal = torch.distributions.Normal(mean, (0.5 * logvar).exp())          # (5, 3) components
    per_dim = normal.log_prob(z[:, None, :]).exp()                             # (7, 5, 3) densities
    torch.testing.assert_close(log_qz, per_dim.prod(2).mean(1).log())
    torch.testing.assert_close(log_qzj, per_dim.mean(1).log())


def test_chunking_does_not_change_the_answer():
    mean, logvar = codes(np.eye(3), 300, 0.3, seed=1)
    whole = gaussian_total_correlation(mean, logvar, num_samples=200, generator=3)
    chunked = gaussian_total_correlation(mean, logvar, num_samples=200, generator=3, sample_chunk=17,
                                         component_chunk=41)
    for key in ("tc", "std_error", "log_qz", "sum_log_qzj"):
        assert chunked[key] == pytest.approx(whole[key], rel=1e-12, abs=1e-12)


def test_point_like_posteriors_give_the_gaussian_closed_form():
    """(a) Posteriors narrow against the codes' spread (s = 0.07) yet overlapping their neighbours
    (much narrower and the finite-N bias takes over: see the saturation test below)."""
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    mean, logvar = codes(cov, 4000, 0.07, seed=0)
    result = gaussian_total_correlation(mean, logvar, num_samples=3000, generator=0)
    closed_form = gaussian_tc(np.cov(mean.T))       # −½ log det R of the codes themselves, ≈ 0.83
    assert result["tc"] == pytest.approx(closed_form, abs=0.07)
    assert result["std_error"] < 0.02


def test_any_posterior_width_gives_the_closed_form_of_the_smoothed_gaussian():
    """(a') The same at s = 0.4 in 3-D, where q(z) = N(0, C + s²I) exactly in the limit."""
    cov = np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.6], [0.5, 0.6, 1.0]])
    s = 0.4
    mean, logvar = codes(cov, 3000, s, seed=1)
    result = gaussian_total_correlation(mean, logvar, num_samples=3000, generator=1)
    closed_form = gaussian_tc(np.cov(mean.T) + s**2 * np.eye(3))   # ≈ 0.50, vs 0.73 for the means alone
    assert result["tc"] == pytest.approx(closed_form, abs=0.04)
    assert result["log_qz"] - result["sum_log_qzj"] == pytest.approx(result["tc"])
    assert result["log_qzj"].shape == (3,) and result["num_components"] == 3000


def test_independent_dimensions_have_tc_near_zero():
    """(b) TC ≈ 0; the finite-N bias is upwards and small once posteriors overlap."""
    mean, logvar = codes(np.eye(3), 3000, 0.5, seed=2)
    result = gaussian_total_correlation(mean, logvar, num_samples=3000, generator=2)
    assert -3 * result["std_error"] < result["tc"] < 0.03


def test_isolated_point_posteriors_saturate_at_the_upper_bound():
    """The documented bias: σ → 0 at fixed N gives (d−1)·log N whatever the codes' dependence."""
    mean, logvar = codes(np.eye(3), 100, 1e-6, seed=3)
    result = gaussian_total_correlation(mean, logvar, num_samples=500, generator=3)
    assert result["max_tc"] == pytest.approx(2 * math.log(100))
    assert result["tc"] == pytest.approx(result["max_tc"], rel=0.01)
    assert result["tc"] <= result["max_tc"] + 1e-9


def test_invariant_to_permuting_dimensions():
    """(c) Exactly for the densities at given points; within Monte-Carlo error for the estimate."""
    cov = np.array([[1.0, 0.7, 0.0], [0.7, 1.0, 0.3], [0.0, 0.3, 1.0]])
    mean, logvar = codes(cov, 1000, 0.3, seed=4)
    logvar = logvar + np.random.default_rng(5).uniform(-0.5, 0.5, logvar.shape)  # unequal widths
    perm = [2, 0, 1]
    m, lv = torch.as_tensor(mean), torch.as_tensor(logvar)
    z = torch.randn(50, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    log_qz, log_qzj = aggregate_log_densities(z, m, lv)
    log_qz_p, log_qzj_p = aggregate_log_densities(z[:, perm], m[:, perm], lv[:, perm])
    torch.testing.assert_close(log_qz_p, log_qz)
    torch.testing.assert_close(log_qzj_p, log_qzj[:, perm])
    a = gaussian_total_correlation(mean, logvar, num_samples=2000, generator=7)
    b = gaussian_total_correlation(mean[:, perm], logvar[:, perm], num_samples=2000, generator=7)
    assert abs(a["tc"] - b["tc"]) < 4 * math.hypot(a["std_error"], b["std_error"])


def test_reproducible_and_validates_input():
    mean, logvar = codes(np.eye(2), 50, 0.3, seed=8)
    assert gaussian_total_correlation(mean, logvar, 100, generator=1)["tc"] == \
        gaussian_total_correlation(mean, logvar, 100, generator=torch.Generator().manual_seed(1))["tc"]
    with pytest.raises(ValueError, match="one shape"):
        gaussian_total_correlation(mean, logvar[:, :1], 100)
    with pytest.raises(ValueError, match="finite"):
        gaussian_total_correlation(np.full_like(mean, np.nan), logvar, 100)
