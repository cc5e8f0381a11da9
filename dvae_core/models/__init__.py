"""Models, one idea per file: encoders, decoders, likelihoods, the β-VAE, FactorVAE, the RAE family,
and the VLAE's PixelCNN, MADE and flows."""

from dvae_core.models.decoders import DeconvDecoder, SpatialBroadcastDecoder
from dvae_core.models.encoders import ConvEncoder
from dvae_core.models.factor_vae import Discriminator, FactorVAE, FactorVAEConfig, FactorVAEModelConfig, permute_dims
from dvae_core.models.likelihoods import Bernoulli, FixedGaussian, make_likelihood
from dvae_core.models.flows import AutoregressiveFlowPrior, IAFPosterior
from dvae_core.models.made import MADE
from dvae_core.models.pixelcnn import PixelCNN, PixelCNNConfig
from dvae_core.models.rae import RAEConfig, RegularizedAE
from dvae_core.models.vlae import VLAE, VLAEConfig
from dvae_core.models.vae import DECODERS, VAE, VAEConfig, gaussian_kl

__all__ = ["ConvEncoder", "DeconvDecoder", "SpatialBroadcastDecoder", "Bernoulli", "FixedGaussian",
           "make_likelihood", "VAE", "VAEConfig", "DECODERS", "gaussian_kl", "Discriminator", "FactorVAE",
           "FactorVAEConfig", "FactorVAEModelConfig", "permute_dims", "RAEConfig", "RegularizedAE", "PixelCNN", "PixelCNNConfig", "MADE",
           "IAFPosterior", "AutoregressiveFlowPrior", "VLAE", "VLAEConfig"]
