"""The Gaussian convolutional encoder q(z | x) shared by every VAE in the book.

Architecture as in Watters et al. 2019 (Spatial Broadcast Decoder, Appendix: encoder): a stack
of 4×4 stride-2 convolutions halving the resolution down to 4×4, then an MLP to the mean and
log-variance of a diagonal Gaussian. At 64×64 with 64 channels and 256 hidden units this is
the paper's encoder; smaller profiles shrink the widths, never the idea.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def num_halvings(resolution: int, final: int = 4) -> int:
    """How many stride-2 stages take ``resolution`` down to ``final`` (both powers of two)."""
    stages = math.log2(resolution / final)
    if resolution < final or stages != int(stages):
        raise ValueError(f"resolution must be {final}·2^k (e.g. 32 or 64), got {resolution}")
    return int(stages)


class ConvEncoder(nn.Module):
    """x (n, C, H, W) in [0, 1] → (mean, logvar), each (n, latent_dim)."""

    def __init__(self, in_channels: int, resolution: int, latent_dim: int, channels: int = 64,
                 hidden: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for _ in range(num_halvings(resolution)):
            layers += [nn.Conv2d(width, channels, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            width = channels
        self.convs = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.mlp(self.convs(x)).chunk(2, dim=1)
        return mean, logvar
