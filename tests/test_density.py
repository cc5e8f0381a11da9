"""Known-answer tests for the ex-post latent densities (Ghosh et al. 2020, Sec. 4).

Codes are drawn from known distributions — well-separated clusters, a correlated Gaussian — so
the fitted parameters and the samples can be checked against the truth, and ``log_prob`` against
scipy's and scikit-learn's own densities.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from dvae_core.metrics.density import GMM_COMPONENTS, fit_latent_density

CENTRES = 10.0 * np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, GMM_COMPONENTS, endpoint=False)])


def clustered_codes(n_per_cluster: int, seed: int) -> np.ndarray:
    """10 tight, well-separated clusters on a circle of radius 10 (σ = 0.3), shuffled."""
    rng = np.random.default_rng(seed)
    codes = np.concatenate([c + 0.3 * rng.standard_normal((n_per_cluster, 2)) for c in CENTRES])
    return rng.permutation(codes)


def nearest_centre_distance(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None, :] - CENTRES[None], axis=-1).min(axis=1)


def test_gmm_recovers_well_separated_clusters_and_samples_from_them():
    density = fit_latent_density(clustered_codes(200, 0), "gmm", seed=0)
    assert density.kind == "gmm" and density.num_components == GMM_COMPONENTS and density.dim == 2
    assert density.means.shape == (10, 2) and density.covariances.shape == (10, 2, 2)
    assert np.max(nearest_centre_distance(density.means)) < 0.1
    np.testing.assert_allclose(density.weights, 0.1, atol=1e-6)
    np.testing.assert_allclose(density.covariances, np.broadcast_to(0.09 * np.eye(2), (10, 2, 2)), atol=0.03)

    samples = density.sample(20_000, np.random.default_rng(1))
    assert samples.shape == (20_000, 2)
    assert np.quantile(nearest_centre_distance(samples), 0.999) < 2.0  # every sample sits in a cluster
    # Each cluster's share of the samples and their mean per cluster match the fit.
    owner = np.linalg.norm(samples[:, None, :] - CENTRES[None], axis=-1).argmin(axis=1)
    counts = np.bincount(owner, minlength=10)
    assert np.all(np.abs(counts / 20_000 - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 20_000))
    for k in range(10):
        assert np.linalg.norm(samples[owner == k].mean(axis=0) - CENTRES[k]) < 0.05


def test_gmm_log_prob_equals_scikit_learns():
    codes = clustered_codes(100, 2)
    density = fit_latent_density(codes, "gmm", seed=3)
    reference = GaussianMixture(n_components=10, covariance_type="full", max_iter=2000, tol=1e-3,
                                random_state=3).fit(codes)
    probe = np.random.default_rng(4).uniform(-12, 12, (500, 2))
    np.testing.assert_allclose(density.log_prob(probe), reference.score_samples(probe), rtol=1e-10)


def test_normal_is_the_standard_normal():
    density = fit_latent_density(np.full((5, 4), 7.0), "normal")  # the codes' values are ignored
    samples = density.sample(50_000, np.random.default_rng(0))
    assert samples.shape == (50_000, 4)
    np.testing.assert_allclose(samples.mean(axis=0), 0.0, atol=4 / np.sqrt(50_000))
    np.testing.assert_allclose(np.cov(samples, rowvar=False), np.eye(4), atol=0.03)
    z = np.random.default_rng(1).standard_normal((20, 4))
    np.testing.assert_allclose(density.log_prob(z), multivariate_normal(np.zeros(4), np.eye(4)).logpdf(z), rtol=1e-12)


def test_gaussian_recovers_mean_and_covariance():
    rng = np.random.default_rng(5)
    mean = np.array([1.0, -2.0, 0.5])
    covariance = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]])
    codes = rng.multivariate_normal(mean, covariance, size=20_000)
    density = fit_latent_density(torch.from_numpy(codes), "gaussian")
    assert density.num_components == 1
    np.testing.assert_allclose(density.means[0], codes.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(density.covariances[0], np.cov(codes, rowvar=False, bias=True) + 1e-6 * np.eye(3),
                               rtol=1e-12)
    np.testing.assert_allclose(density.means[0], mean, atol=0.05)
    np.testing.assert_allclose(density.covariances[0], covariance, atol=0.06)

    samples = density.sample(50_000, np.random.default_rng(6))
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.04)
    np.testing.assert_allclose(np.cov(samples, rowvar=False), covariance, atol=0.06)
    probe = rng.standard_normal((50, 3))
    np.testing.assert_allclose(density.log_prob(probe),
                               multivariate_normal(density.means[0], density.covariances[0]).logpdf(probe), rtol=1e-10)


def test_a_degenerate_gaussian_stays_usable():
    # Codes on a line span one of two dimensions; reg_covar keeps the covariance invertible.
    t = np.linspace(-1, 1, 100)
    density = fit_latent_density(np.stack([t, 2 * t], axis=1), "gaussian")
    assert np.isfinite(density.log_prob(np.zeros((1, 2)))).all()
    assert np.isfinite(density.sample(10, np.random.default_rng(0))).all()


@pytest.mark.parametrize("kind", ["normal", "gaussian", "gmm"])
def test_fits_and_samples_are_deterministic(kind):
    codes = clustered_codes(50, 7)
    first, second = fit_latent_density(codes, kind, seed=11), fit_latent_density(codes, kind, seed=11)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    np.testing.assert_array_equal(first.sample(100, np.random.default_rng(3)),
                                  second.sample(100, np.random.default_rng(3)))
    assert not np.array_equal(first.sample(100, np.random.default_rng(3)), first.sample(100, np.random.default_rng(4)))


def test_bad_arguments_are_clear_errors():
    codes = clustered_codes(5, 0)
    with pytest.raises(ValueError, match="normal, gaussian, gmm"):
        fit_latent_density(codes, "kde")
    with pytest.raises(ValueError, match="at least 10 codes"):
        fit_latent_density(codes[:5], "gmm")
    with pytest.raises(ValueError, match="5 dimensions but the density has 2"):
        fit_latent_density(codes, "normal").log_prob(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="2-D"):
        fit_latent_density(codes[:, 0], "gaussian")
