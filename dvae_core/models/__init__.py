"""Models, one idea per file: encoders, decoders, likelihoods, and the β-VAE."""

from dvae_core.models.decoders import DeconvDecoder, SpatialBroadcastDecoder
from dvae_core.models.encoders import ConvEncoder
from dvae_core.models.factor_vae import Discriminator, FactorVAE, FactorVAEConfig, permute_dims
from dvae_core.models.likelihoods import Bernoulli, FixedGaussian, make_likelihood
from dvae_core.models.vae import DECODERS, VAE, VAEConfig, gaussian_kl

__all__ = ["ConvEncoder", "DeconvDecoder", "SpatialBroadcastDecoder", "Bernoulli", "FixedGaussian",
           "make_likelihood", "VAE", "VAEConfig", "DECODERS", "gaussian_kl", "Discriminator", "FactorVAE",
           "FactorVAEConfig", "permute_dims"]
