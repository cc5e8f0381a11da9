r"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising", arXiv:1802.05983).

.. math::
   \mathcal L = \underbrace{\mathbb E_{q(z|x)}[-\log p(x|z)] + \mathrm{KL}(q(z|x)\,\|\,p(z))}_{\text{VAE}}
                + \gamma\, \mathrm{TC}(z),
   \qquad \mathrm{TC}(z) = \mathrm{KL}\big(q(z)\,\|\,\bar q(z)\big),\ \ \bar q(z) = \textstyle\prod_j q(z_j)

The total correlation is estimated by the density-ratio trick: a discriminator D is trained to
tell samples of q(z) (codes of a batch) from samples of q̄(z) (the same codes with every
dimension independently permuted across the batch: the paper's Algorithm 1), and then
:math:`\mathrm{TC} \approx \mathbb E_{q(z)}[\log D(z) - \log(1 - D(z))]`, the mean logit
difference. Each training step (Algorithm 2) updates the VAE on one batch, then the discriminator
on that batch's codes against the permuted codes of a second batch.

Discriminator (Kim & Mnih, Appendix; disentanglement_lib): an MLP of 6 hidden layers of 1000
units with LeakyReLU(0.2) and 2 logits, trained with Adam(lr 1e-4, betas (0.5, 0.9)); the VAE
itself uses Adam(1e-4, (0.9, 0.999)) in the paper. γ ∈ {10, 20, 30, 40, 50, 100} in its sweeps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from dvae_core.models.vae import VAE, VAEConfig, gaussian_kl


@dataclass(frozen=True)
class FactorVAEConfig:
    """The TC term: its weight γ and the discriminator that estimates it.

    ``gamma_warmup``: γ rises linearly from 0 over this many first steps (None: the paper's constant γ).
    A departure from Kim & Mnih, for short high-learning-rate runs: at the start the discriminator is
    untrained, and a full-weight γ·TC gradient from it can drive the encoder to the prior (every code
    equal, nothing left to tell apart) before the reconstruction term takes hold.
    """

    gamma: float = 10.0
    disc_hidden: int = 1000
    disc_layers: int = 6
    disc_lr: float = 1e-4
    disc_betas: tuple[float, float] = (0.5, 0.9)
    gamma_warmup: int | None = None


@dataclass(frozen=True)
class FactorVAEModelConfig(FactorVAEConfig, VAEConfig):
    """FactorVAE as a model kind of the training loop: a VAE's fields and the TC term's in one recipe.

    ``kind = "factor_vae"`` names it in the recipe, as ``"rae"`` or ``"vlae"`` name theirs; every
    ``VAEConfig`` field (``decoder``, ``latent_dim``, …) reads as on a VAE. Recipes written before this kind
    existed kept the TC term beside the model (``TrainConfig.factor_vae``): :meth:`TrainConfig.from_dict`
    reads them, and ``python -m dvae_core.cli --migrate-store`` moves such runs to their new names.
    """

    kind: str = "factor_vae"

    @classmethod
    def of(cls, vae: VAEConfig, factor: FactorVAEConfig) -> "FactorVAEModelConfig":
        return cls(**asdict(vae), **asdict(factor))

    @property
    def vae(self) -> VAEConfig:
        return VAEConfig(**{f.name: getattr(self, f.name) for f in fields(VAEConfig)})

    @property
    def factor(self) -> FactorVAEConfig:
        return FactorVAEConfig(**{f.name: getattr(self, f.name) for f in fields(FactorVAEConfig)})


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Algorithm 1: shuffle each latent dimension independently across the batch.

    Every column keeps its values (each marginal q(z_j) is unchanged) while the rows are
    recombined, which breaks any dependence between dimensions: a sample of ∏_j q(z_j).
    """
    n, k = z.shape
    order = torch.argsort(torch.rand(n, k, generator=generator, device=z.device), dim=0)
    return torch.gather(z, 0, order)


class Discriminator(nn.Module):
    """MLP z → 2 logits: column 0 "from q(z)", column 1 "from q̄(z)"."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        widths = [latent_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        blocks.append(nn.Linear(widths[-1], 2))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def log_density_ratio(self, z: torch.Tensor) -> torch.Tensor:
        """log D(z) − log(1 − D(z)) = logit₀ − logit₁: an estimate of log q(z) / q̄(z)."""
        logits = self(z)
        return logits[:, 0] - logits[:, 1]


class FactorVAE(VAE):
    def __init__(self, config: VAEConfig, factor: FactorVAEConfig):
        super().__init__(config)
        self.factor = factor
        self.discriminator = Discriminator(config.latent_dim, factor.disc_hidden, factor.disc_layers)
        self._codes: torch.Tensor | None = None
        self._steps_done = 0

    def set_step(self, steps_done: int) -> None:
        """The training loop says how many steps are done before each step (γ's warm-up reads it)."""
        self._steps_done = steps_done

    @property
    def gamma(self) -> float:
        """γ at the current step: the configured γ, scaled down linearly during ``gamma_warmup``."""
        warmup = self.factor.gamma_warmup
        if not warmup:
            return self.factor.gamma
        return self.factor.gamma * min(1.0, self._steps_done / warmup)

    def vae_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("discriminator.")]

    def auxiliary_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.discriminator.parameters(), lr=self.factor.disc_lr, betas=self.factor.disc_betas)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        mean, logvar = self.encoder(x)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon = self.likelihood.nll(self.decoder(z), x).mean()
        kl = gaussian_kl(mean, logvar).sum(1).mean()
        tc = self.discriminator.log_density_ratio(z).mean()
        self._codes = z.detach()
        return {"loss": recon + beta * kl + self.gamma * tc, "recon": recon, "kl": kl, "tc": tc}

    def auxiliary_step(self, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        """Train D: codes of the last VAE batch are "real" (class 0), permuted codes of ``x`` class 1."""
        if self._codes is None:
            raise RuntimeError("auxiliary_step needs a preceding loss() call (Algorithm 2 order)")
        with torch.no_grad():
            mean, logvar = self.encoder(x)
            permuted = permute_dims(mean + torch.randn_like(mean) * (0.5 * logvar).exp())
        z = self._codes
        logits_real, logits_perm = self.discriminator(z), self.discriminator(permuted)
        zeros = torch.zeros(len(z), dtype=torch.long, device=z.device)
        ones = torch.ones(len(permuted), dtype=torch.long, device=z.device)
        disc_loss = 0.5 * (F.cross_entropy(logits_real, zeros) + F.cross_entropy(logits_perm, ones))
        optimizer.zero_grad(set_to_none=True)
        disc_loss.backward()
        optimizer.step()
        accuracy = 0.5 * ((logits_real.argmax(1) == 0).float().mean() + (logits_perm.argmax(1) == 1).float().mean())
        return {"disc_loss": disc_loss.detach(), "disc_accuracy": accuracy}
