"""Known-answer tests for the disentanglement metrics (MIG, FactorVAE, beta-VAE).

The datasets here are tiny synthetic grids whose "images" are the factor classes themselves
((n, K, 1, 1) floats), so an encoder that flattens the image is a perfectly disentangled code and
any other code is an explicit function of the factors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dvae_core.data.base import FactorDataset
from dvae_core.metrics import beta_vae_score, factor_vae_score, histogram_discretize, mig, sample_codes


class FactorImages(FactorDataset):
    """A grid whose image for factor classes c is the (K, 1, 1) float tensor c itself."""

    name = "factor_images"

    def __init__(self, sizes):
        self.factor_sizes = tuple(sizes)
        self.factor_names = tuple(f"f{k}" for k in range(len(sizes)))
        self.image_shape = (len(sizes), 1, 1)

    def images(self, factors):
        factors = self._check_factors(factors)
        return torch.from_numpy(factors.astype(np.float32))[:, :, None, None]


SIZES = (5, 6, 7, 8)
K = len(SIZES)


def flatten(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


def full_grid(sizes) -> np.ndarray:
    """Every point of the grid once: the factors are then exactly uniform and independent."""
    return np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, len(sizes))


def binomial_tol(p: float, n: int, sds: float = 4.0) -> float:
    return sds * math.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------------------------- MIG

@pytest.mark.parametrize("num_values", range(2, 21))
def test_histogram_discretize_puts_each_of_up_to_20_values_in_its_own_bin(num_values):
    for offset, scale in [(0, 1), (3, 1), (-7, 2.5), (0, 1e-3), (1e6, 1), (5, -1)]:
        values = np.arange(num_values) * scale + offset
        bins = histogram_discretize(np.repeat(values, 3).reshape(-1, 1))[:, 0]
        assert len(np.unique(bins)) == num_values, (num_values, offset, scale)
        assert bins.min() == 1 and bins.max() == 20  # labels 1..num_bins, max in the last bin


def test_histogram_discretize_constant_dimension_is_one_bin():
    bins = histogram_discretize(np.full((10, 1), 3.0))
    assert len(np.unique(bins)) == 1


def test_mig_is_one_for_a_code_that_copies_the_factors():
    sizes = (2, 3, 7, 20)  # 20 values: the most 20 bins can separate
    factors = full_grid(sizes)
    for codes in (factors.astype(np.float64), 0.1 * factors - 4.0):
        out = mig(codes, factors)
        # On the full grid the factors are exactly independent, so the second-best MI is exactly
        # 0 and the gap equals H(v_k): 1 up to float rounding.
        assert out["score"] == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(out["per_factor"], 1.0, atol=1e-9)
        np.testing.assert_allclose(np.diag(out["mutual_info"]), out["factor_entropy"], atol=1e-12)
        np.testing.assert_allclose(out["factor_entropy"], np.log(sizes), atol=1e-12)


def test_mig_is_near_zero_for_a_code_independent_of_the_factors():
    rng = np.random.default_rng(0)
    n = 50_000
    factors = np.stack([rng.integers(0, 4, n), rng.integers(0, 10, n)], axis=1)
    codes = rng.normal(size=(n, 5))
    out = mig(codes, factors)
    # Plug-in MI of independent variables is biased up by ≈ (B−1)(S−1)/(2n) ≤ 19·9/1e5 ≈ 0.002
    # nats for every dimension alike; the gap between two such estimates is far smaller, and
    # H(v) ≥ log 4 ≈ 1.4, so the normalised gap is well below 0.01.
    assert out["mutual_info"].max() < 0.005
    assert 0 <= out["score"] < 0.01


def _noisy_code(rng, n=20_000):
    factors = np.stack([rng.integers(0, s, n) for s in (4, 6, 9)], axis=1)
    mixing = rng.normal(size=(3, 5))
    codes = factors @ mixing + 0.5 * rng.normal(size=(n, 5))
    return codes, factors


def test_mig_is_invariant_to_permuting_and_affinely_rescaling_code_dimensions():
    rng = np.random.default_rng(1)
    codes, factors = _noisy_code(rng)
    base = mig(codes, factors)
    assert 0.02 < base["score"] < 0.98  # a non-trivial score, so invariance means something

    perm = np.array([3, 0, 4, 1, 2])
    permuted = mig(codes[:, perm], factors)
    assert permuted["score"] == pytest.approx(base["score"], abs=1e-12)
    np.testing.assert_allclose(permuted["per_factor"], base["per_factor"], atol=1e-12)
    np.testing.assert_allclose(permuted["mutual_info"], base["mutual_info"][perm], atol=1e-12)

    # Strictly monotone per-dim rescaling a·z + b (a < 0 included): equal-width bins move with it.
    scale = np.array([2.0, -0.5, 1e-3, -30.0, 7.0])
    shift = np.array([1.0, -3.0, 0.0, 100.0, -1e3])
    rescaled = mig(codes * scale + shift, factors)
    assert rescaled["score"] == pytest.approx(base["score"], abs=1e-9)
    np.testing.assert_allclose(rescaled["mutual_info"], base["mutual_info"], atol=1e-9)


def test_mig_two_dims_copying_the_same_factor_give_it_zero_gap():
    factors = full_grid((5, 6, 7))
    codes = np.concatenate([factors, factors[:, :1]], axis=1).astype(np.float64)
    out = mig(codes, factors)
    assert out["per_factor"][0] == 0.0
    np.testing.assert_allclose(out["per_factor"][1:], 1.0, atol=1e-9)
    assert out["score"] == pytest.approx(2 / 3, abs=1e-9)


def test_mig_constant_factor_is_nan_and_left_out_of_the_mean():
    factors = full_grid((5, 6))
    factors = np.concatenate([factors, np.zeros((len(factors), 1), np.int64)], axis=1)
    codes = factors[:, :2].astype(np.float64)
    out = mig(codes, factors)
    assert np.isnan(out["per_factor"][2]) and out["factor_entropy"][2] == 0
    np.testing.assert_allclose(out["per_factor"][:2], 1.0, atol=1e-9)
    assert out["score"] == pytest.approx(1.0, abs=1e-9)
    assert np.isnan(mig(codes, np.zeros((len(codes), 2), np.int64))["score"])


def test_mig_single_code_dimension_uses_zero_as_second_best():
    factors = full_grid((5, 6))
    out = mig(factors[:, :1].astype(np.float64), factors)
    np.testing.assert_allclose(out["per_factor"], [1.0, 0.0], atol=1e-9)
    assert out["score"] == pytest.approx(0.5, abs=1e-9)


def test_mig_accepts_torch_and_validates_shapes():
    factors = full_grid((3, 4))
    codes = factors.astype(np.float32)
    expected = mig(codes, factors)["score"]
    assert mig(torch.from_numpy(codes), torch.from_numpy(factors))["score"] == pytest.approx(expected)
    assert mig(codes, factors.astype(np.float64))["score"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="same number of rows"):
        mig(codes[:-1], factors)
    with pytest.raises(ValueError, match="2-D"):
        mig(codes[:, 0], factors)
    with pytest.raises(ValueError, match="2-D"):
        mig(codes, factors[:, 0])
    with pytest.raises(TypeError, match="integer"):
        mig(codes, factors + 0.5)
    with pytest.raises(ValueError, match="NaN"):
        mig(np.where(codes == 0, np.nan, codes), factors)
    with pytest.raises(ValueError, match="num_bins"):
        mig(codes, factors, num_bins=0)


def test_sample_codes_feeds_mig():
    dataset = FactorImages(SIZES)
    codes, factors = sample_codes(dataset, flatten, 3000, np.random.default_rng(0), max_images_per_call=512)
    assert codes.shape == (3000, K) and factors.shape == (3000, K)
    np.testing.assert_array_equal(codes, factors)
    # Random (not full-grid) samples: the perfect code loses only the small plug-in MI bias.
    assert mig(codes, factors)["score"] > 0.97


# ---------------------------------------------------------------------------------------- FactorVAE

SMALL = dict(num_train=500, num_eval=500, num_variance_estimate=1000)


def test_factor_vae_perfect_code_scores_one():
    out = factor_vae_score(FactorImages(SIZES), flatten, np.random.default_rng(0), **SMALL)
    assert out["train_accuracy"] == 1.0 and out["eval_accuracy"] == 1.0
    assert out["num_active_dims"] == K
    np.testing.assert_array_equal(out["classifier"], np.arange(K))


def test_factor_vae_prunes_constant_and_near_constant_dims():
    def encode(x):
        v = x.flatten(1)
        constant = torch.full((len(v), 1), 3.0)
        near_constant = 1e-3 * v[:, :1]  # std ≈ 1e-3·√2 < 0.05
        active_copy = 0.2 * v[:, 1:2]  # std ≈ 0.2·1.7 > 0.05: stays
        return torch.cat([constant, v, near_constant, active_copy], dim=1).numpy()  # numpy is fine

    out = factor_vae_score(FactorImages(SIZES), encode, np.random.default_rng(0), **SMALL)
    np.testing.assert_array_equal(out["active_dims"], [False, True, True, True, True, False, True])
    assert out["num_active_dims"] == K + 1
    assert out["classifier"][0] == -1 and out["classifier"][5] == -1
    assert out["train_votes"][:, [0, 5]].sum() == 0
    assert out["train_accuracy"] == 1.0 and out["eval_accuracy"] == 1.0

    # A higher threshold prunes the 0.2-scaled copy too.
    out = factor_vae_score(FactorImages(SIZES), encode, np.random.default_rng(0), prune_threshold=1.0, **SMALL)
    assert out["num_active_dims"] == K


def test_factor_vae_no_active_dims_scores_zero():
    out = factor_vae_score(FactorImages(SIZES), lambda x: torch.zeros(len(x), 3), np.random.default_rng(0),
                           **SMALL)
    assert (out["train_accuracy"], out["eval_accuracy"], out["num_active_dims"]) == (0.0, 0.0, 0)


def _noise_encoder(seed: int, dims: int = 4):
    gen = torch.Generator().manual_seed(seed)
    return lambda x: torch.randn(len(x), dims, generator=gen)


def test_factor_vae_code_ignoring_the_factors_is_at_chance():
    # Codes independent of the factors: each eval vote's argmin dim is independent of its factor k,
    # so whatever the classifier, an eval vote is right with probability exactly 1/K.
    num_eval = 2000
    out = factor_vae_score(FactorImages(SIZES), _noise_encoder(0), np.random.default_rng(0), num_train=500,
                           num_eval=num_eval, num_variance_estimate=1000)
    assert out["num_active_dims"] == 4
    assert abs(out["eval_accuracy"] - 1 / K) < binomial_tol(1 / K, num_eval)
    assert out["train_accuracy"] >= out["eval_accuracy"] - 0.05  # majority vote fits its own votes


def test_factor_vae_is_deterministic_and_independent_of_chunking():
    dataset = FactorImages(SIZES)
    runs = [factor_vae_score(dataset, _noise_encoder(1), np.random.default_rng(7), max_images_per_call=chunk,
                             **SMALL) for chunk in (2048, 2048, 100)]
    for other in runs[1:]:
        for key in ("train_accuracy", "eval_accuracy", "num_active_dims"):
            assert other[key] == runs[0][key]
        np.testing.assert_array_equal(other["train_votes"], runs[0]["train_votes"])
        np.testing.assert_array_equal(other["eval_votes"], runs[0]["eval_votes"])
    different = factor_vae_score(dataset, _noise_encoder(1), np.random.default_rng(8), **SMALL)
    assert not np.array_equal(different["train_votes"], runs[0]["train_votes"])


def test_factor_vae_validates_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        factor_vae_score(FactorImages(SIZES), flatten, np.random.default_rng(0), batch_size=1)
    with pytest.raises(TypeError, match="Generator"):
        factor_vae_score(FactorImages(SIZES), flatten, np.random.RandomState(0))
    with pytest.raises(ValueError, match="rows"):
        factor_vae_score(FactorImages(SIZES), lambda x: flatten(x)[:-1], np.random.default_rng(0), **SMALL)


# ----------------------------------------------------------------------------------------- beta-VAE

def test_beta_vae_perfect_code_scores_one():
    out = beta_vae_score(FactorImages(SIZES), flatten, np.random.default_rng(0), num_train=400, num_eval=400)
    assert out["train_accuracy"] == 1.0 and out["eval_accuracy"] == 1.0


def entangled_last_factor(x: torch.Tensor) -> torch.Tensor:
    """Factors 0..K−2 each own one dimension; the last factor owns none: it is mixed into the
    dimensions of factors 0 and 1 (z0 = v0 + c·v3, z1 = v1 + c·v3, z2 = v2, factors scaled to [0, 1))."""
    v = x.flatten(1) / torch.tensor(SIZES, dtype=torch.float32)
    c = 0.25
    return torch.stack([v[:, 0] + c * v[:, 3], v[:, 1] + c * v[:, 3], v[:, 2]], dim=1)


def test_beta_vae_failure_mode_scores_high_where_factor_vae_does_not():
    dataset = FactorImages(SIZES)
    num_eval = 1000
    beta = beta_vae_score(dataset, entangled_last_factor, np.random.default_rng(0), num_train=1000,
                          num_eval=num_eval)
    factor = factor_vae_score(dataset, entangled_last_factor, np.random.default_rng(0), num_train=1000,
                              num_eval=num_eval, num_variance_estimate=1000)
    # beta-VAE: the linear classifier recognises the last factor by elimination.
    assert beta["train_accuracy"] > 0.98 and beta["eval_accuracy"] > 0.98
    # FactorVAE: every vote of the last factor lands on a dimension owned by another factor and is
    # counted wrong, the other votes are right: (K−1)/K = 0.75 in expectation.
    assert factor["eval_accuracy"] < 0.9
    assert abs(factor["eval_accuracy"] - (K - 1) / K) < binomial_tol((K - 1) / K, num_eval)
    assert factor["eval_accuracy"] < beta["eval_accuracy"] - 0.1


def test_beta_vae_is_deterministic_and_independent_of_chunking():
    dataset = FactorImages(SIZES)
    runs = [beta_vae_score(dataset, entangled_last_factor, np.random.default_rng(3), num_train=300, num_eval=300,
                           max_images_per_call=chunk) for chunk in (2048, 2048, 100)]
    for other in runs[1:]:
        assert other["train_accuracy"] == runs[0]["train_accuracy"]
        assert other["eval_accuracy"] == runs[0]["eval_accuracy"]
        np.testing.assert_array_equal(other["classifier"].coef_, runs[0]["classifier"].coef_)


def test_beta_vae_code_ignoring_the_factors_is_at_chance():
    num_eval = 1000
    out = beta_vae_score(FactorImages(SIZES), _noise_encoder(2), np.random.default_rng(0), num_train=500,
                         num_eval=num_eval)
    assert abs(out["eval_accuracy"] - 1 / K) < binomial_tol(1 / K, num_eval)


def test_beta_vae_single_factor_is_trivially_one():
    out = beta_vae_score(FactorImages((5,)), flatten, np.random.default_rng(0), num_train=20, num_eval=20)
    assert out["train_accuracy"] == 1.0 and out["eval_accuracy"] == 1.0
