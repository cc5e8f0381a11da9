"""Latent-space geometry: where a grid of object positions lands in the latents that code position.

Watters et al. 2019 (Sec. 5, Figs. 6–7) visualise a representation by rendering a grid of (x, y)
positions with every other factor fixed, encoding it, and drawing the grid in the two latent
dimensions that carry position. A disentangled, "linear" code shows a near-regular lattice (the
SB-VAE), an entangled code a warped, folded grid (the DeConv-VAE).

To compare decoders with a number as well as a picture we report the R² of the best *affine*
map from the two latents back to the (x, y) position: 1 for any lattice that is an affine image
of the factor grid (however rotated or sheared), lower as the grid bends or folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dvae_core.metrics.encode import encode_factors


@dataclass
class PositionGrid:
    codes: np.ndarray          # (nx·ny, k) posterior means
    positions: np.ndarray      # (nx·ny, 2) the (x, y) factor classes
    dims: tuple[int, int]      # the latents chosen to carry x and y
    r2: float                  # affine R² of (x, y) from codes[:, dims]
    shape: tuple[int, int]     # (nx, ny)


def grid_factors(dataset, fixed: dict[str, int], step: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """Factor points covering pos_x × pos_y every ``step`` classes, other factors set by ``fixed``."""
    names = list(dataset.factor_names)
    xs = np.arange(0, dataset.factor_sizes[names.index("pos_x")], step)
    ys = np.arange(0, dataset.factor_sizes[names.index("pos_y")], step)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    factors = np.zeros((gx.size, len(names)), dtype=np.int64)
    for name, value in fixed.items():
        factors[:, names.index(name)] = value
    factors[:, names.index("pos_x")] = gx.ravel()
    factors[:, names.index("pos_y")] = gy.ravel()
    return factors, (len(xs), len(ys))


def affine_r2(inputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over target columns of the R² of a least-squares affine fit targets ≈ inputs·A + b.

    NaN if any target column is constant: its R² is 0/0, undefined rather than good or bad, and a NaN is
    what the claim's test drops (a paired test leaves out a seed whose difference is not finite).
    """
    targets = np.asarray(targets, float)
    targets = targets[:, None] if targets.ndim == 1 else targets
    if len(targets) == 0 or np.any(np.ptp(targets, axis=0) == 0):
        return float("nan")
    design = np.column_stack([inputs, np.ones(len(inputs))])
    coef, *_ = np.linalg.lstsq(design, targets, rcond=None)
    residual = ((targets - design @ coef) ** 2).sum(0)
    total = ((targets - targets.mean(0)) ** 2).sum(0)
    return float(np.mean(1.0 - residual / total))


def position_grid(encode, dataset, fixed: dict[str, int], step: int = 2) -> PositionGrid:
    """Encode the position grid and pick, greedily, the two latents that best explain x and y.

    The pair is chosen by the affine R² it achieves (every pair of latents is tried), so the
    choice does not depend on which latent a decoder happened to use for which axis.
    """
    factors, shape = grid_factors(dataset, fixed, step)
    with torch.no_grad():
        codes = encode_factors(dataset, encode, factors)
    names = list(dataset.factor_names)
    positions = factors[:, [names.index("pos_x"), names.index("pos_y")]].astype(float)
    k = codes.shape[1]
    # a NaN R² (constant positions: a grid one class wide) ranks last rather than breaking the comparison
    best = max(((a, b) for a in range(k) for b in range(a + 1, k)),
               key=lambda pair: np.nan_to_num(affine_r2(codes[:, list(pair)], positions), nan=-np.inf))
    return PositionGrid(codes, positions, best, affine_r2(codes[:, list(best)], positions), shape)


def plot_position_grid(grid: PositionGrid, ax, title: str) -> None:
    """Draw the grid's lines of constant x (solid) and constant y (dashed) in latent space."""
    za = grid.codes[:, grid.dims[0]].reshape(grid.shape)
    zb = grid.codes[:, grid.dims[1]].reshape(grid.shape)
    colours = np.linspace(0.15, 0.85, grid.shape[0])
    for i in range(grid.shape[0]):  # fixed x, y varying
        ax.plot(za[i], zb[i], "-", color=(colours[i], 0.3, 1 - colours[i]), lw=1)
    for j in range(grid.shape[1]):  # fixed y, x varying
        ax.plot(za[:, j], zb[:, j], "--", color="0.55", lw=0.7)
    ax.scatter(za.ravel(), zb.ravel(), s=4, c="k", zorder=3)
    ax.set_xlabel(f"z{grid.dims[0]}")
    ax.set_ylabel(f"z{grid.dims[1]}")
    ax.set_title(f"{title}\naffine R² = {grid.r2:.3f}", fontsize=9)
