r"""The Variational Lossy Autoencoder (Chen, Kingma, Salimans, Duan, Dhariwal, Schulman, Sutskever
& Abbeel, ICLR 2017, arXiv:1611.02731) for binary images, and the baselines it is compared with.

A VAE whose decoder is autoregressive, :math:`p(x \mid z) = \prod_i p(x_i \mid x_{<i}, z)`, trained
on the usual bound

.. math::  \log p(x) \ge \mathbb E_{q(z|x)}\big[\log p(x \mid z)\big]
           - \mathbb E_{q(z|x)}\big[\log q(z \mid x) - \log p(z)\big] .

Sec. 2 of the paper (bits-back coding): information the decoder can model from :math:`x_{<i}` costs
less there than in z, so z only carries what the decoder *cannot* see. A PixelCNN with a small
receptive field (:mod:`dvae_core.models.pixelcnn`) sees local texture, so z is left with the
global structure: a *lossy* code. Sec. 3.2 adds a learned autoregressive-flow prior
(:class:`~dvae_core.models.flows.AutoregressiveFlowPrior`), which lowers the cost of every nat z
carries. Each piece is switchable, giving the paper's MNIST comparisons (its NLL table and Appendix D):

* ``decoder``: ``"pixelcnn"`` or ``"factorized"`` (independent Bernoulli pixels, the plain VAE);
* ``prior``: ``"af"`` or ``"gaussian"`` (N(0, I));
* ``posterior``: ``"gaussian"`` (diagonal) or ``"iaf"`` (IAF on top of it, Kingma et al. 2016);
* ``unconditional=True``: the PixelCNN alone, no latent (KL = 0, the paper's 87.55-nat baseline).

Networks. The encoder is two 4×4 stride-2 convolutions and a dense layer (plainer than the
paper's networks: the decoder is what the chapter varies); its features are the IAF context h.
The decoder starts with a dense layer of z and two 4×4 stride-2 transposed convolutions back to
the image size. With
``decoder="factorized"`` that network outputs the Bernoulli logits; with ``"pixelcnn"`` it outputs a
``decoder_channels``-channel map which conditions every PixelCNN layer through a 1×1 projection,
so the two decoders differ only by the autoregressive part. ELU throughout, as in the IAF paper.

Units: every term is in nats per image. The KL reported is the single-sample Monte-Carlo estimate
:math:`\log q(z \mid x) - \log p(z)` at the z used for the reconstruction (exact KLs do not exist
for the flows). **Free bits** (Kingma et al. 2016, with a single group): the objective replaces the
minibatch-mean KL by :math:`\max(\mathrm{KL}, \lambda D)` with D = C·H·W data dimensions and
λ = ``free_bits`` in nats per data dimension (the paper's 0.01, i.e. a floor of 7.84 nats per
28×28 image); below the floor the KL gets no gradient, so the encoder is free to use z.

Colour (Sec. 3, Fig. 3(d)). With ``in_channels=3`` the images are RGB intensities in [0, 1] and the
likelihood stays the Bernoulli cross-entropy, one per channel (see "Colour" in
:mod:`dvae_core.models.pixelcnn`). ``vlae_config("gray", ...)`` (a :class:`GrayContextVLAEConfig`, model kind
``"vlae_gray"``) restricts the PixelCNN's autoregressive input to the luminance of the pixels
already generated while it still predicts the three channels of each pixel, so colour can only
come from z. The full context is ``VLAEConfig`` itself, whose fields (and so the run hashes of every
existing VLAE) are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from dvae_core.models.flows import AutoregressiveFlowPrior, IAFPosterior, standard_normal_log_prob
from dvae_core.models.likelihoods import Bernoulli
from dvae_core.models.pixelcnn import PixelCNN, PixelCNNConfig

VLAEDecoder = Literal["pixelcnn", "factorized"]
VLAE_DECODERS = get_args(VLAEDecoder)
Prior = Literal["af", "gaussian"]
PRIORS = get_args(Prior)
Posterior = Literal["gaussian", "iaf"]
POSTERIORS = get_args(Posterior)
#: What the PixelCNN reads of the pixels already generated: all their channels, or their luminance only.
Context = Literal["full", "gray"]
CONTEXTS = get_args(Context)


@dataclass(frozen=True)
class VLAEConfig:
    kind: str = "vlae"
    latent_dim: int = 64
    in_channels: int = 1
    resolution: int = 28            # any multiple of 4
    encoder_channels: int = 32      # the encoder has C and 2C channels
    decoder_channels: int = 32      # width of the transposed convolutions and of the conditioning map
    hidden: int = 256               # dense layers of encoder and decoder
    decoder: VLAEDecoder = "pixelcnn"
    prior: Prior = "af"
    posterior: Posterior = "gaussian"
    pixelcnn_layers: int = 6
    pixelcnn_channels: int = 12
    pixelcnn_kernel: int = 3
    pixelcnn_window: tuple = ()     # (A, B): an exact A×B receptive field instead of the stacked one
    flow_steps: int = 4
    flow_hidden: int = 640
    flow_hidden_layers: int = 2     # "3-layer MADE": three weight layers
    free_bits: float = 0.01         # nats per data dimension, floor on the minibatch-mean KL
    unconditional: bool = False     # PixelCNN only: no latent, KL = 0
    context = "full"                # not a field (recipes and hashes unchanged): GrayContextVLAEConfig's is "gray"

    def __post_init__(self):
        for name, value, allowed in (("decoder", self.decoder, VLAE_DECODERS), ("prior", self.prior, PRIORS),
                                     ("posterior", self.posterior, POSTERIORS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: choose one of {allowed}")
        if self.unconditional and self.decoder != "pixelcnn":
            raise ValueError("unconditional=True is a PixelCNN without a latent: it needs decoder='pixelcnn'")
        if self.resolution % 4:
            raise ValueError(f"resolution must be a multiple of 4 (two stride-2 stages), got {self.resolution}")

    def pixelcnn(self) -> PixelCNNConfig:
        return PixelCNNConfig(self.pixelcnn_layers, self.pixelcnn_channels, self.pixelcnn_kernel,
                              tuple(self.pixelcnn_window))

    @property
    def data_dims(self) -> int:
        return self.in_channels * self.resolution ** 2


@dataclass(frozen=True)
class GrayContextVLAEConfig(VLAEConfig):
    """A VLAE whose PixelCNN reads the generated pixels only through their luminance (RGB data). Its
    own model kind, so its recipe names it and every full-context recipe stays as it was."""

    kind: str = "vlae_gray"
    context = "gray"

    def __post_init__(self):
        super().__post_init__()
        if self.kind != "vlae_gray":
            raise ValueError(f"GrayContextVLAEConfig has kind 'vlae_gray', got {self.kind!r}")
        if self.decoder != "pixelcnn":
            raise ValueError("context='gray' restricts the PixelCNN's input: it needs decoder='pixelcnn'")
        if self.in_channels != 3:
            raise ValueError(f"context='gray' reads the luminance of RGB images: it needs in_channels=3, "
                             f"got {self.in_channels}")


def vlae_config(context: str = "full", **fields) -> VLAEConfig:
    """``VLAEConfig(**fields)`` for the full context, ``GrayContextVLAEConfig(**fields)`` for "gray"."""
    classes = {"full": VLAEConfig, "gray": GrayContextVLAEConfig}
    if context not in classes:
        raise ValueError(f"unknown context {context!r}: choose one of {CONTEXTS}")
    return classes[context](**fields)


class Encoder(nn.Module):
    """x (n, C, R, R) → features (n, hidden): two 4×4 stride-2 convolutions and a dense layer."""

    def __init__(self, in_channels: int, resolution: int, channels: int, hidden: int):
        super().__init__()
        side = resolution // 4
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 4, 2, 1), nn.ELU(),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1), nn.ELU(),
            nn.Flatten(), nn.Linear(2 * channels * side * side, hidden), nn.ELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LatentToMap(nn.Module):
    """z (n, k) → (n, out_channels, R, R): a dense layer to an (R/4)² map, two 4×4 stride-2
    transposed convolutions up to the image size (the mirror of :class:`Encoder`)."""

    def __init__(self, latent_dim: int, out_channels: int, resolution: int, channels: int, hidden: int):
        super().__init__()
        self.side, self.channels = resolution // 4, channels
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ELU(), nn.Linear(hidden, channels * self.side ** 2), nn.ELU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 4, 2, 1), nn.ELU(),
            nn.ConvTranspose2d(channels, out_channels, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.dense(z).view(-1, self.channels, self.side, self.side))


class VLAE(nn.Module):
    """Encoder, posterior (Gaussian or IAF), prior (Gaussian or AF) and decoder (PixelCNN or
    factorized) of one :class:`VLAEConfig`; ``loss`` is the free-bits negative ELBO."""

    def __init__(self, config: VLAEConfig):
        super().__init__()
        self.config = config
        self.likelihood = Bernoulli()
        c = config
        gray = c.context == "gray"
        if c.unconditional:
            self.pixelcnn = PixelCNN(c.pixelcnn(), c.in_channels, gray_input=gray)
            return
        self.encoder = Encoder(c.in_channels, c.resolution, c.encoder_channels, c.hidden)
        self.posterior_head = nn.Linear(c.hidden, 2 * c.latent_dim)
        if c.posterior == "iaf":
            self.iaf = IAFPosterior(c.latent_dim, c.hidden, c.flow_steps, c.flow_hidden, c.flow_hidden_layers)
        if c.prior == "af":
            self.af_prior = AutoregressiveFlowPrior(c.latent_dim, c.flow_steps, c.flow_hidden, c.flow_hidden_layers)
        if c.decoder == "pixelcnn":
            width = c.decoder_channels   # the conditioning map is as wide as the network making it
            self.latent_to_map = LatentToMap(c.latent_dim, width, c.resolution, width, c.hidden)
            self.pixelcnn = PixelCNN(c.pixelcnn(), c.in_channels, context_channels=width, gray_input=gray)
        else:
            self.latent_to_map = LatentToMap(c.latent_dim, c.in_channels, c.resolution, c.decoder_channels, c.hidden)

    # --- the training loop's interface (as dvae_core.models.vae.VAE) ---------------------------

    def vae_parameters(self):
        return self.parameters()

    def auxiliary_optimizer(self) -> torch.optim.Optimizer | None:
        return None

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        z, log_q = self.sample_posterior_with_log_q(x)
        recon = self._decoder_nll(x, z).mean()
        kl = (log_q - self.log_prior(z)).mean()
        floor = 0.0 if self.config.unconditional else self.config.free_bits * self.config.data_dims
        # Only a positive floor clamps: a single-sample KL estimate can itself be negative.
        kl_term = kl.clamp(min=floor) if floor > 0 else kl
        return {"loss": recon + beta * kl_term, "recon": recon, "kl": kl}

    # --- densities ---------------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of the diagonal Gaussian q(z_0 | x), before any IAF step."""
        return self._encode_with_context(x)[:2]

    def _encode_with_context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.config.unconditional:
            empty = x.new_zeros(x.shape[0], 0)
            return empty, empty, empty
        features = self.encoder(x)
        mean, logvar = self.posterior_head(features).chunk(2, dim=1)
        return mean, logvar, features

    def sample_posterior_with_log_q(self, x: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """k codes z ~ q(z | x) per image and their log q(z | x), as k·n rows (sample s of image i
        in row s·n + i); the encoder runs once."""
        mean, logvar, context = (t.repeat(k, 1) for t in self._encode_with_context(x))
        eps = torch.randn_like(mean)
        z = mean + eps * (0.5 * logvar).exp()
        log_q = standard_normal_log_prob(eps) - 0.5 * logvar.sum(1)  # change of variables ε → z
        if self.config.posterior == "iaf" and not self.config.unconditional:
            z, log_det = self.iaf(z, context)
            log_q = log_q - log_det
        return z, log_q

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) per row (0 for the unconditional model, whose z is empty)."""
        if self.config.prior == "af" and not self.config.unconditional:
            return self.af_prior.log_prob(z)
        return standard_normal_log_prob(z)

    def _decoder_nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """−log p(x | z) per image."""
        return self.likelihood.nll(self._decoder_logits(x, z), x)

    def _decoder_logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.config.unconditional:
            return self.pixelcnn(x)
        if self.config.decoder == "pixelcnn":
            return self.pixelcnn(x, self.latent_to_map(z))
        return self.latent_to_map(z)

    def log_importance_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """(k, n) log-weights log p(x, z_s) − log q(z_s | x) for z_s ~ q(z | x): their log-mean-exp
        is the importance-sampled log p(x) (:func:`dvae_core.metrics.nll.importance_weighted_nll`)."""
        n = x.shape[0]
        if self.config.unconditional:                     # no latent: every weight is p(x) itself
            return -self._decoder_nll(x, x.new_zeros(n, 0)).expand(k, n)
        z, log_q = self.sample_posterior_with_log_q(x, k)
        repeated = x.repeat(k, *([1] * (x.dim() - 1)))   # row s·n + i is image i again
        log_w = -self._decoder_nll(repeated, z) + self.log_prior(z) - log_q
        return log_w.view(k, n)

    # --- sampling ------------------------------------------------------------------------------

    def sample_posterior(self, x: torch.Tensor) -> torch.Tensor:
        return self.sample_posterior_with_log_q(x)[0]

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes z ~ p(z), shape (n, latent_dim); (n, 0) for the unconditional model."""
        c = self.config
        device = next(self.parameters()).device
        if c.unconditional:
            return torch.zeros(n, 0, device=device)
        if c.prior == "af":
            return self.af_prior.sample(n, generator)
        return torch.randn(n, c.latent_dim, generator=generator).to(device)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities of the factorized decoder (a PixelCNN has no closed-form mean)."""
        if self.config.decoder != "factorized":
            raise ValueError("decode_mean needs decoder='factorized': draw PixelCNN images with decode_sample")
        return torch.sigmoid(self.latent_to_map(z))

    @torch.no_grad()
    def decode_sample(self, z: torch.Tensor, generator: torch.Generator | None = None,
                      mean: bool = False) -> torch.Tensor:
        """One binary image x ~ p(x | z) per code: pixel by pixel for the PixelCNN.

        ``mean=True`` (images with intensities in [0, 1]): every pixel is set to its predicted
        probability instead of a 0/1 draw; the PixelCNN feeds those back pixel by pixel
        (:meth:`PixelCNN.sample`), so the image is a deterministic function of z."""
        c = self.config
        n = z.shape[0]
        if c.decoder == "factorized":
            probs = self.decode_mean(z)
            if mean:
                return probs
            return (torch.rand(probs.shape, generator=generator).to(probs.device) < probs).to(probs.dtype)
        context = None if c.unconditional else self.latent_to_map(z)
        return self.pixelcnn.sample(n, (c.resolution, c.resolution), context, generator, mean=mean)
