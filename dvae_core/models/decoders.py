"""Decoders p(x | z): the standard deconvolutional decoder and the Spatial Broadcast decoder.

Both map z (n, k) to per-pixel distribution parameters (n, C, H, W); the likelihood
(``dvae_core.models.likelihoods``) turns those into a log-probability.
"""

from __future__ import annotations

import torch
from torch import nn

from dvae_core.models.encoders import num_halvings


class DeconvDecoder(nn.Module):
    """The usual VAE decoder: MLP to a 4×4 feature map, then 4×4 stride-2 transposed
    convolutions doubling the resolution up to the image (the mirror of ``ConvEncoder``)."""

    def __init__(self, latent_dim: int, out_channels: int, resolution: int, channels: int = 64,
                 hidden: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, channels * 4 * 4), nn.ReLU()
        )
        stages = num_halvings(resolution)
        layers: list[nn.Module] = []
        for stage in range(stages):
            last = stage == stages - 1
            layers.append(nn.ConvTranspose2d(channels, out_channels if last else channels, 4, 2, 1))
            if not last:
                layers.append(nn.ReLU())
        self.deconvs = nn.Sequential(*layers)
        self.channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.mlp(z).view(-1, self.channels, 4, 4))


class SpatialBroadcastDecoder(nn.Module):
    r"""Watters et al. 2019, Spatial Broadcast decoder (their Fig. 1 and Appendix).

    .. math::  z_{sb} = \mathrm{tile}(z; H', W') \,\|\, X \,\|\, Y, \qquad
               \hat x = \mathrm{CNN}_{3\times3,\ \mathrm{stride}\ 1}(z_{sb})

    z is tiled over an H'×W' grid, two fixed coordinate channels X, Y (``linspace(-1, 1)``)
    are appended, and unstrided 3×3 convolutions (no upsampling) produce the image. Every output
    pixel sees the same z and its own coordinates, so expressing position is as simple as
    thresholding a coordinate: the architectural prior the paper credits for disentangling.

    ``padding="valid"`` is the paper's form: broadcast to (H + 2L, W + 2L) and let each of the L
    unpadded convolutions trim one pixel per side, so no zero-padding border breaks the
    translation symmetry. ``padding="same"`` broadcasts to (H, W) and pads instead (cheaper,
    used by some reimplementations).
    """

    def __init__(self, latent_dim: int, out_channels: int, resolution: int, channels: int = 64,
                 num_layers: int = 4, padding: str = "valid"):
        super().__init__()
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        margin = num_layers + 1 if padding == "valid" else 0  # +1: the output conv trims too
        self.grid = resolution + 2 * margin
        coords = torch.linspace(-1.0, 1.0, self.grid)
        y, x = torch.meshgrid(coords, coords, indexing="ij")
        self.register_buffer("coords", torch.stack([x, y])[None], persistent=False)
        pad = 0 if padding == "valid" else 1
        layers: list[nn.Module] = []
        width = latent_dim + 2
        for _ in range(num_layers):
            layers += [nn.Conv2d(width, channels, 3, padding=pad), nn.ReLU()]
            width = channels
        layers.append(nn.Conv2d(width, out_channels, 3, padding=pad))
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, k = z.shape
        tiled = z[:, :, None, None].expand(n, k, self.grid, self.grid)
        return self.convs(torch.cat([tiled, self.coords.expand(n, -1, -1, -1)], dim=1))
