r"""The β-VAE (Higgins et al. 2017) with a choice of decoder, configured by a small dataclass.

.. math::  \mathcal L(x) = \mathbb E_{q(z|x)}[-\log p(x|z)] + \beta\, \mathrm{KL}(q(z|x)\,\|\,\mathcal N(0, I))

β = 1 is the ordinary VAE (the negative ELBO). ``loss`` returns every term so the training loop
can log them and name the one that went non-finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from dvae_core.models.decoders import DeconvDecoder, SpatialBroadcastDecoder
from dvae_core.models.encoders import ConvEncoder
from dvae_core.models.likelihoods import make_likelihood

Decoder = Literal["deconv", "sb"]    # deconvolutional, or spatial broadcast (Watters et al. 2019)
DECODERS = get_args(Decoder)


@dataclass(frozen=True)
class VAEConfig:
    decoder: Decoder = "deconv"
    latent_dim: int = 10
    in_channels: int = 3
    resolution: int = 64
    encoder_channels: int = 64
    decoder_channels: int = 64
    hidden: int = 256
    sb_layers: int = 4
    sb_padding: Literal["valid", "same"] = "valid"
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    gaussian_std: float = 0.1


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per latent dimension, shape (n, k)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


class VAE(nn.Module):
    def __init__(self, config: VAEConfig):
        super().__init__()
        if config.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {config.decoder!r}: choose one of {DECODERS}")
        self.config = config
        self.encoder = ConvEncoder(config.in_channels, config.resolution, config.latent_dim,
                                   config.encoder_channels, config.hidden)
        if config.decoder == "sb":
            self.decoder = SpatialBroadcastDecoder(config.latent_dim, config.in_channels, config.resolution,
                                                   config.decoder_channels, config.sb_layers, config.sb_padding)
        else:
            self.decoder = DeconvDecoder(config.latent_dim, config.in_channels, config.resolution,
                                         config.decoder_channels, config.hidden)
        self.likelihood = make_likelihood(config.likelihood, config.gaussian_std)

    def vae_parameters(self):
        """What the main optimiser trains (subclasses with their own critics leave those out)."""
        return self.parameters()

    def auxiliary_optimizer(self) -> torch.optim.Optimizer | None:
        """An optimiser for a second network trained beside the VAE, if the objective has one."""
        return None

    def auxiliary_step(self, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image of p(x | z), in [0, 1]."""
        return self.likelihood.mean(self.decoder(z))

    def loss(self, x: torch.Tensor, beta: float = 1.0, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``noise``: the reparameterisation's standard normal draws, shape (n, latent_dim); None draws them
        from torch's generator. An ensemble (:mod:`dvae_core.ensemble`) passes each member's own."""
        mean, logvar = self.encoder(x)
        noise = torch.randn_like(mean) if noise is None else noise
        z = mean + noise * (0.5 * logvar).exp()
        recon = self.likelihood.nll(self.decoder(z), x).mean()
        kl = gaussian_kl(mean, logvar).sum(1).mean()
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl}
