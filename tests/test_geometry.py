"""Known-answer tests for the SBD chapter's latent-geometry measure (``dvae_core.papers.sbd.geometry``).

``affine_r2`` is checked on exact affine images, noisy ones and independent noise; ``grid_factors`` and
``position_grid`` on a tiny fake dataset whose "images" are the factor classes and a fake encoder
that writes x and y into two known latents among noise ones.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dvae_core.papers.sbd.geometry import PositionGrid, affine_r2, grid_factors, position_grid

ANGLE = 0.7
ROTATION = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])
SHEAR = np.array([[1.0, 0.8], [0.0, 1.0]])


def random_inputs(rows: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 2))


@pytest.mark.parametrize("matrix", [np.eye(2), ROTATION, SHEAR, 3.0 * ROTATION @ SHEAR,
                                    np.array([[2.0, 0.0], [0.0, -0.5]])],
                         ids=["identity", "rotation", "shear", "scaled-rotation-shear", "flip-and-stretch"])
@pytest.mark.parametrize("offset", [(0.0, 0.0), (5.0, -2.0)], ids=["no-offset", "offset"])
def test_affine_r2_is_one_for_any_affine_image_of_the_inputs(matrix, offset):
    inputs = random_inputs()
    targets = inputs @ matrix + np.array(offset)
    assert affine_r2(inputs, targets) == pytest.approx(1.0, abs=1e-12)


def test_affine_r2_is_unchanged_by_an_invertible_affine_map_of_the_inputs():
    inputs = random_inputs()
    targets = np.column_stack([inputs[:, 0] ** 2, np.sin(inputs[:, 1]) + inputs[:, 0]])
    moved = inputs @ (2.0 * ROTATION @ SHEAR) + np.array([10.0, -3.0])
    assert affine_r2(moved, targets) == pytest.approx(affine_r2(inputs, targets), abs=1e-10)


def test_affine_r2_of_noisy_targets_lies_between_zero_and_one_and_falls_as_the_noise_grows():
    inputs = random_inputs()
    noise = np.random.default_rng(1).normal(size=(200, 2))
    clean = inputs @ ROTATION + 1.0
    scores = [affine_r2(inputs, clean + scale * noise) for scale in (0.05, 0.3, 1.0, 3.0)]
    assert all(0.0 < s < 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)
    assert scores[0] > 0.99
    assert scores[-1] < 0.3


def test_affine_r2_is_near_zero_for_independent_random_targets_with_many_rows():
    inputs = random_inputs(rows=5000, seed=2)
    targets = np.random.default_rng(3).normal(size=(5000, 2))
    score = affine_r2(inputs, targets)
    assert 0.0 <= score <= 0.05


def test_affine_r2_is_the_mean_over_target_columns():
    inputs = random_inputs()
    affine_column = inputs @ np.array([1.5, -0.5]) + 4.0
    noise_column = np.random.default_rng(4).normal(size=200)
    noise_score = affine_r2(inputs, noise_column[:, None])
    assert 0.0 <= noise_score < 0.1
    both = affine_r2(inputs, np.column_stack([affine_column, noise_column]))
    assert both == pytest.approx((1.0 + noise_score) / 2, abs=1e-12)


def test_affine_r2_of_a_constant_target_is_nan_not_a_division_by_zero():
    inputs = random_inputs()
    with np.errstate(all="raise"):  # no 0/0 may happen on the way
        assert np.isnan(affine_r2(inputs, np.full((200, 2), 3.0)))
        assert np.isnan(affine_r2(inputs, np.full(200, 0.1)))


def test_affine_r2_is_nan_if_any_target_column_is_constant():
    inputs = random_inputs()
    targets = np.column_stack([inputs @ np.array([1.0, 2.0]), np.full(200, 7.0)])
    assert np.isnan(affine_r2(inputs, targets))
    assert affine_r2(inputs, targets[:, 0]) == pytest.approx(1.0, abs=1e-12)  # a 1-D target is one column


def test_affine_r2_of_constant_inputs_is_zero_not_nan():
    targets = random_inputs(seed=6)
    assert affine_r2(np.zeros((200, 2)), targets) == pytest.approx(0.0, abs=1e-12)


FACTOR_NAMES = ("color", "pos_y", "shape", "pos_x", "scale")
FACTOR_SIZES = (1, 5, 3, 7, 6)
X, Y = FACTOR_NAMES.index("pos_x"), FACTOR_NAMES.index("pos_y")


def fake_dataset() -> SimpleNamespace:
    return SimpleNamespace(factor_names=FACTOR_NAMES, factor_sizes=FACTOR_SIZES)


def test_grid_factors_covers_every_step_th_position_with_the_other_factors_fixed():
    factors, shape = grid_factors(fake_dataset(), {"shape": 2, "scale": 5}, step=2)
    assert shape == (4, 3)
    assert factors.shape == (12, len(FACTOR_NAMES))
    assert factors.dtype == np.int64
    assert sorted(set(factors[:, X])) == [0, 2, 4, 6]
    assert sorted(set(factors[:, Y])) == [0, 2, 4]
    assert {(x, y) for x, y in factors[:, [X, Y]]} == {(x, y) for x in (0, 2, 4, 6) for y in (0, 2, 4)}
    assert (factors[:, FACTOR_NAMES.index("shape")] == 2).all()
    assert (factors[:, FACTOR_NAMES.index("scale")] == 5).all()
    assert (factors[:, FACTOR_NAMES.index("color")] == 0).all()


def test_grid_factors_with_step_one_covers_the_full_position_grid():
    factors, shape = grid_factors(fake_dataset(), {}, step=1)
    assert shape == (7, 5)
    assert factors.shape == (35, len(FACTOR_NAMES))
    assert len({(x, y) for x, y in factors[:, [X, Y]]}) == 35
    others = [i for i in range(len(FACTOR_NAMES)) if i not in (X, Y)]
    assert (factors[:, others] == 0).all()


def test_grid_factors_rows_run_over_y_within_each_x():
    factors, shape = grid_factors(fake_dataset(), {"shape": 1}, step=3)
    assert shape == (3, 2)
    xs, ys = factors[:, X].reshape(shape), factors[:, Y].reshape(shape)
    np.testing.assert_array_equal(xs, [[0, 0], [3, 3], [6, 6]])
    np.testing.assert_array_equal(ys, [[0, 3], [0, 3], [0, 3]])


class FactorImages:
    """A fake dataset whose image for factor classes c is the (K, 1, 1) float tensor c itself."""

    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = (3, 6, 4, 16, 12)

    def images(self, factors: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(factors, dtype=np.float32))[:, :, None, None]


def position_encoder(x_dim: int, y_dim: int, num_latents: int = 6, mix: bool = False):
    """Codes with affine images of pos_x and pos_y in latents ``x_dim``, ``y_dim`` and fixed noise elsewhere."""
    x_index, y_index = FactorImages.factor_names.index("pos_x"), FactorImages.factor_names.index("pos_y")

    def encode(images: torch.Tensor) -> torch.Tensor:
        x, y = images[:, x_index, 0, 0].double(), images[:, y_index, 0, 0].double()
        rng = np.random.default_rng(5)
        codes = torch.from_numpy(rng.normal(size=(images.shape[0], num_latents)))
        if mix:
            codes[:, x_dim], codes[:, y_dim] = 0.5 * x - 0.2 * y + 1.0, 0.3 * x + 0.9 * y - 2.0
        else:
            codes[:, x_dim], codes[:, y_dim] = 0.25 * x, -0.4 * y + 3.0
        return codes

    return encode


@pytest.mark.parametrize("x_dim, y_dim, mix", [(1, 4, False), (4, 1, False), (0, 5, True), (3, 2, True)])
def test_position_grid_finds_the_two_position_latents_and_an_r2_of_one(x_dim, y_dim, mix):
    dataset = FactorImages()
    fixed = {"shape": 1, "scale": 5}
    grid = position_grid(position_encoder(x_dim, y_dim, mix=mix), dataset, fixed, step=2)
    assert isinstance(grid, PositionGrid)
    assert grid.dims == tuple(sorted((x_dim, y_dim)))
    assert grid.r2 == pytest.approx(1.0, abs=1e-9)
    assert grid.shape == (8, 6)
    assert grid.codes.shape == (48, 6)
    factors, _ = grid_factors(dataset, fixed, step=2)
    np.testing.assert_array_equal(grid.positions, factors[:, [3, 4]].astype(float))


def test_position_grid_r2_beats_every_other_pair_of_latents():
    grid = position_grid(position_encoder(1, 4), FactorImages(), {"shape": 0}, step=2)
    others = [affine_r2(grid.codes[:, [a, b]], grid.positions)
              for a in range(6) for b in range(a + 1, 6) if (a, b) != (1, 4)]
    assert max(others) < 0.8
    assert grid.r2 > max(others)


def test_position_grid_one_class_wide_has_an_undefined_r2_and_still_picks_a_pair():
    class OneColumn(FactorImages):
        factor_sizes = (3, 6, 4, 1, 12)  # a single x position: x is constant over the grid

    grid = position_grid(position_encoder(1, 4), OneColumn(), {"shape": 0}, step=2)
    assert np.isnan(grid.r2)
    assert len(grid.dims) == 2 and grid.shape == (1, 6)
