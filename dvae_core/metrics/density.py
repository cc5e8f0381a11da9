r"""Ex-post density estimation in latent space: how a deterministic autoencoder becomes a generator.

Ghosh, Sajjadi, Vergari, Black & Schölkopf (2020), "From Variational to Deterministic
Autoencoders" (ICLR; arXiv:1903.12436), Sec. 4: an RAE has no prior to sample from, so after
training a density q_δ(z) is fitted to the codes of the training set, and new images are decoded
from z ~ q_δ. Table 1 compares three choices of q_δ, all here as Gaussian mixtures:

* ``"normal"`` — N(0, I), nothing fitted: the prior a VAE samples from, and what an RAE gets if
  one pretends it had a prior.
* ``"gaussian"`` — one full-covariance Gaussian fitted to the codes by maximum likelihood (the
  paper's "N" column for RAEs and AEs).
* ``"gmm"`` — a 10-component full-covariance Gaussian mixture fitted by EM (the "GMM" column),
  with the official code's settings (``my_utility/estimate_density_and_sample.py``:
  ``GaussianMixture(n_components=10, covariance_type='full', max_iter=2000, tol=1e-3)``),
  seeded here for determinism.

The fitted Gaussian is what a one-component ``GaussianMixture`` would give — the codes' mean and
their maximum-likelihood (biased) covariance plus scikit-learn's ``reg_covar`` = 1e-6 on the
diagonal, which keeps it positive definite when the codes span fewer than d dimensions.

Sampling uses the caller's ``np.random.Generator`` rather than scikit-learn's ``sample`` (which
draws from the estimator's own ``random_state`` and returns the samples sorted by component), so
a notebook controls every random draw from one seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.special
import torch
from sklearn.mixture import GaussianMixture

from dvae_core.metrics.encode import as_codes

DENSITY_KINDS = ("normal", "gaussian", "gmm")
#: Components of the ex-post GMM (Ghosh et al. 2020, Sec. 4 and Table 1).
GMM_COMPONENTS = 10
#: scikit-learn's ``GaussianMixture`` default ``reg_covar``, also used for the single Gaussian.
REG_COVAR = 1e-6
#: The official code's EM settings.
GMM_MAX_ITER = 2000
GMM_TOL = 1e-3


@dataclass(frozen=True, eq=False)
class LatentDensity:
    """A full-covariance Gaussian mixture over codes: ``weights`` (K,), ``means`` (K, d), ``covariances`` (K, d, d).

    ``kind`` records how it was obtained (one of ``DENSITY_KINDS``); ``"normal"`` and
    ``"gaussian"`` are the one-component case. The parameters are what a 2-D plot of the
    components needs (e.g. an ellipse per component at its mean).
    """

    kind: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        return self.weights.shape[0]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` codes (n, d) float64 drawn with ``rng``: a component per row, then mean + L·ε (Σ = LLᵀ)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        component = rng.choice(self.num_components, size=n, p=self.weights)
        noise = rng.standard_normal((n, self.dim))
        out = np.empty((n, self.dim))
        for k, cholesky in enumerate(self._choleskys()):
            rows = component == k
            out[rows] = self.means[k] + noise[rows] @ cholesky.T
        return out

    def log_prob(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Log-density (n,) of codes ``z`` (n, d), in nats."""
        z = as_codes(z, name="z")
        if z.shape[1] != self.dim:
            raise ValueError(f"z has {z.shape[1]} dimensions but the density has {self.dim}")
        log_terms = np.empty((z.shape[0], self.num_components))
        for k, cholesky in enumerate(self._choleskys()):
            whitened = scipy.linalg.solve_triangular(cholesky, (z - self.means[k]).T, lower=True)
            log_det = 2.0 * np.log(np.diagonal(cholesky)).sum()
            log_terms[:, k] = (math.log(self.weights[k])
                               - 0.5 * (self.dim * math.log(2.0 * math.pi) + log_det + (whitened ** 2).sum(axis=0)))
        return scipy.special.logsumexp(log_terms, axis=1)

    def _choleskys(self) -> list[np.ndarray]:
        return [np.linalg.cholesky(cov) for cov in self.covariances]


def fit_latent_density(codes: np.ndarray | torch.Tensor, kind: str = "gmm", seed: int = 0,
                       num_components: int = GMM_COMPONENTS) -> LatentDensity:
    """Fit the ex-post density ``kind`` (``"normal"``, ``"gaussian"`` or ``"gmm"``) to ``codes`` (n, d).

    ``seed`` seeds the GMM's k-means initialisation (the other two fits are deterministic);
    ``num_components`` concerns the GMM only. For ``"normal"`` only the codes' width is used.
    """
    codes = as_codes(codes, name="codes")
    num_codes, dim = codes.shape
    if kind == "normal":
        return LatentDensity(kind, np.ones(1), np.zeros((1, dim)), np.eye(dim)[None])
    if kind == "gaussian":
        if num_codes < 2:
            raise ValueError(f"fitting a Gaussian needs at least 2 codes, got {num_codes}")
        covariance = np.atleast_2d(np.cov(codes, rowvar=False, bias=True)) + REG_COVAR * np.eye(dim)
        return LatentDensity(kind, np.ones(1), codes.mean(axis=0)[None], covariance[None])
    if kind == "gmm":
        if num_codes < num_components:
            raise ValueError(f"a {num_components}-component GMM needs at least {num_components} codes, got {num_codes}")
        mixture = GaussianMixture(n_components=num_components, covariance_type="full", max_iter=GMM_MAX_ITER,
                                  tol=GMM_TOL, reg_covar=REG_COVAR, random_state=seed).fit(codes)
        return LatentDensity(kind, mixture.weights_, mixture.means_, mixture.covariances_)
    raise ValueError(f"unknown density kind {kind!r}: choose one of {', '.join(DENSITY_KINDS)}")
