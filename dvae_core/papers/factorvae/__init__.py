"""Disentangling by Factorising (Kim & Mnih, ICML 2018, arXiv:1802.05983).

The FactorVAE chapter's experiments: :mod:`.metric` (the β-VAE and FactorVAE metrics on
constructed codes, Sec. 4) and :mod:`.tradeoff` (the β-VAE vs FactorVAE trade-off, the
discriminator's TC against the true TC, InfoWGAN-GP). The model itself is
:mod:`dvae_core.models.factor_vae`.
"""
