"""Disentanglement, Completeness and Informativeness (DCI).

Definition: Eastwood & Williams (2018), "A Framework for the Quantitative Evaluation of
Disentangled Representations" (ICLR). For each ground-truth factor v_k a regressor predicts v_k
from the whole code z; its feature importances give the column R[:, k] of an importance matrix
R (d code dimensions × K factors). With P[j, k] = R[j, k] / Σ_k' R[j, k'] (code j's importance
spread over the factors) and P̃[j, k] = R[j, k] / Σ_j' R[j', k] (factor k's spread over the codes):

    disentanglement = Σ_j ρ_j (1 − H_K(P[j, :])),   ρ_j = Σ_k R[j, k] / Σ R   (code j's share),
    completeness    = Σ_k ρ̃_k (1 − H_d(P̃[:, k])),   ρ̃_k = Σ_j R[j, k] / Σ R   (factor k's share),
    informativeness = the regressors' mean accuracy on held-out points,

with entropies in base K and base d, so both scores lie in [0, 1]: disentanglement 1 when each
code dimension matters for one factor only, completeness 1 when each factor is read from one
dimension only.

Estimator and defaults as disentanglement_lib computes them (Locatello et al. 2019,
``evaluation/metrics/dci.py``; ``config/unsupervised_study_v1/metric_configs/dci.gin``): the
regressors are scikit-learn's ``GradientBoostingClassifier()`` with its defaults (the factors are
classes), one per factor, fitted on ``num_train = 10000`` points and tested on ``num_test = 5000``
fresh ones; R[:, k] = |feature_importances_|; an entropy is ``scipy.stats.entropy(p + 1e-11, base)``;
a matrix that is all zeros gives every code the same weight ρ_j = 1/d; informativeness is reported
on both splits (disentanglement_lib's ``informativeness_train`` / ``_test``).

Departures, each deliberate:

* The classifier's ``random_state`` is fixed (0), so a score is a deterministic function of the
  points; disentanglement_lib leaves it unset (its GBT subsamples nothing by default, so only its
  tie-breaking between equally good splits could differ).
* A factor with one class in the training points cannot be classified; its importances are zero
  and its accuracy is 1 (it is predicted exactly), instead of scikit-learn's error.
* A single code dimension (d = 1) has entropy 0 in base 1 by convention, so completeness is 1.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier

from dvae_core.metrics.encode import as_codes
from dvae_core.metrics.mig import _as_factors

#: disentanglement_lib ``dci.num_train`` / ``dci.num_test``.
DEFAULT_NUM_TRAIN, DEFAULT_NUM_TEST = 10000, 5000


def importance_matrix(codes_train, factors_train, codes_test, factors_test,
                      classifier=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R (d, K) of |feature importances| of one classifier per factor, and its train and test accuracies (K,).

    ``classifier`` makes a fresh scikit-learn classifier with ``feature_importances_`` (default
    ``GradientBoostingClassifier(random_state=0)``).
    """
    codes_train, factors_train, codes_test, factors_test = as_splits(codes_train, factors_train, codes_test,
                                                                     factors_test)
    make = classifier or (lambda: GradientBoostingClassifier(random_state=0))
    num_codes, num_factors = codes_train.shape[1], factors_train.shape[1]
    importance = np.zeros((num_codes, num_factors))
    train_acc, test_acc = np.ones(num_factors), np.ones(num_factors)
    for k in range(num_factors):
        classes = np.unique(factors_train[:, k])
        if classes.size < 2:  # a constant factor: predicted exactly, read from no dimension
            test_acc[k] = float(np.mean(factors_test[:, k] == classes[0]))
            continue
        model = make().fit(codes_train, factors_train[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train_acc[k] = float(np.mean(model.predict(codes_train) == factors_train[:, k]))
        test_acc[k] = float(np.mean(model.predict(codes_test) == factors_test[:, k]))
    return importance, train_acc, test_acc


def _weighted_specificity(importance: np.ndarray, over: int) -> float:
    """Σ_i w_i (1 − H(P_i)) over the rows (``over=1``: each code's spread over the factors) or the columns
    (``over=0``: each factor's spread over the codes) of R, weighted by their shares of R's total, with the
    entropy in base the number of entries spread over."""
    importance = np.asarray(importance, dtype=np.float64)
    spread = importance if over == 1 else importance.T  # one row per code (or factor)
    base = spread.shape[1]
    specificity = np.ones(spread.shape[0]) if base == 1 else 1.0 - entropy(spread.T + 1e-11, base=base)
    total = spread.sum()
    weights = spread.sum(axis=1) / total if total > 0 else np.full(spread.shape[0], 1 / spread.shape[0])
    return float(np.sum(specificity * weights))


def disentanglement(importance: np.ndarray) -> float:
    """Σ_j ρ_j (1 − H_K(P[j, :])): each code dimension's specificity to one factor, weighted by its share."""
    return _weighted_specificity(importance, over=1)


def completeness(importance: np.ndarray) -> float:
    """Σ_k ρ̃_k (1 − H_d(P̃[:, k])): how much each factor is read from a single dimension, weighted by its share."""
    return _weighted_specificity(importance, over=0)


def dci(codes_train, factors_train, codes_test, factors_test, classifier=None) -> dict:
    """DCI of codes (n, d) with respect to integer factors (n, K), on a train and a test split.

    Returns ``disentanglement``, ``completeness``, ``informativeness_train``, ``informativeness_test``
    (floats) and ``importance`` (d, K).
    """
    importance, train_acc, test_acc = importance_matrix(codes_train, factors_train, codes_test, factors_test,
                                                        classifier)
    return {"disentanglement": disentanglement(importance), "completeness": completeness(importance),
            "informativeness_train": float(train_acc.mean()), "informativeness_test": float(test_acc.mean()),
            "importance": importance}


def as_splits(codes_train, factors_train, codes_test, factors_test):
    """The training and test points of a metric fitted on one split and scored on the other (DCI, SAP): codes
    as float64 (n, d) and factors as int64 (n, K), checked to match in rows within a split and in widths
    across the two."""
    codes_train, codes_test = as_codes(codes_train, name="codes_train"), as_codes(codes_test, name="codes_test")
    factors_train, factors_test = _as_factors(factors_train), _as_factors(factors_test)
    for split, codes, factors in (("train", codes_train, factors_train), ("test", codes_test, factors_test)):
        if codes.shape[0] != factors.shape[0]:
            raise ValueError(f"codes_{split} and factors_{split} must have the same number of rows, "
                             f"got {codes.shape[0]} and {factors.shape[0]}")
    if codes_train.shape[1] != codes_test.shape[1] or factors_train.shape[1] != factors_test.shape[1]:
        raise ValueError(f"train and test differ in width: codes {codes_train.shape[1]} vs {codes_test.shape[1]}, "
                         f"factors {factors_train.shape[1]} vs {factors_test.shape[1]}")
    return codes_train, factors_train, codes_test, factors_test
