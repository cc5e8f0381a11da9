"""Stochastic binarisation of grey-level images for Bernoulli likelihoods.

Each pixel intensity p in [0, 1] is read as the probability of a 1, and x ~ Bernoulli(p).

* Static binarisation draws once and keeps the draw fixed, the "binarized MNIST" of Salakhutdinov &
  Murray (2008) / Larochelle & Murray (2011): a fixed seed makes it a reproducible dataset.
* Dynamic binarisation draws afresh every time a batch is seen (Burda, Grosse & Salakhutdinov 2016,
  IWAE), a data augmentation that reduces overfitting of the likelihood.
"""

from __future__ import annotations

import torch


def _check_probabilities(images: torch.Tensor) -> torch.Tensor:
    if not torch.is_floating_point(images):
        raise TypeError(f"images must be a float tensor in [0, 1], got {images.dtype}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError("images must lie in [0, 1] to be read as Bernoulli probabilities")
    return images


def _bernoulli(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # Uniforms are drawn on the CPU so a given seed gives the same bits on every device.
    uniforms = torch.rand(images.shape, generator=generator, dtype=torch.float32)
    return (uniforms.to(images.device) < images).to(images.dtype)


def binarize_static(images: torch.Tensor, seed: int) -> torch.Tensor:
    """One fixed Bernoulli draw of ``images`` (float in [0, 1]); the same seed gives identical output.

    Binarise the whole dataset in one call so each image keeps a single draw.
    """
    generator = torch.Generator().manual_seed(int(seed))
    return _bernoulli(_check_probabilities(images), generator)


def binarize_dynamic(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh Bernoulli draw of ``images`` (float in [0, 1]) each call, advancing ``generator``
    (torch's global generator when None)."""
    return _bernoulli(_check_probabilities(images), generator)
