"""Spatial Broadcast Decoder (Watters, Matthey, Burgess, Lerchner 2019, arXiv:1901.07017).

Profiles and runs for the chapter's notebooks, and the claim checks.

Fig. 2 (DeConv-VAE vs Spatial-Broadcast-VAE on colored sprites). The paper's setting (its
Appendix, as collected in ``shared/paper-facts.md``): 64×64 colored sprites, 10 latents, an encoder
of 4 conv layers (64 ch, 4×4, stride 2) and an MLP of 256 units, SB decoder of 4 unstrided 3×3
conv layers of 64 channels on a broadcast grid with coordinate channels, Adam 3e-4, batch 16,
1.5×10⁶ steps. The ``preview`` profile keeps the models and data and shrinks the cost: 32×32
images, 32 channels, 3 SB layers with 'same' padding, batch 32, a few thousand steps. The
likelihood is Bernoulli in every profile (disentanglement_lib's default; the paper's Gaussian
with fixed variance is unconfirmed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from dvae_core.claims import Claim, compare_groups, compare_groups_rule
from dvae_core.evaluate import evaluate_elbo, mean_encoder
from dvae_core.metrics import mig, sample_codes
from dvae_core.models import VAEConfig
from dvae_core.profiles import select
from dvae_core.train import TrainConfig, throughput

PAPER = "Watters et al. 2019 (Spatial Broadcast Decoder)"


@dataclass(frozen=True)
class Fig2Profile:
    resolution: int
    steps: int
    batch_size: int
    seeds: tuple[int, ...]
    encoder_channels: int
    decoder_channels: int
    hidden: int
    sb_layers: int
    sb_padding: str
    lr: float = 3e-4
    mig_samples: int = 10_000
    eval_samples: int = 2048
    checkpoint_every: int = 500


FIG2 = {
    "smoke": Fig2Profile(resolution=32, steps=20, batch_size=16, seeds=(0, 1), encoder_channels=8,
                         decoder_channels=8, hidden=32, sb_layers=2, sb_padding="same",
                         mig_samples=512, eval_samples=128, checkpoint_every=10),
    "preview": Fig2Profile(resolution=32, steps=2000, batch_size=32, seeds=(0, 1, 2, 3, 4, 5), encoder_channels=32,
                           decoder_channels=32, hidden=256, sb_layers=3, sb_padding="same"),
    "paper": Fig2Profile(resolution=64, steps=1_500_000, batch_size=16, seeds=tuple(range(10)),
                         encoder_channels=64, decoder_channels=64, hidden=256, sb_layers=4, sb_padding="valid",
                         checkpoint_every=10_000),
}


def fig2_profile(profile: str, seed_offset: int = 0) -> Fig2Profile:
    """The profile's settings; ``seed_offset`` shifts every training seed (the notebooks' ``seed``)."""
    p = select(FIG2, profile)
    return replace(p, seeds=tuple(s + seed_offset for s in p.seeds)) if seed_offset else p


def fig2_config(p: Fig2Profile, decoder: str, seed: int) -> TrainConfig:
    model = VAEConfig(decoder=decoder, latent_dim=10, in_channels=3, resolution=p.resolution,
                      encoder_channels=p.encoder_channels, decoder_channels=p.decoder_channels, hidden=p.hidden,
                      sb_layers=p.sb_layers, sb_padding=p.sb_padding)
    return TrainConfig(dataset="colored_sprites", dataset_kwargs={"resolution": p.resolution}, model=model,
                       beta=1.0, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=seed,
                       checkpoint_every=p.checkpoint_every, log_every=max(1, min(50, p.steps // 10)))


def fig2_configs(p: Fig2Profile) -> list[TrainConfig]:
    return [fig2_config(p, decoder, seed) for decoder in ("deconv", "sb") for seed in p.seeds]


def evaluate_run(run: dict, dataset, p: Fig2Profile) -> dict:
    """MIG (on ``mig_samples`` uniform grid draws) and the ELBO's two terms of one trained run."""
    config: TrainConfig = run["config"]
    rng = np.random.default_rng(10_000 + config.seed)  # evaluation draws independent of training's
    codes, factors = sample_codes(dataset, mean_encoder(run["model"]), p.mig_samples, rng)
    scores = mig(codes, factors)
    elbo = evaluate_elbo(run["model"], dataset, p.eval_samples, rng)
    return {"decoder": config.model.decoder, "seed": config.seed, "mig": scores["score"],
            "recon_nll": elbo["recon_nll"], "kl": elbo["kl"], "kl_per_dim": elbo["kl_per_dim"],
            "mig_per_factor": scores["per_factor"], "train_images_per_s": throughput(run["history"])}


def fig2_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)[["decoder", "seed", "mig", "recon_nll", "kl", "train_images_per_s"]]


def fig2_claims(table: pd.DataFrame, alpha: float = 0.1) -> list[Claim]:
    sb, deconv = table[table.decoder == "sb"], table[table.decoder == "deconv"]
    claims = []
    verdict, stats = compare_groups(sb.mig, deconv.mig, higher_is_better=True, alpha=alpha)
    claims.append(Claim(
        id="sbd-fig2-mig", paper=PAPER,
        claim="The Spatial Broadcast VAE disentangles colored sprites better than the DeConv VAE (higher MIG)",
        metric="median MIG over seeds",
        paper_value="SB > DeConv (Fig. 2)",
        ours={"sb_median": stats["median_a"], "deconv_median": stats["median_b"], "p_value": stats["p_value"],
              "sb": sb.mig.round(4).tolist(), "deconv": deconv.mig.round(4).tolist()},
        verdict=verdict, rule=compare_groups_rule("SB MIG", "DeConv MIG", True, alpha)))
    verdict, stats = compare_groups(sb.recon_nll, deconv.recon_nll, higher_is_better=False, alpha=alpha)
    claims.append(Claim(
        id="sbd-fig2-reconstruction", paper=PAPER,
        claim="The Spatial Broadcast decoder reconstructs colored sprites better (lower reconstruction NLL)",
        metric="median reconstruction NLL over seeds (nats/image)",
        paper_value="SB < DeConv (Sec. 4, Fig. 4)",
        ours={"sb_median": stats["median_a"], "deconv_median": stats["median_b"], "p_value": stats["p_value"],
              "sb": sb.recon_nll.round(2).tolist(), "deconv": deconv.recon_nll.round(2).tolist()},
        verdict=verdict, rule=compare_groups_rule("SB NLL", "DeConv NLL", False, alpha)))
    return claims


def seeds_needed(a: np.ndarray, b: np.ndarray, alpha: float = 0.1, max_seeds: int = 50) -> int | None:
    """Smallest seeds-per-group n at which a one-sided Mann–Whitney test of the observed effect
    would reach p < alpha, by a normal approximation (shift = median gap, spread = pooled std).

    A planning number, printed next to the verdict: None if the measured ordering is reversed.
    """
    from scipy.stats import norm

    gap = float(np.median(a) - np.median(b))
    spread = float(np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2))
    if gap <= 0 or spread == 0:
        return None
    for n in range(2, max_seeds + 1):
        # Mann–Whitney has ~95.5 % of the t-test's efficiency under normality: n_eff = 0.955 n
        z = gap / (spread * np.sqrt(2 / (0.955 * n)))
        if 1 - norm.cdf(z) < alpha:
            return n
    return None


__all__ = ["Fig2Profile", "FIG2", "fig2_profile", "fig2_config", "fig2_configs", "evaluate_run", "fig2_table",
           "fig2_claims", "seeds_needed"]
