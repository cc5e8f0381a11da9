r"""Regularized (deterministic) autoencoders and their baselines, on one encoder/decoder family
(Ghosh, Sajjadi, Vergari, Black & Schölkopf, ICLR 2020, "From Variational to Deterministic
Autoencoders", arXiv:1903.12436).

The paper's argument: a Gaussian VAE's sampling noise acts on the decoder as a regulariser of its
smoothness, so drop the noise and regularise explicitly. An RAE is a deterministic encoder
:math:`z = E(x)` and decoder :math:`\hat x = D(z)` trained with

.. math::  \mathcal L_\text{RAE} = \mathcal L_\text{REC} + \beta\,\mathcal L^\text{RAE}_Z + \lambda\,\mathcal L_\text{REG},
           \qquad \mathcal L^\text{RAE}_Z = \tfrac12 \lVert z \rVert_2^2 \ \text{(Eq. 11)},

where :math:`\mathcal L_\text{REG}` is one of (Sec. 4.1): an L2 penalty on the decoder's weights
(RAE-L2, equivalent to weight decay), a gradient penalty on the decoder's output w.r.t. z
(RAE-GP), or none with spectral normalisation of every decoder layer (RAE-SN); RAE has no
decoder regulariser and AE no term at all. New samples come from a density fitted to the
training codes *after* training (ex-post density estimation, Sec. 5:
:mod:`dvae_core.metrics.density`).

The scales follow the authors' released configuration for MNIST (reference only, re-implemented
here): :math:`\mathcal L_\text{REC}` is the squared error averaged over pixels, the code penalty
is the mean of :math:`z^2` over latent dimensions (the ½ of Eq. 11 is absorbed into β), the
gradient penalty is the mean squared gradient of :math:`\sum \hat x^2` w.r.t. z, and the L2
penalty sums the squared kernels of the decoder's transposed convolutions. The baselines use the
same networks: the VAE (Kingma & Welling 2014) and the constant-variance CV-VAE (a VAE whose
encoder variance is fixed, σ = 0.7) with the squared error *summed* over pixels plus β·KL, and
the WAE (Tolstikhin et al. 2018) with 0.05·(summed squared error) plus β·MMD between the codes
and N(0, I) under an inverse-multiquadric kernel.

Architecture (the paper's Appendix, MNIST): images zero-padded to 32×32 and scaled to [−1, 1];
encoder of 4 convolutions (4×4, stride 2, C·{1, 2, 4, 8} channels, batch norm, ReLU) and a
dense layer to z; decoder of a dense layer to an 8×8×8C map, two stride-2 transposed
convolutions (4C, 2C, batch norm, ReLU) and a last transposed convolution to the image with a
sigmoid. C = 128 in the paper; the ``preview`` profile shrinks C, never the idea. CIFAR-10 (3×32×32)
uses the same 32×32 networks with 3 channels (the released code builds its CIFAR models with the MNIST
function).

CelebA at 64×64 (``resolution=64``) follows the authors' released CelebA code
(``models/rae/rae_celeba.py`` of ParthaEth/Regularized_autoencoders-RAE-): 5×5 kernels throughout; an
encoder of 4 stride-2 convolutions (C, 2C, 4C, 8C; 64 → 4) and a dense layer to z; a decoder of a dense
layer to 8×8×8C, three stride-2 transposed convolutions (4C, 2C, C; 8 → 64, batch norm, ReLU) and a
stride-1 transposed convolution to the image with a sigmoid. That code feeds CelebA pixels to the encoder
unscaled; we keep the family's [−1, 1] scaling, which the first batch norm cancels. The kernel size and
widths at 64×64 come from that code, not from a quoted line of the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dvae_core.models.vae import gaussian_kl

Variant = Literal["ae", "rae", "rae_l2", "rae_gp", "rae_sn", "vae", "cv_vae", "wae"]
VARIANTS = get_args(Variant)
#: The paper's names, for tables.
VARIANT_LABELS = {"ae": "AE", "rae": "RAE", "rae_l2": "RAE-L2", "rae_gp": "RAE-GP", "rae_sn": "RAE-SN",
                  "vae": "VAE", "cv_vae": "CV-VAE", "wae": "WAE"}
DETERMINISTIC = ("ae", "rae", "rae_l2", "rae_gp", "rae_sn", "wae")
#: Weight of the summed squared error in the WAE objective (Tolstikhin et al.'s released code).
WAE_RECON_SCALE = 0.05
#: Kernel scales of the IMQ-kernel MMD, multiples of 2·d·σ²_p (Tolstikhin et al.'s released code).
IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
#: Image sizes the networks take: 32 (MNIST padded, CIFAR-10; 4×4 kernels) and 64 (CelebA; 5×5 kernels).
RESOLUTIONS = (32, 64)


def _kernel(config: "RAEConfig") -> tuple[int, int]:
    """(kernel size, padding) of the stride-2 layers: 4×4 at 32×32, 5×5 'same' at 64×64 (the released code)."""
    return (4, 1) if config.resolution == 32 else (5, 2)


@dataclass(frozen=True)
class RAEConfig:
    """One model of the RAE chapter; ``beta`` (the code/KL/MMD weight) lives in ``TrainConfig.beta``."""

    kind: str = "rae"
    variant: Variant = "rae"
    latent_dim: int = 16
    in_channels: int = 1
    resolution: int = 32            # 32 (28×28 images zero-padded, the authors' MNIST loader; CIFAR-10) or 64 (CelebA)
    channels: int = 128             # C: the encoder has C, 2C, 4C, 8C channels
    batch_norm: bool = True
    reg_weight: float = 0.0         # λ of RAE-L2 / RAE-GP
    constant_std: float = 0.7       # the CV-VAE's fixed encoder standard deviation

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown RAE-chapter model {self.variant!r}: choose one of {VARIANTS}")
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"the RAE networks take 32×32 images (MNIST padded from 28×28, CIFAR-10) or 64×64 "
                             f"(CelebA), got resolution {self.resolution}")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class RAEEncoder(nn.Module):
    """x (n, C, R, R) in [0, 1], R = 32 or 64 → (n, out_dim): z for deterministic models, (μ, log σ²) for the
    VAE."""

    def __init__(self, config: RAEConfig, out_dim: int):
        super().__init__()
        c, layers, width = config.channels, [], config.in_channels
        kernel, padding = _kernel(config)
        for multiple in (1, 2, 4, 8):
            layers += [nn.Conv2d(width, c * multiple, kernel, stride=2, padding=padding),
                       _norm(c * multiple, config.batch_norm), nn.ReLU()]
            width = c * multiple
        self.convs = nn.Sequential(*layers)  # 32 → 16 → 8 → 4 → 2, or 64 → 32 → 16 → 8 → 4
        side = config.resolution // 16
        self.dense = nn.Linear(width * side * side, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(2.0 * x - 1.0).flatten(1))


class RAEDecoder(nn.Module):
    """z (n, d) → mean image (n, C, R, R) in [0, 1]. ``spectral`` wraps every layer in spectral norm."""

    def __init__(self, config: RAEConfig, spectral: bool = False):
        super().__init__()
        c = config.channels
        wrap = spectral_norm if spectral else (lambda layer: layer)
        self.dense = wrap(nn.Linear(config.latent_dim, 8 * 8 * 8 * c))
        self.base_channels = 8 * c
        if config.resolution == 32:
            # 8 → 16 → 32 (layers built in this order: the 32×32 networks' initialisation must not move)
            widths = (8 * c, 4 * c, 2 * c)
            self.deconvs = nn.ModuleList([wrap(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
                                          for a, b in zip(widths, widths[1:])])
            self.norms = nn.ModuleList([_norm(b, config.batch_norm) for b in widths[1:]])
            # the authors use a 4×4 "same" transposed conv here, which needs asymmetric padding; 3×3 keeps 32×32
            self.to_image = wrap(nn.ConvTranspose2d(2 * c, config.in_channels, 3, stride=1, padding=1))
        else:
            # 8 → 16 → 32 → 64 with 5×5 "same" transposed convs (output_padding makes each exactly 2×)
            widths = (8 * c, 4 * c, 2 * c, c)
            self.deconvs = nn.ModuleList([wrap(nn.ConvTranspose2d(a, b, 5, stride=2, padding=2, output_padding=1))
                                          for a, b in zip(widths, widths[1:])])
            self.norms = nn.ModuleList([_norm(b, config.batch_norm) for b in widths[1:]])
            self.to_image = wrap(nn.ConvTranspose2d(c, config.in_channels, 5, stride=1, padding=2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z).view(len(z), self.base_channels, 8, 8)
        for deconv, norm in zip(self.deconvs, self.norms):
            h = F.relu(norm(deconv(h)))  # 8 → 16 → 32 (→ 64)
        return torch.sigmoid(self.to_image(h))

    def kernels(self) -> list[torch.Tensor]:
        """The transposed-convolution kernels RAE-L2 penalises (the authors regularise these, not the dense layer)."""
        return [layer.weight for layer in (*self.deconvs, self.to_image)]


def imq_mmd(z: torch.Tensor, prior: torch.Tensor, scales=IMQ_SCALES) -> torch.Tensor:
    r"""Unbiased MMD² between codes ``z`` and prior samples under inverse-multiquadric kernels
    :math:`k(a, b) = C / (C + \lVert a - b\rVert^2)`, summed over ``C = 2 d · scale`` (WAE-MMD, Tolstikhin
    et al. 2018, with their kernel scales for a N(0, I) prior)."""
    n, d = z.shape
    off_diagonal = 1.0 - torch.eye(n, device=z.device, dtype=z.dtype)
    dist_zz, dist_pp, dist_zp = torch.cdist(z, z) ** 2, torch.cdist(prior, prior) ** 2, torch.cdist(z, prior) ** 2
    total = z.new_zeros(())
    for scale in scales:
        c = 2.0 * d * scale
        within = ((c / (c + dist_zz) + c / (c + dist_pp)) * off_diagonal).sum() / (n * n - n)
        across = 2.0 * (c / (c + dist_zp)).sum() / (n * n)
        total = total + within - across
    return total


class RegularizedAE(nn.Module):
    """Every model of the paper's Table 1 on the same networks; ``loss(x, beta)`` returns each term.

    The interface matches :class:`dvae_core.models.VAE` where the training loop and evaluation
    need it: ``encode(x)`` returns (code, log-variance or None), ``decode(z)`` the mean image.
    """

    def __init__(self, config: RAEConfig):
        super().__init__()
        self.config = config
        self.variant = config.variant
        stochastic = config.variant == "vae"
        self.encoder = RAEEncoder(config, 2 * config.latent_dim if stochastic else config.latent_dim)
        self.decoder = RAEDecoder(config, spectral=config.variant == "rae_sn")

    def vae_parameters(self):
        return self.parameters()

    def auxiliary_optimizer(self) -> None:
        return None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The code used for reconstruction, density fitting and interpolation (the posterior mean for
        the VAEs), and the log-variance where the model has one."""
        h = self.encoder(x)
        if self.variant == "vae":
            mean, logvar = h.chunk(2, dim=1)
            return mean, logvar
        if self.variant == "cv_vae":
            return h, torch.full_like(h, 2.0 * torch.log(torch.tensor(self.config.constant_std)).item())
        return h, None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        code, logvar = self.encode(x)
        if logvar is not None:  # VAE and CV-VAE: reparameterised sample, summed squared error, β·KL
            z = code + torch.randn_like(code) * (0.5 * logvar).exp()
            recon = (self.decoder(z) - x).pow(2).flatten(1).sum(1).mean()
            kl = gaussian_kl(code, logvar).sum(1).mean()
            return {"loss": recon + beta * kl, "recon": recon, "kl": kl}
        if self.variant == "wae":
            recon = (self.decoder(code) - x).pow(2).flatten(1).sum(1).mean()
            mmd = imq_mmd(code, torch.randn_like(code))
            return {"loss": WAE_RECON_SCALE * recon + beta * mmd, "recon": recon, "mmd": mmd}
        return self._deterministic_loss(x, code, beta)

    def _deterministic_loss(self, x: torch.Tensor, z: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
        x_hat = self.decoder(z)
        recon = (x_hat - x).pow(2).mean()
        terms = {"recon": recon}
        loss = recon
        if self.variant != "ae":
            terms["code"] = z.pow(2).mean()
            loss = loss + beta * terms["code"]
        if self.variant == "rae_l2":
            terms["decoder_l2"] = sum(w.pow(2).sum() for w in self.decoder.kernels())
            loss = loss + self.config.reg_weight * terms["decoder_l2"]
        elif self.variant == "rae_gp":
            # ∇_z Σ x̂²: the authors' gradient penalty; create_graph so the penalty itself is trained on
            (grad,) = torch.autograd.grad(x_hat.pow(2).sum(), z, create_graph=True)
            terms["grad_penalty"] = grad.pow(2).mean()
            loss = loss + self.config.reg_weight * terms["grad_penalty"]
        terms["loss"] = loss
        return terms
