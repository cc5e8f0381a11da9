"""Disentanglement metrics, one per module in the style of disentanglement_lib.

* :func:`mig` — Mutual Information Gap (Chen et al. 2018), on (codes, factors) arrays.
* :func:`dci` — Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018), on train/test codes.
* :func:`sap` — Separated Attribute Predictability (Kumar et al. 2018), on train/test codes.
* :func:`factor_vae_score` — FactorVAE metric (Kim & Mnih 2018), on a dataset + encoder.
* :func:`beta_vae_score` — beta-VAE metric (Higgins et al. 2017), on a dataset + encoder.
* :func:`gaussian_total_correlation` — Monte-Carlo TC of the aggregate posterior from codes' (mean, logvar).
* :func:`frechet_distance` / :func:`fid` — Fréchet (Inception) distance with pluggable features (RAE chapter).
* :func:`fit_latent_density` — ex-post densities of codes: N(0, I), one Gaussian, a 10-component GMM (RAE).
* :func:`importance_weighted_nll` — −log p(x) by importance sampling (Burda et al. 2016; VLAE chapter).
* :func:`sample_codes` / :func:`encode_factors` — batched rendering + encoding helpers
  (``mig(*sample_codes(dataset, encode, 10000, rng))`` is disentanglement_lib's MIG setting).

``python -m dvae_core.score`` computes all of them for a codes file or a run (:mod:`dvae_core.score`).

``encode`` is any callable ``torch (n, C, H, W) float32 → (n, d)`` codes (numpy or torch),
normally the posterior mean.
"""

from dvae_core.metrics.beta_vae_score import beta_vae_score
from dvae_core.metrics.dci import dci
from dvae_core.metrics.encode import encode_factors, encode_images, sample_codes
from dvae_core.metrics.factor_vae_score import factor_vae_score
from dvae_core.metrics.mig import histogram_discretize, mig
from dvae_core.metrics.density import fit_latent_density
from dvae_core.metrics.fid import feature_statistics, fid, frechet_distance, make_feature_extractor
from dvae_core.metrics.nll import importance_weighted_nll
from dvae_core.metrics.sap import sap
from dvae_core.metrics.total_correlation import gaussian_total_correlation

__all__ = ["beta_vae_score", "dci", "encode_factors", "encode_images", "factor_vae_score", "feature_statistics", "fid",
           "fit_latent_density", "frechet_distance", "gaussian_total_correlation", "histogram_discretize",
           "importance_weighted_nll", "make_feature_extractor", "mig", "sample_codes", "sap"]
