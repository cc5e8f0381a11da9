"""Spatial Broadcast Decoder (Watters, Matthey, Burgess, Lerchner 2019, arXiv:1901.07017).

Profiles and runs for the chapter's notebooks, and the claim checks.

Fig. 2 (DeConv-VAE vs Spatial-Broadcast-VAE on colored sprites). The paper's setting (its
Appendix, as collected in ``shared/paper-facts.md``): 64×64 colored sprites, 10 latents, an encoder
of 4 conv layers (64 ch, 4×4, stride 2) and an MLP of 256 units, SB decoder of 4 unstrided 3×3
conv layers of 64 channels on a broadcast grid with coordinate channels, Adam 3e-4, batch 16,
1.5×10⁶ steps. The ``preview`` profile keeps the models, the data, the optimiser (Adam 3e-4) and the
batch size (16) and shrinks the cost: 32×32 images, 32 channels, 3 SB layers with 'same' padding,
1,500 steps; six seeds for Fig. 2, three for the other comparisons, and for Fig. 4 the two ends of
the β range (plus β = 1 from Fig. 2) with two replicas each, so that the chapter's preview fits in
40 minutes on 2 CPU cores (an SB step costs ~4× a DeConv step there). The
likelihood is Bernoulli in every profile (disentanglement_lib's default; the paper's Gaussian
with fixed variance is unconfirmed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from dvae_core.claims import Claim, compare_groups, compare_groups_rule, curve_verdict
from dvae_core.evaluate import evaluate_elbo, mean_encoder
from dvae_core.metrics import mig, sample_codes
from dvae_core.models import FactorVAEConfig, FactorVAEModelConfig, VAEConfig
from dvae_core.papers import BenchModel, paper
from dvae_core.profiles import select
from dvae_core.train import TrainConfig, build_dataset, throughput

PAPER = paper("sbd").citation


@dataclass(frozen=True)
class SBDProfile:
    """Every setting of the chapter that depends on the profile.

    ``fig3_factor_vae`` is Fig. 3's FactorVAE: the discriminator is Kim & Mnih's (6 × 1000, LeakyReLU 0.2,
    Adam 1e-4 (0.5, 0.9)); γ = 30 is our choice from their sweep {10, …, 100} (the SBD paper's γ is not
    stated in what we could read). Smoke shrinks the discriminator; preview keeps its depth and learning
    rate at a width of 256, as the FactorVAE chapter's preview does: at batch 16 on a CPU the 6 × 1000
    discriminator costs more than the DeConv-VAE it regularises. ``rate_distortion`` is Fig. 4's sweep:
    (number of βs, log-spaced over the paper's 0.4–5.4, and replicas per β).
    """

    resolution: int
    steps: int
    batch_size: int
    seeds: tuple[int, ...]
    encoder_channels: int
    decoder_channels: int
    hidden: int
    sb_layers: int
    sb_padding: str
    fig3_factor_vae: FactorVAEConfig
    rate_distortion: tuple[int, int]
    lr: float = 3e-4
    mig_samples: int = 10_000
    eval_samples: int = 2048
    checkpoint_every: int = 500


PROFILES = {
    "smoke": SBDProfile(resolution=32, steps=20, batch_size=16, seeds=(0, 1), encoder_channels=8,
                         decoder_channels=8, hidden=32, sb_layers=2, sb_padding="same",
                         fig3_factor_vae=FactorVAEConfig(gamma=30.0, disc_hidden=32, disc_layers=2), rate_distortion=(2, 1),
                         mig_samples=512, eval_samples=128, checkpoint_every=10),
    "preview": SBDProfile(resolution=32, steps=1500, batch_size=16, seeds=(0, 1, 2, 3, 4, 5), encoder_channels=32,
                           decoder_channels=32, hidden=256, sb_layers=3, sb_padding="same",
                           fig3_factor_vae=FactorVAEConfig(gamma=30.0, disc_hidden=256), rate_distortion=(2, 2)),
    "paper": SBDProfile(resolution=64, steps=1_500_000, batch_size=16, seeds=tuple(range(10)),
                         encoder_channels=64, decoder_channels=64, hidden=256, sb_layers=4, sb_padding="valid",
                         fig3_factor_vae=FactorVAEConfig(gamma=30.0), rate_distortion=(11, 10), checkpoint_every=10_000),
}


def profile(name: str, seed_offset: int = 0) -> SBDProfile:
    """The profile's settings; ``seed_offset`` shifts every training seed (the notebooks' ``seed``)."""
    p = select(PROFILES, name)
    return replace(p, seeds=tuple(s + seed_offset for s in p.seeds)) if seed_offset else p


def comparison_config(p: SBDProfile, decoder: str, seed: int, dataset_kwargs: dict | None = None,
                      factor_vae: FactorVAEConfig | None = None, beta: float = 1.0,
                      dataset: str = "colored_sprites") -> TrainConfig:
    """One run of a DeConv-vs-SB comparison: colored sprites (or ``dataset``) at the profile's size, 10 latents.

    ``dataset_kwargs`` adds to the dataset (``scale_values`` for small objects, ``holdout`` for a
    held-out region); ``factor_vae`` turns the β-VAE into a FactorVAE (Fig. 3).
    """
    model = VAEConfig(decoder=decoder, latent_dim=10, in_channels=3, resolution=p.resolution,
                      encoder_channels=p.encoder_channels, decoder_channels=p.decoder_channels, hidden=p.hidden,
                      sb_layers=p.sb_layers, sb_padding=p.sb_padding)
    if factor_vae is not None:
        model = FactorVAEModelConfig.of(model, factor_vae)
    return TrainConfig(dataset=dataset, dataset_kwargs={"resolution": p.resolution, **(dataset_kwargs or {})},
                       model=model, beta=beta, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=seed,
                       checkpoint_every=p.checkpoint_every, log_every=max(1, min(50, p.steps // 10)))


def comparison_configs(p: SBDProfile, **kwargs) -> list[TrainConfig]:
    return [comparison_config(p, decoder, seed, **kwargs) for decoder in ("deconv", "sb") for seed in p.seeds]


def fig2_config(p: SBDProfile, decoder: str, seed: int) -> TrainConfig:
    return comparison_config(p, decoder, seed)


def fig2_configs(p: SBDProfile) -> list[TrainConfig]:
    return comparison_configs(p)


def evaluate_run(run: dict, dataset, p: SBDProfile) -> dict:
    """MIG (on ``mig_samples`` uniform grid draws) and the ELBO's two terms of one trained run."""
    config: TrainConfig = run["config"]
    rng = np.random.default_rng(10_000 + config.seed)  # evaluation draws independent of training's
    codes, factors = sample_codes(dataset, mean_encoder(run["model"]), p.mig_samples, rng)
    scores = mig(codes, factors)
    elbo = evaluate_elbo(run["model"], dataset, p.eval_samples, rng)
    return {"decoder": config.model.decoder, "seed": config.seed, "mig": scores["score"],
            "recon_nll": elbo["recon_nll"], "kl": elbo["kl"], "kl_per_dim": elbo["kl_per_dim"],
            "mig_per_factor": scores["per_factor"], "train_images_per_s": throughput(run["history"])}


def score_on_training_data(run: dict, p: SBDProfile, score=evaluate_run) -> dict:
    """``score(run, dataset, p)`` on the data the run trained on (its config's dataset and kwargs)."""
    return score(run, build_dataset(run["config"]), p)


def scorer(p: SBDProfile, score=evaluate_run):
    """``evaluate=`` for :func:`~dvae_core.sweep.get_or_train_all`: each run is scored by ``score`` (default
    :func:`evaluate_run`) on its own training data, on the worker that trained it, so one run's MIG
    overlaps the next run's training; the rows are ``run["evaluation"]``."""
    return partial(score_on_training_data, p=p, score=score)


def fig2_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)[["decoder", "seed", "mig", "recon_nll", "kl", "train_images_per_s"]]


def decoder_claim(table: pd.DataFrame, column: str, higher_is_better: bool, claim_id: str, claim: str, metric: str,
                  paper_value: str, alpha: float = 0.1, digits: int = 4) -> Claim:
    """"SB beats DeConv on ``column``", decided over seeds by :func:`compare_groups`."""
    sb, deconv = table[table.decoder == "sb"][column], table[table.decoder == "deconv"][column]
    verdict, stats = compare_groups(sb, deconv, higher_is_better=higher_is_better, alpha=alpha)
    ours = {"sb_median": stats["median_a"], "deconv_median": stats["median_b"], "p_value": stats["p_value"],
            "sb": sb.round(digits).tolist(), "deconv": deconv.round(digits).tolist()}
    rule = compare_groups_rule(f"SB {column}", f"DeConv {column}", higher_is_better, alpha)
    return Claim(id=claim_id, paper=PAPER, claim=claim, metric=metric, paper_value=paper_value, ours=ours,
                 verdict=verdict, rule=rule)


def comparison_claims(table: pd.DataFrame, prefix: str, setting: str, figure: str, alpha: float = 0.1) -> list[Claim]:
    """The two claims of a decoder comparison: SB has the higher MIG and the lower reconstruction NLL."""
    return [
        decoder_claim(table, "mig", True, f"{prefix}-mig",
                      f"{setting}: the Spatial Broadcast decoder gives a more disentangled code than DeConv (higher MIG)",
                      "median MIG over seeds", f"SB > DeConv ({figure})", alpha),
        decoder_claim(table, "recon_nll", False, f"{prefix}-reconstruction",
                      f"{setting}: the Spatial Broadcast decoder reconstructs better than DeConv (lower NLL)",
                      "median reconstruction NLL over seeds (nats/image)", f"SB < DeConv ({figure})", alpha, 2),
    ]


def fig2_claims(table: pd.DataFrame, alpha: float = 0.1) -> list[Claim]:
    return comparison_claims(table, "sbd-fig2", "VAE on colored sprites", "Fig. 2", alpha)


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


def comparison_profile(name: str, num_seeds: int | None = None, seed_offset: int = 0) -> SBDProfile:
    """Fig. 2's settings with the first ``num_seeds`` seeds: the other decoder comparisons of the
    chapter (Fig. 3, small objects, held-out region) share them so their runs cost the same."""
    p = profile(name, seed_offset)
    return replace(p, seeds=p.seeds[:num_seeds]) if num_seeds else p


# Small objects: the dSprites scale grid halved (6 values in [0.25, 0.5] instead of [0.5, 1]).
SMALL_SCALES = tuple(float(v) for v in np.linspace(0.25, 0.5, 6))

# Held-out region: no square (shape 0) ever appears in the bottom-right quadrant during training.
HOLDOUT_REGION = {"shape": (0, 1), "pos_x": (16, 32), "pos_y": (16, 32)}


def evaluate_generalisation(run: dict, dataset, p: SBDProfile) -> dict:
    """Reconstruction NLL on seen combinations vs on the held-out region (same number of draws)."""
    config: TrainConfig = run["config"]
    rng = np.random.default_rng(20_000 + config.seed)
    seen = evaluate_elbo(run["model"], dataset, p.eval_samples, rng)
    held = evaluate_elbo(run["model"], dataset, p.eval_samples, rng, sample_factors=dataset.sample_held_out)
    return {"decoder": config.model.decoder, "seed": config.seed, "seen_nll": seen["recon_nll"],
            "heldout_nll": held["recon_nll"], "gap": held["recon_nll"] - seen["recon_nll"]}


def generalisation_claims(table: pd.DataFrame, alpha: float = 0.1) -> list[Claim]:
    return [
        decoder_claim(table, "heldout_nll", False, "sbd-heldout-nll",
                      "Held-out factor combinations: the SB-VAE reconstructs them better than the DeConv-VAE",
                      "median reconstruction NLL on the held-out region (nats/image)",
                      "SB < DeConv (Sec. 4.3, Fig. 5)", alpha, 2),
        decoder_claim(table, "gap", False, "sbd-heldout-gap",
                      "Held-out factor combinations: the SB-VAE's NLL rises less from seen to held-out combinations",
                      "median of (held-out NLL − seen NLL) over seeds (nats/image)",
                      "SB < DeConv (Sec. 4.3)", alpha, 2),
    ]


GEOMETRY_FIXED = {"shape": 1, "scale": 5, "orientation": 0, "hue": 0, "saturation": 4, "value": 4}


def geometry_claim(table: pd.DataFrame, alpha: float = 0.1) -> Claim:
    return decoder_claim(table, "r2", True, "sbd-geometry-linearity",
                         "Latent geometry: a grid of positions maps to a more nearly linear lattice in the SB-VAE's "
                         "position latents than in the DeConv-VAE's",
                         "median affine R² of (x, y) from the two position latents",
                         "SB lattice ≈ linear, DeConv warped (Figs. 6–7, qualitative)", alpha)


def median_run(table: pd.DataFrame, runs: list[dict], decoder: str, column: str = "mig") -> tuple[dict, pd.Series]:
    """The run (and its table row) with the median ``column`` among ``decoder``'s seeds: the one figures show."""
    mine = table[table.decoder == decoder].sort_values(column)
    row = mine.iloc[len(mine) // 2]
    run = next(r for r in runs if r["config"].model.decoder == decoder and r["config"].seed == row.seed)
    return run, row


#: How figures and titles name the two decoders.
DECODER_NAMES = {"deconv": "DeConv", "sb": "Spatial Broadcast"}


def median_seed_traversals(table: pd.DataFrame, runs: list[dict], image, title: str,
                           values: np.ndarray = np.linspace(-2, 2, 7), num_dims: int = 6) -> None:
    """Latent traversals of each decoder's median-MIG run (:func:`median_run`): its ``num_dims`` latents of
    highest KL (from the run's ``evaluation``, :func:`evaluate_run`), each set to ``values`` in turn from
    ``image``'s posterior mean. ``title`` is formatted with ``decoder``, ``seed`` and ``mig``."""
    from dvae_core.evaluate import traverse
    from dvae_core.plots import traversal_grid

    for decoder in ("deconv", "sb"):
        run, row = median_run(table, runs, decoder)
        kl = run["evaluation"]["kl_per_dim"]
        dims = list(np.argsort(kl)[::-1][:num_dims])
        traversal_grid(traverse(run["model"], image, dims, values), dims, kl, values,
                       title.format(decoder=DECODER_NAMES[decoder], seed=int(row.seed), mig=row.mig))


def small_objects_gap_claim(small: pd.DataFrame, normal: pd.DataFrame, small_mig_claim: Claim) -> Claim:
    """"SB's MIG advantage is larger for small objects": compares the SB − DeConv gap of medians."""
    def gap(table: pd.DataFrame) -> float:
        return float(table[table.decoder == "sb"].mig.median() - table[table.decoder == "deconv"].mig.median())

    gap_small, gap_normal = gap(small), gap(normal)
    if gap_small <= gap_normal:
        verdict = "not reproduced"
    else:
        verdict = "reproduced" if small_mig_claim.verdict == "reproduced" else "inconclusive"
    return Claim(id="sbd-small-gap", paper=PAPER,
                 claim="The Spatial Broadcast decoder's MIG advantage is larger for small objects than for normal ones",
                 metric="median MIG (SB) − median MIG (DeConv), small vs normal sprites, same seeds",
                 paper_value="largest benefit on small objects (Sec. 4.2)",
                 ours={"gap_small": gap_small, "gap_normal": gap_normal},
                 verdict=verdict,
                 rule="reproduced if the small-object gap exceeds the normal-size gap and the small-object MIG claim is "
                      "reproduced; not reproduced if the gap is not larger; inconclusive otherwise")


# Fig. 4: β swept log-linearly from 0.4 to 5.4 (the paper's range) with replicas per β
# (``SBDProfile.rate_distortion``); β = 1 is Figure 2's runs, added to the sweep for free and marked on the curves.
def rate_distortion_betas(p: SBDProfile) -> tuple[float, ...]:
    count, _ = p.rate_distortion
    return tuple(float(b) for b in np.round(np.geomspace(0.4, 5.4, count), 4))


def rate_distortion_configs(p: SBDProfile) -> list[TrainConfig]:
    _, replicas = p.rate_distortion
    betas = sorted(set(rate_distortion_betas(p)) | {1.0})
    return [comparison_config(p, decoder, seed, beta=beta) for beta in betas for decoder in ("deconv", "sb")
            for seed in p.seeds[:replicas]]


def curve_claim(table: pd.DataFrame, x: str, y: str, higher_is_better: bool, claim_id: str, claim: str,
                paper_value: str) -> Claim:
    """"SB's y-vs-x curve is better" (over the β sweep), decided by :func:`dvae_core.claims.curve_verdict`."""
    verdict, ours, rule = curve_verdict(table, "decoder", "beta", x, y, "sb", "deconv", higher_is_better)
    return Claim(id=claim_id, paper=PAPER, claim=claim,
                 metric=f"mean SB advantage in {y} at equal {x}, over the shared {x} range",
                 paper_value=paper_value, ours=ours, verdict=verdict, rule=rule)


def rate_distortion_claims(table: pd.DataFrame) -> list[Claim]:
    return [
        curve_claim(table, "kl", "recon_nll", False, "sbd-fig4-nll-vs-kl",
                    "Rate–distortion: at equal KL, the SB-VAE reaches a lower reconstruction NLL than the DeConv-VAE",
                    "SB curve below DeConv (Fig. 4a)"),
        curve_claim(table, "recon_nll", "mig", True, "sbd-fig4-mig-vs-nll",
                    "At equal reconstruction NLL, the SB-VAE has a higher MIG than the DeConv-VAE",
                    "SB curve above DeConv (Fig. 4b)"),
    ]


def no_position_claim(table: pd.DataFrame, alpha: float = 0.1) -> Claim:
    return decoder_claim(table, "mig", True, "sbd-fig5-shapes3d-mig",
                         "Without positional variation (3D object in a room), the SB-VAE still disentangles better "
                         "than the DeConv-VAE (higher MIG)", "median MIG over seeds",
                         "SB ≥ DeConv (Sec. 4.4, Fig. 5)", alpha)


def bench_config(decoder: str, name: str) -> TrainConfig:
    """The run ``dvae_core.bench`` times for ``decoder`` under profile ``name``: Fig. 2's first seed."""
    p = profile(name)
    return comparison_config(p, decoder, p.seeds[0])


BENCH_MODELS = {
    "sb_vae": BenchModel("SB-VAE", "sbd.comparison_config(sbd.profile(profile), 'sb', …)", partial(bench_config, "sb")),
    "deconv_vae": BenchModel("DeConv-VAE", "sbd.comparison_config(sbd.profile(profile), 'deconv', …)",
                             partial(bench_config, "deconv")),
}
