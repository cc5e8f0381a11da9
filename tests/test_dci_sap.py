"""DCI and SAP on constructed codes with known answers, and their formulas on hand-computed matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dvae_core.metrics.dci import completeness, dci, disentanglement
from dvae_core.metrics.sap import sap


def grid_points(sizes, repeats, rng):
    grid = np.array(list(itertools.product(*[range(s) for s in sizes])))
    return grid[rng.integers(0, len(grid), repeats * len(grid))]


def splits(codes, factors):
    half = len(codes) * 2 // 3
    return codes[:half], factors[:half], codes[half:], factors[half:]


# ------------------------------------------------------------------------- DCI formulas

def test_disentanglement_and_completeness_of_hand_computed_importance_matrices():
    assert disentanglement(np.eye(3)) == pytest.approx(1.0, abs=1e-8)
    assert completeness(np.eye(3)) == pytest.approx(1.0, abs=1e-8)
    # a third code dimension that matters for nothing carries no weight
    assert disentanglement(np.array([[1.0, 0], [0, 1], [0, 0]])) == pytest.approx(1.0, abs=1e-8)
    # every code equally important to every factor: nothing is specific
    assert disentanglement(np.ones((3, 2))) == pytest.approx(0.0, abs=1e-8)
    assert completeness(np.ones((3, 2))) == pytest.approx(0.0, abs=1e-8)
    # code 0 serves both factors (H_2 = 1, weight 2/3), code 1 only factor 1 (weight 1/3): D = 1/3;
    # factor 0 is read from code 0 alone (weight 1/3), factor 1 from both equally (weight 2/3): C = 1/3
    r = np.array([[1.0, 1.0], [0.0, 1.0]])
    assert disentanglement(r) == pytest.approx(1 / 3, abs=1e-6)
    assert completeness(r) == pytest.approx(1 / 3, abs=1e-6)
    # all zeros (nothing predicts anything): equal weights, uniform spreads, scores 0
    assert disentanglement(np.zeros((2, 2))) == pytest.approx(0.0, abs=1e-8)


def test_dci_of_codes_that_copy_the_factors_is_one_and_of_rotated_codes_is_lower():
    rng = np.random.default_rng(0)
    factors = grid_points((4, 3, 5), 20, rng)
    noise = rng.normal(size=(len(factors), 2))
    copied = np.concatenate([factors + 0.01 * rng.normal(size=factors.shape), noise], axis=1)
    out = dci(*splits(copied, factors))
    assert out["disentanglement"] > 0.99 and out["completeness"] > 0.99
    assert out["informativeness_test"] == pytest.approx(1.0)
    assert out["importance"].shape == (5, 3) and out["importance"][3:].sum() < 0.01

    rotated = copied.copy()
    rotated[:, 0], rotated[:, 1] = copied[:, 0] + copied[:, 1], copied[:, 0] - copied[:, 1]
    mixed = dci(*splits(rotated, factors))
    assert mixed["disentanglement"] < 0.9 and mixed["completeness"] < 0.9
    assert mixed["informativeness_test"] > 0.95  # still predictable, just not from one dimension each


def test_dci_of_pure_noise_codes_predicts_at_chance():
    rng = np.random.default_rng(1)
    factors = grid_points((2, 2), 200, rng)
    out = dci(*splits(rng.normal(size=(len(factors), 3)), factors))
    assert out["informativeness_test"] < 0.62


def test_dci_and_sap_refuse_mismatched_rows():
    codes, factors = np.zeros((10, 2)), np.zeros((9, 1), dtype=int)
    with pytest.raises(ValueError, match="same number of rows"):
        dci(codes, factors, codes, factors)
    with pytest.raises(ValueError, match="same number of rows"):
        sap(codes, factors, codes, factors)


# ----------------------------------------------------------------------------------- SAP

def test_sap_of_binary_factors_copied_into_codes_is_one_minus_chance():
    """Each copied dimension predicts its own binary factor exactly and another at chance (0.5, balanced)."""
    rng = np.random.default_rng(2)
    factors = grid_points((2, 2, 2), 300, rng)
    codes = 2.0 * factors - 1 + 0.05 * rng.normal(size=factors.shape)
    out = sap(*splits(codes, factors))
    assert out["scores"].shape == (3, 3)
    np.testing.assert_allclose(np.diag(out["scores"]), 1.0)
    assert out["score"] == pytest.approx(0.5, abs=0.05)
    # two dimensions that both copy factor 0: no gap for it
    twice = codes.copy()
    twice[:, 1] = codes[:, 0]
    assert sap(*splits(twice, factors))["per_factor"][0] == pytest.approx(0.0, abs=1e-9)


def test_sap_with_continuous_factors_uses_squared_correlation():
    rng = np.random.default_rng(3)
    factors = grid_points((10, 10), 30, rng)
    codes = factors + 0.01 * rng.normal(size=factors.shape)
    out = sap(*splits(codes, factors), continuous_factors=True)
    assert out["score"] == pytest.approx(1.0, abs=0.02)


def test_sap_is_invariant_to_permuting_code_dimensions():
    rng = np.random.default_rng(4)
    factors = grid_points((2, 3), 100, rng)
    codes = np.concatenate([factors + 0.3 * rng.normal(size=factors.shape), rng.normal(size=(len(factors), 1))], 1)
    a = sap(*splits(codes, factors))["score"]
    b = sap(*splits(codes[:, [2, 0, 1]], factors))["score"]
    assert a == pytest.approx(b)
