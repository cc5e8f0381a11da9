"""Disentanglement metrics, one per module in the style of disentanglement_lib.

* :func:`mig` — Mutual Information Gap (Chen et al. 2018), on (codes, factors) arrays.
* :func:`factor_vae_score` — FactorVAE metric (Kim & Mnih 2018), on a dataset + encoder.
* :func:`beta_vae_score` — beta-VAE metric (Higgins et al. 2017), on a dataset + encoder.
* :func:`gaussian_total_correlation` — Monte-Carlo TC of the aggregate posterior from codes' (mean, logvar).
* :func:`sample_codes` / :func:`encode_factors` — batched rendering + encoding helpers
  (``mig(*sample_codes(dataset, encode, 10000, rng))`` is disentanglement_lib's MIG setting).

``encode`` is any callable ``torch (n, C, H, W) float32 → (n, d)`` codes (numpy or torch),
normally the posterior mean.
"""

from dvae_core.metrics.beta_vae_score import beta_vae_score
from dvae_core.metrics.encode import encode_factors, encode_images, sample_codes
from dvae_core.metrics.factor_vae_score import factor_vae_score
from dvae_core.metrics.mig import histogram_discretize, mig
from dvae_core.metrics.total_correlation import gaussian_total_correlation

__all__ = ["beta_vae_score", "encode_factors", "encode_images", "factor_vae_score",
           "gaussian_total_correlation", "histogram_discretize", "mig", "sample_codes"]
