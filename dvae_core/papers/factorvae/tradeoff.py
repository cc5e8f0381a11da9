"""Kim & Mnih 2018, Sec. 4: the β-VAE vs FactorVAE trade-off, and the discriminator's TC over training.

The paper's Figure 4/5 plots reconstruction error against the FactorVAE metric for β-VAEs with
β ∈ {1, 2, 4, 6, 8, 16} and FactorVAEs with γ ∈ {10, 20, 30, 40, 50, 100} on dSprites (and 3D
shapes): raising β buys disentanglement with reconstruction, raising γ buys more of it for less.
Its Figure 7 plots, over training, the discriminator's TC estimate against the "true" TC of the
aggregate posterior: the discriminator underestimates it, and TC falls as disentanglement rises.

``paper`` follows Kim & Mnih / disentanglement_lib (64×64, 10 latents, batch 64, Adam 1e-4 for the
VAE, a 6 × 1000 LeakyReLU(0.2) discriminator with Adam 1e-4 (0.5, 0.9), 3·10⁵ steps, the full
metric). ``preview`` is a documented reduction for 2 CPU cores: 32×32 images, 32-channel convs, a
6 × 256 discriminator, three values of each hyperparameter (the grid's ends and middle), two seeds,
1,500 steps at a 10× higher learning rate for both the VAE and the discriminator (the paper's 1:1
ratio kept: with the discriminator at 1e-4 against a VAE at 1e-3 the encoder outran it, and the
discriminator's TC stayed near zero while the KL grew past 100 nats), and fewer metric votes. At that scale the models have seen
~13 % of one pass over dSprites, where the paper's saw ~26 passes: the preview tests whether the
trade-off already shows, and says so when it does not. The 3D-shapes sweep (procedural renderer, 3
channels) is smaller still in ``preview`` (:class:`Grid`): β ∈ {1, 16}, γ ∈ {10, 40}, two seeds,
750 steps, so that the chapter fits its 30 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest, spearmanr

from dvae_core.claims import Claim, compare_groups, compare_groups_rule, curve_verdict
from dvae_core.evaluate import ENCODE_BATCH, evaluate_elbo, mean_encoder
from dvae_core.metrics import factor_vae_score, gaussian_total_correlation, mig, sample_codes
from dvae_core.models import FactorVAEConfig, FactorVAEModelConfig, VAEConfig
from dvae_core.models.factor_vae import permute_dims
from dvae_core.models.info_wgan import InfoWGANConfig
from dvae_core.models.vae import gaussian_kl
from dvae_core.papers import BenchModel, paper
from dvae_core.profiles import select
from dvae_core.runs import load_snapshots
from dvae_core.train import TrainConfig, model_kind, throughput

PAPER = paper("factorvae").citation
BETA_VAE, FACTOR_VAE, INFO_WGAN = "β-VAE", "FactorVAE", "InfoWGAN-GP"


@dataclass(frozen=True)
class Grid:
    """One dataset's sweep, where it differs from the profile's own (dSprites) one."""
    steps: int
    seeds: tuple[int, ...]
    betas: tuple[float, ...]
    gammas: tuple[float, ...]


@dataclass(frozen=True)
class TradeoffProfile:
    resolution: int
    steps: int
    batch_size: int
    seeds: tuple[int, ...]
    betas: tuple[float, ...]
    gammas: tuple[float, ...]
    channels: int
    hidden: int
    disc_hidden: int
    disc_layers: int
    lr: float
    disc_lr: float
    snapshots: int              # weights kept this many times over training (the TC-over-training plot)
    metric_train: int           # FactorVAE-metric votes (disentanglement_lib: 10,000 / 5,000 / 10,000)
    metric_eval: int
    metric_variance: int
    snapshot_votes: int         # train votes per snapshot (eval votes: half)
    mig_samples: int
    eval_samples: int
    tc_components: int          # N, data points whose posteriors make up q(z) for the "true" TC
    tc_samples: int             # S, Monte-Carlo draws from q(z)
    gan_steps: int              # InfoWGAN-GP baseline: generator steps, conv width, critic updates per step
    gan_channels: int
    gan_critic_steps: int
    datasets: tuple[str, ...] = ("dsprites",)
    checkpoint_every: int = 500
    shapes3d_grid: Grid | None = None   # the 3D-shapes sweep; None: the same as dSprites'


PROFILES = {
    "smoke": TradeoffProfile(resolution=32, steps=12, batch_size=16, seeds=(0, 1), betas=(1.0, 16.0),
                             gammas=(10.0, 100.0), channels=8, hidden=32, disc_hidden=32, disc_layers=2, lr=1e-3,
                             disc_lr=1e-4, snapshots=2, metric_train=40, metric_eval=20, metric_variance=256,
                             snapshot_votes=20, mig_samples=256, eval_samples=64, tc_components=256, tc_samples=128,
                             gan_steps=4, gan_channels=8, gan_critic_steps=2, checkpoint_every=6,
                             datasets=("dsprites", "shapes3d")),
    "preview": TradeoffProfile(resolution=32, steps=1500, batch_size=64, seeds=(0, 1), betas=(1.0, 4.0, 16.0),
                               gammas=(10.0, 40.0, 100.0), channels=32, hidden=128, disc_hidden=256, disc_layers=6,
                               lr=1e-3, disc_lr=1e-3, snapshots=5, metric_train=1000, metric_eval=500,
                               metric_variance=5000, snapshot_votes=400, mig_samples=5000, eval_samples=2048,
                               tc_components=10_000, tc_samples=2000, gan_steps=500, gan_channels=16,
                               gan_critic_steps=5, datasets=("dsprites", "shapes3d"),
                               shapes3d_grid=Grid(steps=750, seeds=(0, 1), betas=(1.0, 16.0), gammas=(10.0, 40.0))),
    "paper": TradeoffProfile(resolution=64, steps=300_000, batch_size=64, seeds=tuple(range(10)),
                             betas=(1.0, 2.0, 4.0, 6.0, 8.0, 16.0), gammas=(10.0, 20.0, 30.0, 40.0, 50.0, 100.0),
                             channels=64, hidden=128, disc_hidden=1000, disc_layers=6, lr=1e-4, disc_lr=1e-4,
                             snapshots=10, metric_train=10_000, metric_eval=5000, metric_variance=10_000,
                             snapshot_votes=2000, mig_samples=10_000, eval_samples=10_000,
                             tc_components=100_000, tc_samples=10_000, gan_steps=300_000, gan_channels=64,
                             gan_critic_steps=5, datasets=("dsprites", "shapes3d"),
                             checkpoint_every=10_000),
}


def profile(name: str, seed_offset: int = 0) -> TradeoffProfile:
    """The profile's settings; ``seed_offset`` shifts every training seed (the notebooks' ``seed``)."""
    p = select(PROFILES, name)
    if seed_offset:
        grid = p.shapes3d_grid
        p = replace(p, seeds=tuple(s + seed_offset for s in p.seeds),
                    shapes3d_grid=grid and replace(grid, seeds=tuple(s + seed_offset for s in grid.seeds)))
    return p


def for_dataset(p: TradeoffProfile, dataset: str) -> TradeoffProfile:
    """``p`` with ``dataset``'s own sweep (steps, seeds, β and γ values) in place of dSprites'."""
    if dataset not in IN_CHANNELS:
        raise ValueError(f"unknown dataset {dataset!r} for the trade-off; known: {sorted(IN_CHANNELS)}")
    grid = p.shapes3d_grid if dataset == "shapes3d" else None
    if grid is None:
        return p
    return replace(p, steps=grid.steps, seeds=grid.seeds, betas=grid.betas, gammas=grid.gammas)


IN_CHANNELS = {"dsprites": 1, "shapes3d": 3}


def run_config(p: TradeoffProfile, seed: int, beta: float = 1.0, gamma: float | None = None,
               dataset: str = "dsprites") -> TrainConfig:
    """A β-VAE (``gamma`` None) or a FactorVAE with weight ``gamma`` on the TC (and β = 1, as the paper)."""
    model = VAEConfig(decoder="deconv", latent_dim=10, in_channels=IN_CHANNELS[dataset], resolution=p.resolution,
                      encoder_channels=p.channels, decoder_channels=p.channels, hidden=p.hidden)
    if gamma is not None:
        model = FactorVAEModelConfig.of(model, FactorVAEConfig(gamma=gamma, disc_hidden=p.disc_hidden,
                                                               disc_layers=p.disc_layers, disc_lr=p.disc_lr))
    return TrainConfig(dataset=dataset, dataset_kwargs={"resolution": p.resolution}, model=model, beta=beta,
                       steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=seed,
                       checkpoint_every=min(p.checkpoint_every, p.steps), log_every=max(1, min(50, p.steps // 10)),
                       snapshot_every=p.steps // p.snapshots)


def tradeoff_configs(p: TradeoffProfile, dataset: str = "dsprites") -> list[TrainConfig]:
    """Every run of the sweep: β-VAEs over ``betas`` then FactorVAEs over ``gammas``, each for every seed."""
    return ([run_config(p, s, beta=b, dataset=dataset) for b in p.betas for s in p.seeds]
            + [run_config(p, s, gamma=g, dataset=dataset) for g in p.gammas for s in p.seeds])


def gan_configs(p: TradeoffProfile, dataset: str = "dsprites") -> list[TrainConfig]:
    """The InfoWGAN-GP baseline, one run per seed: 10 continuous codes and no noise (every variation must
    pass through the codes the metric reads), WGAN-GP's Adam 1e-4 and 5 critic updates per step."""
    model = InfoWGANConfig(code_dim=10, in_channels=IN_CHANNELS[dataset], resolution=p.resolution,
                           channels=p.gan_channels, hidden=p.hidden, critic_steps=p.gan_critic_steps)
    return [TrainConfig(dataset=dataset, dataset_kwargs={"resolution": p.resolution}, model=model, steps=p.gan_steps,
                        batch_size=p.batch_size, lr=1e-4, seed=s, checkpoint_every=min(p.checkpoint_every, p.gan_steps),
                        log_every=max(1, min(50, p.gan_steps // 10))) for s in p.seeds]


def evaluate_gan_run(run: dict, dataset, p: TradeoffProfile) -> dict:
    """The FactorVAE metric and MIG of a GAN's code predictor Q (the GAN has no reconstruction to score)."""
    config: TrainConfig = run["config"]
    score, mig_scores = disentanglement(run["model"], dataset, p, np.random.default_rng(20_000 + config.seed))
    return {"model": INFO_WGAN, "seed": config.seed, "factor_score": score["eval_accuracy"],
            "mig": mig_scores["score"], "train_images_per_s": throughput(run["history"])}


def trajectory_configs(p: TradeoffProfile, dataset: str = "dsprites") -> list[TrainConfig]:
    """The runs followed over training: every FactorVAE (the discriminator claim is tested over them) and
    the first seed of each β-VAE (for the TC-vs-metric claim; snapshot evaluation is the costly part)."""
    first = p.seeds[0]
    return [c for c in tradeoff_configs(p, dataset) if is_factor_vae(c) or c.seed == first]


def is_factor_vae(config: TrainConfig) -> bool:
    return model_kind(config) == "factor_vae"


def model_name(config: TrainConfig) -> str:
    return FACTOR_VAE if is_factor_vae(config) else BETA_VAE


def setting(config: TrainConfig) -> float:
    """The swept hyperparameter: β for a β-VAE, γ for a FactorVAE."""
    return config.model.gamma if is_factor_vae(config) else config.beta


def setting_label(config: TrainConfig) -> str:
    return f"γ={config.model.gamma:g}" if is_factor_vae(config) else f"β={config.beta:g}"


@torch.inference_mode()
def posterior_sample(model, dataset, num_points: int, rng: np.random.Generator, batch_size: int = 1024):
    """(mean, logvar) of q(z|x) on ``num_points`` uniform draws of the factor grid, as float64 tensors."""
    dev = next(model.parameters()).device
    means, logvars = [], []
    for start in range(0, num_points, batch_size):
        x = dataset.images(dataset.sample_factors(min(batch_size, num_points - start), rng)).to(dev)
        for chunk in x.split(ENCODE_BATCH):  # draws stay 1,024 at a time (the rng stream); encoding is faster in 256s
            mean, logvar = model.encode(chunk)
            means.append(mean.cpu().double())
            logvars.append(logvar.cpu().double())
    return torch.cat(means), torch.cat(logvars)


@torch.inference_mode()
def discriminator_tc(model, mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> float:
    """The FactorVAE's own TC estimate: the mean logit difference of its discriminator on z ~ q(z|x)."""
    dev = next(model.parameters()).device
    z = mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype) * (0.5 * logvar).exp()
    return float(model.discriminator.log_density_ratio(z.float().to(dev)).mean())


def permute_posteriors(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator):
    """Each dimension's (μ_j, log σ²_j) pairs shuffled across data points, independently per dimension:
    an aggregate posterior with the same marginals and (as N → ∞) no total correlation."""
    rows = torch.arange(len(mean)).unsqueeze(1).expand(mean.shape)
    order = permute_dims(rows, generator)  # Algorithm 1 on row indices, so each μ_j keeps its log σ²_j
    return torch.gather(mean, 0, order), torch.gather(logvar, 0, order)


def total_correlations(model, dataset, p: TradeoffProfile, rng: np.random.Generator) -> dict[str, float]:
    """The "true" TC (Monte Carlo over the aggregate posterior of ``tc_components`` draws), its finite-N
    floor, and, for a FactorVAE, its discriminator's estimate on codes of the same draws.

    The floor is the same estimator on the dimension-permuted posteriors (:func:`permute_posteriors`),
    whose true TC vanishes as N grows: what it reports is the estimator's upward bias at this N and
    these posterior widths. ``tc_excess`` = ``tc_true`` − floor is the conservative reading."""
    mean, logvar = posterior_sample(model, dataset, p.tc_components, rng)
    generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
    true = gaussian_total_correlation(mean, logvar, num_samples=p.tc_samples, generator=generator)
    floor = gaussian_total_correlation(*permute_posteriors(mean, logvar, generator), num_samples=p.tc_samples,
                                       generator=generator)
    out = {"tc_true": true["tc"], "tc_true_se": true["std_error"], "tc_floor": floor["tc"],
           "tc_excess": true["tc"] - floor["tc"], "tc_max": true["max_tc"],
           "active_dims": int((gaussian_kl(mean, logvar).mean(0) > 0.1).sum())}
    out["tc_disc"] = discriminator_tc(model, mean, logvar, generator) if hasattr(model, "discriminator") else np.nan
    return out


def disentanglement(model, dataset, p: TradeoffProfile, rng: np.random.Generator) -> tuple[dict, dict]:
    """The FactorVAE metric and MIG of ``model``'s posterior means (or a GAN's code predictor), in that order
    on ``rng``: the full scores of :func:`factor_vae_score` and :func:`mig`."""
    encode = mean_encoder(model)
    score = factor_vae_score(dataset, encode, rng, num_train=p.metric_train, num_eval=p.metric_eval,
                             num_variance_estimate=p.metric_variance)
    codes, factors = sample_codes(dataset, encode, p.mig_samples, rng)
    return score, mig(codes, factors)


def evaluate_run(run: dict, dataset, p: TradeoffProfile) -> dict:
    """Reconstruction, FactorVAE metric, MIG and both TCs of one trained run (independent evaluation draws)."""
    config: TrainConfig = run["config"]
    model = run["model"]
    rng = np.random.default_rng(20_000 + config.seed)
    score, mig_scores = disentanglement(model, dataset, p, rng)
    elbo = evaluate_elbo(model, dataset, p.eval_samples, rng)
    return {"model": model_name(config), "setting": setting(config), "label": setting_label(config),
            "seed": config.seed, "recon_nll": elbo["recon_nll"], "kl": elbo["kl"],
            "factor_score": score["eval_accuracy"], "mig": mig_scores["score"],
            **total_correlations(model, dataset, p, rng),
            "kl_per_dim": elbo["kl_per_dim"], "mutual_info": mig_scores["mutual_info"],
            "factor_entropy": mig_scores["factor_entropy"], "train_images_per_s": throughput(run["history"])}


TABLE_COLUMNS = ["model", "setting", "seed", "recon_nll", "kl", "factor_score", "mig", "tc_true", "tc_floor", "tc_disc",
                 "active_dims", "train_images_per_s"]


def tradeoff_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)[TABLE_COLUMNS]


def snapshot_trajectory(snapshots: list[tuple[int, torch.nn.Module]], config: TrainConfig, dataset,
                        p: TradeoffProfile) -> pd.DataFrame:
    """Over training: step, true TC, the discriminator's TC (FactorVAE) and the FactorVAE metric."""
    rows = []
    for step, model in snapshots:
        rng = np.random.default_rng(30_000 + config.seed)  # the same draws at every step: only the model changes
        score = factor_vae_score(dataset, mean_encoder(model), rng, num_train=p.snapshot_votes,
                                 num_eval=max(1, p.snapshot_votes // 2), num_variance_estimate=p.metric_variance)
        rows.append({"model": model_name(config), "setting": setting(config), "seed": config.seed, "step": step,
                     "factor_score": score["eval_accuracy"], **total_correlations(model, dataset, p, rng)})
    return pd.DataFrame(rows)


def snapshot_evaluation(run: dict, dataset, p: TradeoffProfile) -> pd.DataFrame:
    """:func:`snapshot_trajectory` of a run's kept weights, read from the run store ``run["store"]``: the
    ``evaluate`` of a sweep, so each run's snapshots are scored where the sweep runs it."""
    config: TrainConfig = run["config"]
    snapshots = load_snapshots(config, Path(run["store"]), device=str(next(run["model"].parameters()).device))
    return snapshot_trajectory(snapshots, config, dataset, p)


# --- claims -------------------------------------------------------------------------------------------


def tradeoff_claims(table: pd.DataFrame, dataset: str) -> list[Claim]:
    """FactorVAE's disentanglement-vs-reconstruction curve lies above the β-VAE's (both metrics)."""
    claims = []
    for column, metric_name in (("factor_score", "FactorVAE metric"), ("mig", "MIG")):
        verdict, ours, rule = curve_verdict(table, "model", "setting", "recon_nll", column, FACTOR_VAE, BETA_VAE,
                                            higher_is_better=True)
        claims.append(Claim(
            id=f"fvae-tradeoff-{dataset}-{'metric' if column == 'factor_score' else 'mig'}", paper=PAPER,
            claim=f"On {dataset}, FactorVAE reaches a higher {metric_name} than β-VAE at the same reconstruction "
                  f"error (a better reconstruction–disentanglement trade-off)",
            metric=f"mean FactorVAE advantage in {metric_name} at equal reconstruction NLL, over the shared range",
            paper_value="FactorVAE curve above β-VAE (Figs. 4 and 5: e.g. ~0.82 vs ~0.73 metric at similar error)",
            ours=ours, verdict=verdict, rule=rule))
    return claims


def gan_claim(gans: pd.DataFrame, table: pd.DataFrame, alpha: float = 0.1) -> Claim:
    """InfoWGAN-GP disentangles worse than FactorVAE: every FactorVAE run of the γ sweep against every GAN seed."""
    fvae = table[table.model == FACTOR_VAE].factor_score.to_numpy()
    verdict, ours = compare_groups(fvae, gans.factor_score.to_numpy(), higher_is_better=True, alpha=alpha)
    return Claim(id="fvae-infowgan-metric", paper=PAPER,
                 claim="InfoWGAN-GP reaches a lower FactorVAE metric than FactorVAE on dSprites",
                 metric="FactorVAE metric: FactorVAE runs (all γ, all seeds) vs InfoWGAN-GP seeds",
                 paper_value="InfoWGAN-GP below the VAE-based methods on 2D shapes (Sec. 4.1)",
                 ours={"median_factorvae": ours["median_a"], "median_infowgan": ours["median_b"],
                       "p_value": ours["p_value"], "n": ours["n"]},
                 verdict=verdict, rule=compare_groups_rule("FactorVAE", "InfoWGAN-GP", True, alpha))


def _sign_test(values: np.ndarray, alpha: float) -> tuple[str, float]:
    """One-sided sign test that ``values`` are positive: (verdict, p)."""
    values = values[np.isfinite(values) & (values != 0)]
    if len(values) == 0:
        return "inconclusive", float("nan")
    positive = int((values > 0).sum())
    p = float(binomtest(positive, len(values), 0.5, alternative="greater").pvalue)
    if positive <= len(values) / 2:
        return "not reproduced", p
    return ("reproduced" if p < alpha else "inconclusive"), p


def underestimate_claim(trajectories: pd.DataFrame, alpha: float = 0.1) -> Claim:
    """The discriminator's TC is below the true TC: per FactorVAE run, the mean over snapshots of
    (true − floor − discriminator), the true TC taken net of the estimator's finite-N floor so that its
    upward bias cannot make the claim; a one-sided sign test over runs."""
    fvae = trajectories[trajectories.model == FACTOR_VAE]
    gaps = (fvae.tc_excess - fvae.tc_disc).groupby([fvae.setting, fvae.seed]).mean().to_numpy()
    verdict, p = _sign_test(gaps, alpha)
    return Claim(id="fvae-tc-underestimate", paper=PAPER,
                 claim="The discriminator's estimate of TC underestimates the true TC of the aggregate posterior",
                 metric="per FactorVAE run, mean over training snapshots of (true TC − its finite-N floor − "
                        "discriminator TC), nats",
                 paper_value="discriminator TC below the true TC throughout training (Fig. 7)",
                 ours={"median_gap": float(np.median(gaps)) if len(gaps) else float("nan"),
                       "runs_below": int((gaps > 0).sum()), "runs": int(len(gaps)), "p_value": p},
                 verdict=verdict,
                 rule=f"reproduced if more than half the runs have a positive gap and a one-sided sign test over "
                      f"runs gives p < {alpha}; not reproduced if at most half do; inconclusive otherwise")


def tc_vs_disentanglement_claim(trajectories: pd.DataFrame, alpha: float = 0.1) -> Claim:
    """Over training, TC falls as the metric rises: per run, Spearman ρ(true TC − floor, metric) over snapshots;
    a one-sided sign test that ρ < 0 over runs (β-VAE and FactorVAE runs alike)."""
    rhos = []
    for _, run in trajectories.groupby(["model", "setting", "seed"]):
        if run.tc_excess.nunique() > 1 and run.factor_score.nunique() > 1:
            rhos.append(spearmanr(run.tc_excess, run.factor_score).statistic)
    rhos = np.asarray(rhos, float)
    verdict, p = _sign_test(-rhos, alpha)
    return Claim(id="fvae-tc-falls", paper=PAPER,
                 claim="During training, lower total correlation goes with better disentanglement",
                 metric="per run, Spearman ρ between true TC (net of its floor) and the FactorVAE metric over "
                        "training snapshots",
                 paper_value="TC falls while the metric rises (Fig. 7, Sec. 4)",
                 ours={"median_rho": float(np.median(rhos)) if len(rhos) else float("nan"),
                       "runs_negative": int((rhos < 0).sum()), "runs": int(len(rhos)), "p_value": p},
                 verdict=verdict,
                 rule=f"reproduced if more than half the runs have ρ < 0 and a one-sided sign test over runs gives "
                      f"p < {alpha}; not reproduced if at most half do; inconclusive otherwise (runs whose TC or "
                      f"metric never changes are left out)")


# --- factor labels, figures ---------------------------------------------------------------------------


def factor_labels(mutual_info: np.ndarray, factor_entropy: np.ndarray, factor_names, min_share: float = 0.1) -> list[str]:
    """Per latent dimension, the factor it carries most information about (MI normalised by the factor's
    entropy, as MIG normalises it), or "—" when that share is below ``min_share``."""
    shares = np.asarray(mutual_info) / np.where(np.asarray(factor_entropy) > 0, factor_entropy, np.inf)
    labels = []
    for row in shares:
        k = int(np.argmax(row))
        labels.append(f"{factor_names[k]} ({row[k]:.2f})" if row[k] >= min_share else "—")
    return labels


def best_run(table: pd.DataFrame, model: str, column: str = "factor_score") -> pd.Series:
    """The run of ``model`` with the highest ``column`` (ties: the better reconstruction)."""
    mine = table[table.model == model].sort_values([column, "recon_nll"], ascending=[False, True])
    return mine.iloc[0]


def plot_tradeoff(table: pd.DataFrame, dataset: str):
    """Reconstruction NLL against each disentanglement score: mean ± one std over seeds, one point per β or γ."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.9))
    summary = table.groupby(["model", "setting"])[["recon_nll", "factor_score", "mig"]].agg(["mean", "std"])
    for ax, (column, name) in zip(axes, (("factor_score", "FactorVAE metric"), ("mig", "MIG"))):
        for model, colour, marker, symbol in ((BETA_VAE, "C0", "o", "β"), (FACTOR_VAE, "C3", "s", "γ")):
            s = summary.loc[model].sort_index()
            ax.errorbar(s[("recon_nll", "mean")], s[(column, "mean")], xerr=s[("recon_nll", "std")].fillna(0),
                        yerr=s[(column, "std")].fillna(0), fmt=marker + "-", color=colour, capsize=2, ms=5,
                        label=model)
            for value, row in s.iterrows():
                ax.annotate(f"{symbol}={value:g}", (row[("recon_nll", "mean")], row[(column, "mean")]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
        ax.set(xlabel="reconstruction NLL (nats / image, lower is better)", ylabel=f"{name} (higher is better)",
               title=f"{dataset}: {name} vs reconstruction")
    axes[0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_tc_trajectories(trajectories: pd.DataFrame):
    """Left: true TC (solid) and discriminator TC (dashed) over training for the FactorVAE runs; right: the
    metric over training for every run."""
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.9))
    palette = {}
    for i, ((model, value), _) in enumerate(trajectories.groupby(["model", "setting"])):
        palette[(model, value)] = f"C{i}"
    for (model, value, seed), run in trajectories.groupby(["model", "setting", "seed"]):
        colour = palette[(model, value)]
        label = f"{model} {'β' if model == BETA_VAE else 'γ'}={value:g}" if seed == trajectories.seed.min() else None
        if model == FACTOR_VAE:
            axes[0].plot(run.step, run.tc_excess, "-o", color=colour, ms=3, label=label)
            axes[0].plot(run.step, run.tc_disc, "--", color=colour, alpha=0.8)
        axes[1].plot(run.step, run.factor_score, "-o" if model == FACTOR_VAE else ":^", color=colour, ms=3,
                     label=label)
    axes[0].set(xlabel="training step", ylabel="total correlation (nats)",
                title="FactorVAE: true TC − floor (solid) vs discriminator (dashed)")
    axes[1].set(xlabel="training step", ylabel="FactorVAE metric", title="Disentanglement over training")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def bench_config(name: str) -> TrainConfig:
    """The run ``dvae_core.bench`` times under profile ``name``: a FactorVAE at the middle γ of the grid."""
    p = profile(name)
    return run_config(p, p.seeds[0], gamma=p.gammas[len(p.gammas) // 2])


BENCH_MODELS = {"factor_vae": BenchModel("FactorVAE", "tradeoff.run_config(gamma=middle of the grid)", bench_config)}
