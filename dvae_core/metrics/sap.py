"""Separated Attribute Predictability (SAP).

Definition: Kumar, Sattigeri & Balakrishnan (2018), "Variational Inference of Disentangled Latent
Concepts from Unlabeled Observations" (ICLR; arXiv:1711.00848), Sec. 3. A score matrix S (d code
dimensions × K factors) says how well each single dimension z_j predicts each factor v_k on its
own; per factor, the gap between the best and the second-best dimension is taken, and

    SAP = 1/K  Σ_k ( S_(1)[k] − S_(2)[k] ),

so 1 means every factor is predicted perfectly by one dimension and not at all by any other, and
0 that the two best dimensions are equally good. Like MIG it does not penalise one dimension
predicting several factors.

Estimator and defaults as disentanglement_lib computes them (Locatello et al. 2019,
``evaluation/metrics/sap_score.py``; ``config/unsupervised_study_v1/metric_configs/sap_score.gin``):
the factors are classes (``continuous_factors = False``); S[j, k] is the test accuracy of
scikit-learn's ``LinearSVC(C=0.01, class_weight="balanced")`` fitted on dimension j alone to predict
factor k, on ``num_train = 10000`` training and ``num_test = 5000`` fresh test points. With
``continuous_factors=True`` S[j, k] is instead the squared correlation of z_j and v_k over the
training points (0 where either is constant).

Departures, each deliberate:

* The SVC's ``random_state`` is fixed (0) so the score is a deterministic function of the points.
* A factor with one class in the training points is predicted exactly by every dimension, so its
  gap is 0 (scikit-learn would refuse to fit it).
* One code dimension (d = 1): the second-best score is taken to be 0, as for MIG here.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from dvae_core.metrics.dci import as_splits

#: disentanglement_lib ``sap_score.num_train`` / ``sap_score.num_test``.
DEFAULT_NUM_TRAIN, DEFAULT_NUM_TEST = 10000, 5000


def score_matrix(codes_train, factors_train, codes_test, factors_test,
                 continuous_factors: bool = False) -> np.ndarray:
    """S (d, K): test accuracy of a linear SVM on each single code dimension for each factor (or R² if continuous)."""
    codes_train, factors_train, codes_test, factors_test = as_splits(codes_train, factors_train, codes_test,
                                                                     factors_test)
    num_codes, num_factors = codes_train.shape[1], factors_train.shape[1]
    scores = np.zeros((num_codes, num_factors))
    for k in range(num_factors):
        y_train, y_test = factors_train[:, k], factors_test[:, k]
        constant = np.unique(y_train).size < 2
        for j in range(num_codes):
            if constant:
                scores[j, k] = 1.0
            elif continuous_factors:
                scores[j, k] = _squared_correlation(codes_train[:, j], y_train)
            else:
                with warnings.catch_warnings():  # at C = 0.01 liblinear often stops at its iteration cap, as there
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    svm = LinearSVC(C=0.01, class_weight="balanced", random_state=0)
                    svm.fit(codes_train[:, j:j + 1], y_train)
                scores[j, k] = float(np.mean(svm.predict(codes_test[:, j:j + 1]) == y_test))
    return scores


def sap(codes_train, factors_train, codes_test, factors_test, continuous_factors: bool = False) -> dict:
    """SAP of codes (n, d) with respect to integer factors (n, K): ``score``, ``per_factor`` (K,) and ``scores`` (d, K)."""
    scores = score_matrix(codes_train, factors_train, codes_test, factors_test, continuous_factors)
    ranked = np.sort(scores, axis=0)[::-1]
    second = ranked[1] if scores.shape[0] > 1 else np.zeros(scores.shape[1])
    per_factor = ranked[0] - second
    return {"score": float(per_factor.mean()), "per_factor": per_factor, "scores": scores}


def _squared_correlation(z: np.ndarray, v: np.ndarray) -> float:
    v = v.astype(np.float64)
    var_z, var_v = np.var(z, ddof=1), np.var(v, ddof=1)
    if var_z <= 0 or var_v <= 0:
        return 0.0
    cov = np.cov(z, v, ddof=1)[0, 1]
    return float(cov ** 2 / (var_z * var_v))
