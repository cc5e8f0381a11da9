"""The beta-VAE disentanglement metric.

Definition: Higgins et al. (2017), "beta-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework" (ICLR), section "Disentanglement metric". One training point: choose
a factor y = k uniformly at random; sample ``batch_size`` *pairs* of factor points, each pair
sharing the value of factor k (the other factors drawn independently); encode both images of
every pair; the feature is the mean over the batch of the absolute code differences,
z_diff = 1/L Σ_l |z1_l − z2_l| (shape (d,)); the label is k. A linear classifier predicts k from
z_diff; its accuracy is the score. A dimension that codes factor k alone is exactly zero in the
feature when k is fixed, so a disentangled code is easy to classify.

Failure mode (Kim & Mnih 2018, "Disentangling by Factorising", the metric section): if K−1 factors are
each captured by their own dimension, a linear classifier also recognises the K-th factor *by
elimination* (no dimension is near zero, or the pattern of partially reduced dimensions is its
own), so the score can be ~100 % while the K-th factor is not disentangled at all. The FactorVAE
metric (:mod:`dvae_core.metrics.factor_vae_score`) does not have this failure mode.

Implementation and defaults follow disentanglement_lib's ``beta_vae_sklearn``
(Locatello et al. 2019, ``evaluation/metrics/beta_vae.py``; ``config/unsupervised_study_v1/
metric_configs/beta_vae_sklearn.gin``): ``batch_size = 64``, ``num_train = 10000``,
``num_eval = 5000``; the classifier is ``sklearn.linear_model.LogisticRegression`` on the raw
(unscaled) features, train accuracy on the training points, eval accuracy on fresh points.
Higgins et al. trained their own low-capacity linear classifier by gradient descent;
disentanglement_lib's sklearn variant is the one used here.

Classifier settings: ``LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)`` — today's
sklearn defaults (L2 penalty, C = 1, multinomial lbfgs; what disentanglement_lib's bare
``LogisticRegression()`` gives with a current sklearn) except ``max_iter`` raised from 100 so the
fit converges on unscaled features. (With the sklearn 0.20 of 2018 the bare call meant liblinear
one-vs-rest; scores can differ slightly in the non-separable regime.) lbfgs is deterministic, so
no seed is needed. If the training points hold a single class (K = 1) the classifier predicts it.

Deliberate difference: points are drawn all at once and the two images of many pairs are
rendered and encoded in one call (at most ``max_images_per_call`` images). The random stream
(factor choices, then all first points, then all second points; training before evaluation) is a
fixed function of the ``rng`` state and independent of ``max_images_per_call``; it does not
reproduce disentanglement_lib's ``RandomState`` stream.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from dvae_core.data.base import FactorDataset
from dvae_core.metrics.encode import (DEFAULT_MAX_IMAGES_PER_CALL, Encoder, _check_positive_int,
                                      encode_factors)
from dvae_core.metrics.factor_vae_score import _as_generator

#: The linear classifier's settings (see the module docstring).
CLASSIFIER_SETTINGS = {"C": 1.0, "solver": "lbfgs", "max_iter": 1000}


def beta_vae_score(dataset: FactorDataset, encode: Encoder, rng: np.random.Generator,
                   batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000, *,
                   max_images_per_call: int = DEFAULT_MAX_IMAGES_PER_CALL) -> dict:
    """beta-VAE metric (Higgins et al. 2017) of ``encode`` on ``dataset``; disentanglement_lib defaults.

    ``rng`` is a ``np.random.Generator`` (an int seed is accepted too). Returns a dict with
    ``train_accuracy`` and ``eval_accuracy`` (floats in [0, 1]), plus the fitted ``classifier``
    (None when K = 1).
    """
    rng = _as_generator(rng)
    for value, name in ((batch_size, "batch_size"), (num_train, "num_train"), (num_eval, "num_eval"),
                        (max_images_per_call, "max_images_per_call")):
        _check_positive_int(value, name)

    train_x, train_y = generate_points(dataset, encode, rng, batch_size, num_train, max_images_per_call)
    eval_x, eval_y = generate_points(dataset, encode, rng, batch_size, num_eval, max_images_per_call)
    if np.unique(train_y).size == 1:  # nothing to learn: predict the one training class
        model = None
        train_pred = np.full_like(train_y, train_y[0])
        eval_pred = np.full_like(eval_y, train_y[0])
    else:
        model = LogisticRegression(**CLASSIFIER_SETTINGS).fit(train_x, train_y)
        train_pred, eval_pred = model.predict(train_x), model.predict(eval_x)
    return {"train_accuracy": float(np.mean(train_pred == train_y)),
            "eval_accuracy": float(np.mean(eval_pred == eval_y)), "classifier": model}


def generate_points(dataset: FactorDataset, encode: Encoder, rng: np.random.Generator, batch_size: int,
                    num_points: int, max_images_per_call: int) -> tuple[np.ndarray, np.ndarray]:
    """The β-VAE metric's points: features (num_points, d) = mean |z1 − z2| over ``batch_size`` pairs that
    share factor k, labels (num_points,) = k. Public so that figures can show the points the metric sees."""
    num_factors = dataset.num_factors
    labels = rng.integers(0, num_factors, size=num_points)
    shape = (num_points, batch_size, num_factors)
    factors1 = np.array(dataset.sample_factors(num_points * batch_size, rng), dtype=np.int64).reshape(shape)
    factors2 = np.array(dataset.sample_factors(num_points * batch_size, rng), dtype=np.int64).reshape(shape)
    points_idx = np.arange(num_points)[:, None]
    pairs_idx = np.arange(batch_size)[None, :]
    factors2[points_idx, pairs_idx, labels[:, None]] = factors1[points_idx, pairs_idx, labels[:, None]]

    features = []
    points_per_call = max(1, max_images_per_call // (2 * batch_size))
    for start in range(0, num_points, points_per_call):
        stop = min(start + points_per_call, num_points)
        both = np.concatenate([factors1[start:stop].reshape(-1, num_factors),
                               factors2[start:stop].reshape(-1, num_factors)])
        codes = encode_factors(dataset, encode, both, max_images_per_call)
        z1, z2 = np.split(codes, 2)
        diff = np.abs(z1 - z2).reshape(stop - start, batch_size, -1)
        features.append(diff.mean(axis=1))
    widths = {f.shape[1] for f in features}
    if len(widths) != 1:
        raise ValueError(f"encode returned codes of varying width {sorted(widths)}")
    return np.concatenate(features), labels
