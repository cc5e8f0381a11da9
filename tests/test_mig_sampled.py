"""Chen et al.'s sampled-posterior MIG estimator, on posteriors with known mutual information."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dvae_core.metrics.mig import mig
from dvae_core.metrics.mig_sampled import mig_sampled, mutual_information


def test_two_well_separated_posteriors_carry_log_two_nats():
    # v uniform on {0, 1}, z | x ~ N(10 v, 1): the aggregate is two far-apart unit Gaussians, I(z; v) = log 2
    rng = np.random.default_rng(0)
    v = rng.integers(0, 2, size=(4000, 1))
    info = mutual_information(10.0 * v, np.ones((4000, 1)), v, num_samples=4000, rng=rng)
    assert info[0, 0] == pytest.approx(math.log(2), abs=0.03)


def test_overlapping_posteriors_carry_the_gaussian_channels_information():
    # z | v ~ N(v, σ²) with v uniform on {0, 1} and σ = 0.5: I is below log 2, as the two components overlap
    rng = np.random.default_rng(1)
    v = rng.integers(0, 2, size=(4000, 1))
    info = mutual_information(v.astype(float), np.full((4000, 1), 0.5), v, num_samples=4000, rng=rng)[0, 0]
    # numerically: H(mixture) − H(N(0, 0.25)) for two components one unit apart, ≈ 0.31 nats
    grid = np.linspace(-4, 5, 20001)
    density = 0.5 * (np.exp(-0.5 * (grid / 0.5) ** 2) + np.exp(-0.5 * ((grid - 1) / 0.5) ** 2)) / (0.5 * math.sqrt(2 * math.pi))
    exact = -np.trapezoid(density * np.log(density), grid) - 0.5 * math.log(2 * math.pi * math.e * 0.25)
    assert info == pytest.approx(exact, abs=0.03)


def test_the_two_estimators_agree_on_sharp_posteriors_and_part_where_the_noise_swamps_the_means():
    rng = np.random.default_rng(2)
    factors = np.stack([rng.integers(0, 5, 3000), rng.integers(0, 8, 3000)], axis=1)
    means = factors.astype(float)
    sharp = mig_sampled(means, np.full_like(means, 0.2), factors, rng=np.random.default_rng(3))["score"]
    swamped = mig_sampled(means, np.full_like(means, 5.0), factors, rng=np.random.default_rng(3))["score"]
    histogram = mig(means, factors)["score"]
    assert histogram > 0.99 and sharp > 0.9  # the means alone decide: both estimators see the copy
    assert swamped < 0.15                     # the posterior noise hides it from the sampled estimator only


def test_codes_unrelated_to_the_factors_score_near_zero():
    rng = np.random.default_rng(4)
    factors = rng.integers(0, 6, size=(3000, 2))
    result = mig_sampled(rng.normal(size=(3000, 3)), np.ones((3000, 3)), factors, rng=rng)
    assert abs(result["score"]) < 0.05 and result["mutual_info"].shape == (3, 2)


def test_a_constant_factor_is_left_out_and_bad_stds_are_refused():
    rng = np.random.default_rng(5)
    factors = np.stack([rng.integers(0, 4, 500), np.zeros(500, dtype=int)], axis=1)
    result = mig_sampled(factors.astype(float), np.full((500, 2), 0.2), factors, rng=rng)
    assert np.isnan(result["per_factor"][1]) and result["score"] > 0.8
    with pytest.raises(ValueError, match="one standard deviation per code entry"):
        mig_sampled(np.zeros((10, 2)), np.ones((10, 3)), np.zeros((10, 1), dtype=int))
    with pytest.raises(ValueError, match="not log-variances"):
        mig_sampled(np.zeros((10, 2)), -np.ones((10, 2)), np.zeros((10, 1), dtype=int))
