"""Per-pixel likelihoods p(x | decoder output), summed over pixels: −log p(x | z) in nats per image.

Bernoulli (logits) is disentanglement_lib's default for dSprites-like data and works for
grey levels in [0, 1] as a cross-entropy; the Gaussian has a fixed standard deviation, so the
decoder predicts only the mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Bernoulli:
    name = "bernoulli"

    def nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)


class FixedGaussian:
    name = "gaussian"

    def __init__(self, std: float = 0.1):
        self.std = std

    def nll(self, mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        per_pixel = 0.5 * ((x - mean) / self.std) ** 2 + math.log(self.std) + 0.5 * math.log(2 * math.pi)
        return per_pixel.flatten(1).sum(1)

    def mean(self, output: torch.Tensor) -> torch.Tensor:
        return output.clamp(0, 1)


def make_likelihood(name: str, std: float = 0.1):
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return FixedGaussian(std)
    raise ValueError(f"unknown likelihood {name!r}: use 'bernoulli' or 'gaussian'")
