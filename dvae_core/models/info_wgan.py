r"""InfoWGAN-GP: the GAN baseline of Kim & Mnih 2018 ("Disentangling by Factorising",
arXiv:1802.05983, Sec. 5 and Appendix), an InfoGAN trained with the WGAN-GP objective.

WGAN-GP (Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", arXiv:1704.00028,
Algorithm 1): a critic D estimates the Wasserstein-1 distance between data and generator,

.. math::
   L_D = \mathbb E_{\tilde x \sim p_g}[D(\tilde x)] - \mathbb E_{x \sim p_r}[D(x)]
         + \lambda\, \mathbb E_{\hat x}\big[(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2\big],
   \qquad \hat x = \epsilon x + (1 - \epsilon)\tilde x,\ \ \epsilon \sim U[0, 1],

with λ = 10, ``critic_steps`` = 5 critic updates per generator update, Adam(lr 1e-4, betas
(0.5, 0.9)) and no batch norm in the critic (the penalty is per example; batch statistics would
couple the examples it treats independently). The generator minimises :math:`-\mathbb E[D(G(c, z))]`.

InfoGAN (Chen et al. 2016, arXiv:1606.03657, Sec. 5): the generator's input is split into codes c
and noise z, and a network Q(c | x) on the critic's convolutional trunk maximises the variational
lower bound :math:`L_I = H(c) + \mathbb E_{c, x = G(c, z)}[\log Q(c \mid x)]` on the mutual
information I(c; G(c, z)); both G and Q ascend it, weighted by λ_info (1 by default; InfoGAN uses 1
for discrete codes and advises a smaller λ for continuous ones, to keep λ_info·L_I on the scale of the
adversarial loss, so it is a knob worth sweeping). Q is a Gaussian with fixed unit variance, so :math:`-\log Q` is
:math:`\tfrac12 \lVert c - \mu_Q(x) \rVert^2` up to a constant: the ``info`` term below (summed
over code dimensions, averaged over the batch).

Choices made here (each one a place where the papers leave room):

- **Code prior: c ~ Uniform(−1, 1)^10**, InfoGAN's prior for continuous codes. The support is
  bounded, so a traversal over [−1, 1] stays where the generator was trained, and Q's regression
  target has a fixed range. (Kim & Mnih name 10 continuous codes for dSprites; the exact prior
  could not be checked against their text offline, so ``code_prior="gaussian"`` gives N(0, I)
  codes instead.) Noise z ~ N(0, I); ``noise_dim`` defaults to 0 so that all of the generator's
  variation must pass through c, which is what the disentanglement metrics read.
- **Q: a separate linear head on the critic's shared trunk** (InfoGAN's sharing). Q's head and the
  trunk are trained by the critic's optimiser: every critic update adds λ_info·info on its fresh
  fakes to the WGAN-GP loss (as InfoGAN adds L_I to D's loss). The generator step adds λ_info·info
  to G's loss, with the critic and Q frozen there: G's optimiser (``vae_parameters``) holds the
  generator only, so each network is trained by exactly one optimiser. The penalty constrains the
  score D only; the Q head is not Lipschitz-constrained.
- **Critic steps: ``auxiliary_step`` runs ``critic_steps`` updates on the one real batch the loop
  hands it, each with fresh fakes and fresh ε.** Splitting the batch into ``critic_steps`` chunks
  instead would give every critic update a batch five times smaller than the one WGAN-GP's λ and
  learning rate were tuned at; reusing the real half is the milder departure from Algorithm 1
  (which draws a new real batch per critic update).

Networks: the generator is the book's :class:`~dvae_core.models.decoders.DeconvDecoder` (MLP to
4×4, stride-2 transposed convolutions) from (c, z) to logits, squashed by a sigmoid to images in
[0, 1]; the critic mirrors :class:`~dvae_core.models.encoders.ConvEncoder` (4×4 stride-2
convolutions down to 4×4, an MLP of ``hidden`` units) with LeakyReLU(0.2) and no normalisation,
ending in two linear heads: the score D(x) and Q's mean μ_Q(x). Defaults match ``VAEConfig``'s
widths so the GAN and the VAEs compare at equal capacity.

Training-loop mapping (``dvae_core.train``): ``loss(x)`` is the generator step (x gives only the
batch size and device; the loop's ``beta`` is ignored: the objective has no KL) and the loop's
main optimiser is Adam at ``TrainConfig.lr`` with PyTorch's default betas (0.9, 0.999), so set
``lr=1e-4`` for Gulrajani's rate (their betas (0.5, 0.9) apply to the critic here, not to G).
``auxiliary_step(x2)`` is the critic step. ``encode(x)`` returns (μ_Q(x), 0): Q's estimate of the
code with the fixed log-variance of Q, so the metrics read a GAN exactly as a VAE.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Literal, get_args

import torch
from torch import nn

from dvae_core.models.decoders import DeconvDecoder
from dvae_core.models.encoders import num_halvings

CodePrior = Literal["uniform", "gaussian"]
CODE_PRIORS = get_args(CodePrior)


@dataclass(frozen=True)
class InfoWGANConfig:
    kind: str = "info_wgan"
    code_dim: int = 10              # c: the codes Q recovers and the metrics read
    noise_dim: int = 0              # z: incompressible noise, not predicted by Q
    code_prior: CodePrior = "uniform"  # "uniform": c ~ U(-1, 1) (InfoGAN); "gaussian": c ~ N(0, I)
    in_channels: int = 1
    resolution: int = 64
    channels: int = 64
    hidden: int = 256
    gp_weight: float = 10.0         # λ of WGAN-GP
    info_weight: float = 1.0        # λ_info of InfoGAN
    critic_lr: float = 1e-4
    critic_betas: tuple[float, float] = (0.5, 0.9)
    critic_steps: int = 5           # critic updates per generator update (n_critic)

    def __post_init__(self):
        if self.code_prior not in CODE_PRIORS:
            raise ValueError(f"unknown code prior {self.code_prior!r}: choose one of {CODE_PRIORS}")
        if self.critic_steps < 1:
            raise ValueError(f"critic_steps must be at least 1, got {self.critic_steps}")
        num_halvings(self.resolution)  # fails early, naming the resolutions the networks accept


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x̂ = ε·real + (1 − ε)·fake per example (``eps`` (n,)), a leaf the penalty differentiates against."""
    eps = eps.view(len(real), *([1] * (real.dim() - 1)))
    return (eps * real + (1.0 - eps) * fake).detach().requires_grad_(True)


def penalty(score_mixed: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """(‖∇_x̂ D(x̂)‖₂ − 1)² averaged over the interpolates; ``create_graph`` so the critic's update
    differentiates the penalty itself."""
    (grad,) = torch.autograd.grad(score_mixed.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
    r"""WGAN-GP's :math:`\mathbb E[(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2]` on random interpolates.

    ``critic`` maps a batch to one score per example; ``eps`` (n,) defaults to U[0, 1] from torch's CPU
    generator.
    """
    if eps is None:
        eps = torch.rand(len(real)).to(real.device)
    mixed = interpolate(real, fake, eps)
    return penalty(critic(mixed), mixed)


class Critic(nn.Module):
    """x (n, C, H, W) in [0, 1] → (score D(x) (n,), Q's code mean μ_Q(x) (n, code_dim)), one shared trunk."""

    def __init__(self, config: InfoWGANConfig):
        super().__init__()
        layers: list[nn.Module] = []
        width = config.in_channels
        for _ in range(num_halvings(config.resolution)):
            layers += [nn.Conv2d(width, config.channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            width = config.channels
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(config.channels * 4 * 4, config.hidden),
                                   nn.LeakyReLU(0.2))
        self.score = nn.Linear(config.hidden, 1)
        self.q_head = nn.Linear(config.hidden, config.code_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(2.0 * x - 1.0)  # centre the inputs; the penalty still acts on the [0, 1] images
        return self.score(h).squeeze(1), self.q_head(h)


def info_nll(q_mean: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """−log Q(c | x) + const for a unit-variance Gaussian Q: ½‖c − μ_Q(x)‖², averaged over the batch."""
    return 0.5 * (codes - q_mean).pow(2).sum(1).mean()


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Build a graph through ``module`` without recording gradients for its parameters (the flags are
    read when each operation runs, so restoring them afterwards leaves the graph as built)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class InfoWGAN(nn.Module):
    def __init__(self, config: InfoWGANConfig):
        super().__init__()
        self.config = config
        self.generator = DeconvDecoder(config.code_dim + config.noise_dim, config.in_channels, config.resolution,
                                       config.channels, config.hidden)
        self.critic = Critic(config)

    # ------------------------------------------------------------------ the training loop's interface

    def vae_parameters(self):
        """The generator's parameters: the loop's main optimiser trains G only (Q trains with the critic)."""
        return self.generator.parameters()

    def auxiliary_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr, betas=self.config.critic_betas)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """The generator step: −E[D(G(c, z))] + λ_info·info. ``x`` gives the batch size and device only;
        ``beta`` is ignored (the loop passes it to every model; this objective has no KL)."""
        codes, latent = self.sample_latent(len(x), device=x.device)
        # the critic's own optimiser trains it; freezing here keeps G's backward off its weights
        with frozen(self.critic):
            score, q_mean = self.critic(self.decode(latent))
        gen = -score.mean()
        info = info_nll(q_mean, codes)
        return {"loss": gen + self.config.info_weight * info, "gen": gen, "info": info}

    def auxiliary_step(self, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """``critic_steps`` critic (and Q) updates on the real batch ``x``, each against fresh fakes;
        returns the WGAN-GP loss, the Wasserstein estimate E[D(real)] − E[D(fake)], the (unweighted)
        penalty and Q's info term on the fakes, averaged over the updates."""
        cfg = self.config
        n = len(x)
        sums = {"critic_loss": 0.0, "wasserstein": 0.0, "gp": 0.0, "q_info": 0.0}
        for _ in range(cfg.critic_steps):
            with torch.no_grad():
                codes, latent = self.sample_latent(n, device=x.device)
                fake = self.decode(latent)
            eps = torch.rand(n).to(x.device)
            # real, fake and interpolates in one critic pass: without batch norm no example sees another,
            # so this is three passes' result at the cost of one larger one
            mixed = interpolate(x, fake, eps)
            score, q_mean = self.critic(torch.cat([x, fake, mixed]))
            score_real, score_fake, score_mixed = score.split(n)
            gp = penalty(score_mixed, mixed)
            wasserstein = score_real.mean() - score_fake.mean()
            critic_loss = -wasserstein + cfg.gp_weight * gp
            q_info = info_nll(q_mean[n:2 * n], codes)
            optimizer.zero_grad(set_to_none=True)
            (critic_loss + cfg.info_weight * q_info).backward()
            optimizer.step()
            for name, value in (("critic_loss", critic_loss), ("wasserstein", wasserstein), ("gp", gp),
                                ("q_info", q_info)):
                sums[name] += value.detach()
        return {name: value / cfg.critic_steps for name, value in sums.items()}

    # ------------------------------------------------------------------ sampling, encoding, decoding

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(c (n, code_dim), the generator's input [c, z] (n, code_dim + noise_dim)) from the priors.

        Drawn on the CPU and moved: the loop checkpoints torch's CPU generator only, so a resumed run on a
        GPU repeats these draws exactly.
        """
        cfg = self.config
        if cfg.code_prior == "uniform":
            codes = 2.0 * torch.rand(n, cfg.code_dim, generator=generator) - 1.0
        else:
            codes = torch.randn(n, cfg.code_dim, generator=generator)
        noise = torch.randn(n, cfg.noise_dim, generator=generator)
        device = device if device is not None else self._device()
        return codes.to(device), torch.cat([codes, noise], dim=1).to(device)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ_Q(x) (n, code_dim), log-variance 0): Q's estimate of the code, with Q's fixed unit variance."""
        _, q_mean = self.critic(x)
        return q_mean, torch.zeros_like(q_mean)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from codes (n, code_dim) or full inputs (n, code_dim + noise_dim). Codes alone
        get the noise prior's mean, 0, so a traversal of a code is not confounded by random noise."""
        if z.shape[1] == self.config.code_dim and self.config.noise_dim:
            z = torch.cat([z, z.new_zeros(len(z), self.config.noise_dim)], dim=1)
        return torch.sigmoid(self.generator(z))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images G(c, z) with c, z from their priors (``generator``: a CPU torch.Generator)."""
        return self.decode(self.sample_latent(n, generator)[1])

    def _device(self) -> torch.device:
        return next(self.parameters()).device
