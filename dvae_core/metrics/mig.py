"""Mutual Information Gap (MIG).

Definition: Chen, Li, Grosse & Duvenaud (2018), "Isolating Sources of Disentanglement in
Variational Autoencoders" (NeurIPS; arXiv:1802.04942), the "Mutual Information Gap":

    MIG = 1/K  Σ_k  ( I(z_{j(k)}; v_k) − max_{j ≠ j(k)} I(z_j; v_k) ) / H(v_k),
    j(k) = argmax_j I(z_j; v_k),

for K ground-truth factors v_k and code dimensions z_j: per factor, the gap between the most and
the second most informative code dimension, normalised by the factor's entropy so it lies in
[0, 1]. 1 means every factor is captured by exactly one dimension (and no other dimension knows
anything about it); it does not penalise one dimension capturing several factors.

Estimator: as disentanglement_lib computes it (Locatello et al. 2019,
``disentanglement_lib/evaluation/metrics/mig.py`` + ``utils.py``), not Chen et al.'s
q(z|x)-based estimator. The codes (the posterior means) are discretised *per dimension* into
``num_bins`` equal-width histogram bins spanning [min, max] of that dimension (``np.histogram``
edges, ``np.digitize`` on all edges but the last, so labels are 1..num_bins and the maximum falls
into the last bin); I(z_j; v_k) is the discrete plug-in MI ``sklearn.metrics.mutual_info_score``
(nats) and H(v_k) = ``mutual_info_score(v_k, v_k)``.

Defaults (disentanglement_lib ``config/unsupervised_study_v1/metric_configs/mig.gin``):
``discretizer.num_bins = 20`` (histogram discretiser) and ``mig.num_train = 10000`` points, i.e.
call ``mig(*sample_codes(dataset, encode, 10000, rng))``.

Properties worth knowing (and tested):

* A factor with at most ``num_bins`` equally spaced values copied into a code dimension lands one
  value per bin, so a code that copies the factors scores exactly 1 (on a full grid, where the
  factors are exactly independent; on random samples the plug-in MI between independent
  variables is biased upwards by ≈ (B−1)(S−1)/(2n) nats, which lowers the gap slightly).
* Invariant to permuting code dimensions and to per-dimension affine maps a·z + b, a ≠ 0
  (equal-width bins move with them). It is *not* invariant to non-linear monotone maps: those
  move points between equal-width bins.

Decisions beyond disentanglement_lib (which divides by zero / indexes out of range here):

* Constant factor (H(v_k) = 0, e.g. a factor held fixed in the sample): its gap is undefined;
  ``per_factor[k]`` is NaN and it is left out of the mean. If every factor is constant the score
  is NaN.
* A single code dimension (d == 1): the second-largest MI is taken to be 0, so the gap is
  I(z_0; v_k) / H(v_k).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import mutual_info_score

from dvae_core.metrics.encode import as_codes, to_numpy

#: disentanglement_lib ``discretizer.num_bins`` for MIG.
DEFAULT_NUM_BINS = 20


def histogram_discretize(codes: np.ndarray | torch.Tensor, num_bins: int = DEFAULT_NUM_BINS) -> np.ndarray:
    """Each column of ``codes`` (n, d) binned into ``num_bins`` equal-width bins → int64 labels 1..num_bins.

    disentanglement_lib's ``_histogram_discretize``: ``np.digitize(z, np.histogram(z, num_bins)[1][:-1])``.
    A constant column (``np.histogram`` widens its range by ±0.5) lands in a single bin.
    """
    codes = as_codes(codes)
    num_bins = _check_num_bins(num_bins)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins=num_bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def mig(codes: np.ndarray | torch.Tensor, factors: np.ndarray | torch.Tensor,
        num_bins: int = DEFAULT_NUM_BINS) -> dict:
    """Mutual Information Gap of ``codes`` (n, d) float with respect to ``factors`` (n, K) int.

    Returns a dict:

    * ``score`` — mean of ``per_factor`` over the non-constant factors (float; NaN if none).
    * ``per_factor`` — (K,) normalised gap per factor; NaN for a constant factor.
    * ``mutual_info`` — (d, K) discrete MI I(z_j; v_k) in nats (disentanglement_lib's ``m``).
    * ``factor_entropy`` — (K,) H(v_k) in nats.
    """
    codes = as_codes(codes, name="codes")
    factors = _as_factors(factors)
    if factors.shape[0] != codes.shape[0]:
        raise ValueError(f"codes and factors must have the same number of rows, "
                         f"got {codes.shape[0]} and {factors.shape[0]}")
    discrete = histogram_discretize(codes, num_bins)
    num_dims, num_factors = codes.shape[1], factors.shape[1]

    mutual_info = np.zeros((num_dims, num_factors))
    for j in range(num_dims):
        for k in range(num_factors):
            mutual_info[j, k] = mutual_info_score(factors[:, k], discrete[:, j])
    entropy = np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(num_factors)])

    sorted_mi = np.sort(mutual_info, axis=0)[::-1]  # descending over code dims
    top = sorted_mi[0]
    second = sorted_mi[1] if num_dims > 1 else np.zeros(num_factors)
    per_factor = np.full(num_factors, np.nan)
    informative = entropy > 0
    per_factor[informative] = (top[informative] - second[informative]) / entropy[informative]
    score = float(np.mean(per_factor[informative])) if informative.any() else float("nan")
    return {"score": score, "per_factor": per_factor, "mutual_info": mutual_info,
            "factor_entropy": entropy}


def _as_factors(factors: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = to_numpy(factors)
    if arr.ndim != 2:
        raise ValueError(f"factors must be 2-D (n, K), got shape {arr.shape}"
                         + (" (use .reshape(-1, 1) for a single factor)" if arr.ndim == 1 else ""))
    if arr.shape[1] < 1:
        raise ValueError(f"factors must have at least one column, got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError("factors must have at least one row")
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64, copy=False)
    if np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return arr.astype(np.int64)
    raise TypeError(f"factors must hold integer classes, got dtype {arr.dtype}"
                    + (" with non-integer values" if np.issubdtype(arr.dtype, np.floating) else ""))


def _check_num_bins(num_bins: int) -> int:
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}")
    return int(num_bins)
