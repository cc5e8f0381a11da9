"""The FactorVAE disentanglement metric.

Definition: Kim & Mnih (2018), "Disentangling by Factorising" (ICML; arXiv:1802.05983),
section "A New Metric for Disentanglement". One *vote*: choose a factor k uniformly at random; sample
``batch_size`` points with factor k fixed to one random value for the whole batch and the other
factors free; encode them; divide each code dimension's empirical variance over the batch by its
*global* variance over the data (so rescaling a dimension changes nothing); the dimension with the
smallest normalised variance, d*, gives the vote (d*, k). Dimensions that carry (almost) no
variance over the data are pruned first, otherwise a collapsed dimension would win every argmin.
The classifier is the majority-vote one, the only optimal classifier for this input: each
dimension d predicts ``argmax_k V[k, d]`` over the training votes V; accuracy is the fraction of
votes (train: the same votes; eval: fresh ones) whose k the classifier predicts.

Unlike the beta-VAE metric there are no free classifier parameters, and a factor that is not
captured by a dimension of its own cannot be "detected by elimination": its votes land on
dimensions that other factors own, and are counted wrong.

Implementation and defaults follow disentanglement_lib (Locatello et al. 2019,
``evaluation/metrics/factor_vae.py``; ``config/unsupervised_study_v1/metric_configs/
factor_vae_metric.gin``): ``batch_size = 64``, ``num_train = 10000``, ``num_eval = 5000``,
``num_variance_estimate = 10000``, ``prune_dims.threshold = 0.05``. Global variances are
``np.var(codes, ddof=1)`` of ``num_variance_estimate`` uniformly sampled images, a dimension is
active iff ``sqrt(global_variance) >= prune_threshold``, local variances use ``ddof=1``, the
argmin runs over active dimensions only (ties → lowest index, ``np.argmin``), classifier ties →
lowest factor index (``np.argmax``), and a dimension with no training votes predicts factor 0.
With no active dimension the result is accuracies 0 and ``num_active_dims`` 0, as there.

Deliberate differences:

* ``num_active_dims`` is the number of active dimensions. (disentanglement_lib returns
  ``len(active_dims)`` of a boolean mask, i.e. the total number of dimensions.)
* A dimension with zero global variance is never active, even with ``prune_threshold = 0``
  (disentanglement_lib would divide 0 by 0 there and let the NaN win the argmin).
* Speed: votes are drawn all at once and rendered/encoded many votes per ``encode`` call (at most
  ``max_images_per_call`` images) instead of one 64-image call per vote. The random stream is
  consumed in a fixed order (factor choices, then all factor points; first for the variance
  estimate, then the training votes, then the evaluation votes), so the result is a deterministic
  function of the ``rng`` state and does not depend on ``max_images_per_call``. It does not
  reproduce disentanglement_lib's stream (which is a ``np.random.RandomState``).

The ``encode`` callable should be deterministic (the posterior mean), see
:mod:`dvae_core.metrics.encode`.
"""

from __future__ import annotations

import numpy as np

from dvae_core.data.base import FactorDataset
from dvae_core.metrics.encode import (DEFAULT_MAX_IMAGES_PER_CALL, Encoder, _check_positive_int,
                                      encode_factors)


def factor_vae_score(dataset: FactorDataset, encode: Encoder, rng: np.random.Generator,
                     batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000,
                     num_variance_estimate: int = 10000, prune_threshold: float = 0.05, *,
                     max_images_per_call: int = DEFAULT_MAX_IMAGES_PER_CALL) -> dict:
    """FactorVAE metric (Kim & Mnih 2018) of ``encode`` on ``dataset``; disentanglement_lib defaults.

    ``rng`` is a ``np.random.Generator`` (an int seed is accepted too). Returns a dict with
    ``train_accuracy``, ``eval_accuracy`` (floats in [0, 1]) and ``num_active_dims`` (int), plus
    diagnostics: ``active_dims`` (bool (d,)), ``global_variances`` ((d,)), ``train_votes`` and
    ``eval_votes`` ((K, d) counts V[k, dim], zero columns for pruned dims) and ``classifier``
    ((d,) predicted factor per dimension, -1 for pruned dims). All empty/None when no dimension
    is active.
    """
    rng = _as_generator(rng)
    for value, name in ((batch_size, "batch_size"), (num_variance_estimate, "num_variance_estimate")):
        _check_positive_int(value, name)
        if value < 2:
            raise ValueError(f"{name} must be >= 2 (variances use ddof=1), got {value}")
    _check_positive_int(num_train, "num_train")
    _check_positive_int(num_eval, "num_eval")
    _check_positive_int(max_images_per_call, "max_images_per_call")
    if not np.isfinite(prune_threshold) or prune_threshold < 0:
        raise ValueError(f"prune_threshold must be a finite number >= 0, got {prune_threshold!r}")

    var_codes = encode_factors(dataset, encode, dataset.sample_factors(num_variance_estimate, rng),
                               max_images_per_call)
    global_variances = np.var(var_codes, axis=0, ddof=1)
    # `> 0` only matters for prune_threshold = 0: a constant dimension would give 0/0 = NaN ratios.
    active = (np.sqrt(global_variances) >= prune_threshold) & (global_variances > 0)
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0,
                "active_dims": active, "global_variances": global_variances,
                "train_votes": None, "eval_votes": None, "classifier": None}

    args = (dataset, encode, rng, batch_size, global_variances, active, max_images_per_call)
    train_votes = _generate_votes(*args, num_votes=num_train)
    classifier = np.argmax(train_votes, axis=0)  # (num_active,), ties → lowest factor index
    columns = np.arange(train_votes.shape[1])
    train_accuracy = train_votes[classifier, columns].sum() / train_votes.sum()
    eval_votes = _generate_votes(*args, num_votes=num_eval)
    eval_accuracy = eval_votes[classifier, columns].sum() / eval_votes.sum()

    def full(votes: np.ndarray) -> np.ndarray:  # active columns back to original dim positions
        out = np.zeros((votes.shape[0], active.size), dtype=np.int64)
        out[:, active] = votes
        return out

    full_classifier = np.full(active.size, -1, dtype=np.int64)
    full_classifier[active] = classifier
    return {"train_accuracy": float(train_accuracy), "eval_accuracy": float(eval_accuracy),
            "num_active_dims": int(active.sum()), "active_dims": active,
            "global_variances": global_variances, "train_votes": full(train_votes),
            "eval_votes": full(eval_votes), "classifier": full_classifier}


def _generate_votes(dataset: FactorDataset, encode: Encoder, rng: np.random.Generator, batch_size: int,
                    global_variances: np.ndarray, active: np.ndarray, max_images_per_call: int,
                    num_votes: int) -> np.ndarray:
    """Vote counts V (K, num_active): V[k, j] = how often fixing factor k made active dim j the argmin."""
    num_factors = dataset.num_factors
    factor_index = rng.integers(0, num_factors, size=num_votes)
    factors = vote_points(dataset, factor_index, batch_size, rng)

    votes = np.zeros((num_factors, int(active.sum())), dtype=np.int64)
    votes_per_call = max(1, max_images_per_call // batch_size)
    for start in range(0, num_votes, votes_per_call):
        stop = min(start + votes_per_call, num_votes)
        flat = factors[start:stop].reshape(-1, num_factors)
        codes = encode_factors(dataset, encode, flat, max_images_per_call)
        if codes.shape[1] != global_variances.size:
            raise ValueError(f"encode returned {codes.shape[1]} dims, earlier {global_variances.size}")
        batches = codes.reshape(stop - start, batch_size, -1)[:, :, active]
        argmin = np.argmin(normalised_variances(batches, global_variances[active]), axis=1)
        np.add.at(votes, (factor_index[start:stop], argmin), 1)
    return votes


def vote_points(dataset: FactorDataset, factor_index: np.ndarray, batch_size: int,
                rng: np.random.Generator) -> np.ndarray:
    """The factor points of one vote per entry of ``factor_index``, shape (votes, batch_size, K): uniform
    draws with factor ``factor_index[v]`` fixed, for the whole batch, to the value of its first point."""
    num_votes, num_factors = len(factor_index), dataset.num_factors
    factors = np.array(dataset.sample_factors(num_votes * batch_size, rng), dtype=np.int64)
    factors = factors.reshape(num_votes, batch_size, num_factors)
    votes_idx = np.arange(num_votes)
    factors[votes_idx[:, None], np.arange(batch_size)[None, :], factor_index[:, None]] = \
        factors[votes_idx, 0, factor_index][:, None]
    return factors


def normalised_variances(batches: np.ndarray, global_variances: np.ndarray) -> np.ndarray:
    """(votes, d): each dimension's variance (ddof=1) over each vote's batch of codes (votes, batch_size, d),
    divided by its global variance; a vote goes to the argmin."""
    return batches.var(axis=1, ddof=1) / global_variances


def _as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator (or an int seed), got {type(rng).__name__}")
