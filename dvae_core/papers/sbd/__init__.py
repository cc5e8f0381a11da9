"""Spatial Broadcast Decoder (Watters, Matthey, Burgess, Lerchner 2019, arXiv:1901.07017).

Profiles and runs for the chapter's notebooks, and the claim checks.

Fig. 2 (DeConv-VAE vs Spatial-Broadcast-VAE on colored sprites). The paper's setting (its
Appendix, as collected in ``shared/paper-facts.md``): 64×64 colored sprites, 10 latents, an encoder
of 4 conv layers (64 ch, 4×4, stride 2) and an MLP of 256 units, SB decoder of 4 unstrided 3×3
conv layers of 64 channels on a broadcast grid with coordinate channels, Adam 3e-4, batch 16,
1.5×10⁶ steps. The ``preview`` profile keeps the models, the data, the optimiser (Adam 3e-4) and the
batch size (16) and shrinks the cost: 32×32 images, 32 channels, 3 SB layers with 'same' padding,
1,500 steps; six seeds for Fig. 2, eight for the other comparisons, and for Fig. 4 the two ends of
the β range (plus β = 1) with five replicas each. The eight and the five were fixed from the power
plans of a pilot with three seeds and two replicas (seed offset 1000), so that the comparisons can be
decided at all (three pairs cannot go below p = 1/8); Fig. 2 also has a budget curve (1,500 to 13,500
steps on three seeds). An SB step costs ~4× a DeConv step on a CPU. The
likelihood is Bernoulli in every profile (disentanglement_lib's default; the paper's Gaussian
with fixed variance is unconfirmed).

Verdicts come from :mod:`dvae_core.rules`. SB and DeConv runs of the same seed share the encoder's
initialisation and the data stream, so every decoder comparison is paired by seed
(:func:`dvae_core.rules.paired`, an exact signed-rank test of the per-seed differences); "larger for
small objects" is the same test of a per-seed difference of differences; the Fig. 4 curves are
per-seed curve gaps (:func:`dvae_core.rules.curve`). A run enters a test only if it passes its
learning gate (:func:`run_gate`): MIG above the same run's untrained model's on the same evaluation
draws, reconstruction NLL below the mean image's, KL ≥ 1 nat.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from dvae_core import rules
from dvae_core.claims import Claim, gate_summary, training_budget
from dvae_core.costs import mean_replicate_cost
from dvae_core.evaluate import evaluate_elbo, mean_encoder, mean_image_nll
from dvae_core.metrics import mig, sample_codes
from dvae_core.models import FactorVAEConfig, FactorVAEModelConfig, VAEConfig
from dvae_core.papers import BenchModel, paper
from dvae_core.papers.sbd.geometry import position_grid
from dvae_core.profiles import select
from dvae_core.train import TrainConfig, build_dataset, throughput, untrained_model

PAPER = paper("sbd").citation


@dataclass(frozen=True)
class SBDProfile:
    """Every setting of the chapter that depends on the profile.

    ``fig3_factor_vae`` is Fig. 3's FactorVAE: the discriminator is Kim & Mnih's (6 × 1000, LeakyReLU 0.2,
    Adam (0.5, 0.9)), learning at the VAE's rate as in their paper (both 1e-4 there, both ``lr`` here);
    γ = 10 is the bottom of their sweep {10, …, 100} (the SBD paper's γ is not stated in what we could
    read). A pilot on seeds the book does not use (``scripts/fig3_pilot.py``, offset 3000) chose both: with
    γ = 30 and the discriminator at 1e-4 while the VAE learnt at 3e-4, the encoder chased a discriminator
    that could not keep up, and the FactorVAE's KL ran to 3–5 times the plain VAE's while its
    reconstructions got worse. Smoke shrinks the discriminator; preview keeps its depth at a width of
    256, as the FactorVAE chapter's preview does: at batch 16 on a CPU the 6 × 1000 discriminator costs
    more than the DeConv-VAE it regularises. ``rate_distortion`` is Fig. 4's sweep:
    (number of βs, log-spaced over the paper's 0.4–5.4, and replicas per β). ``budget_steps`` are the
    training lengths of Fig. 2's budget curve (:func:`budget_curve`), on its first ``budget_seeds`` seeds;
    each longer run continues the shorter one's checkpoint (:func:`dvae_core.runs.is_prefix`).
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
    comparison_seeds: int
    budget_steps: tuple[int, ...] = ()
    budget_seeds: int = 3
    lr: float = 3e-4
    mig_samples: int = 10_000
    eval_samples: int = 2048
    checkpoint_every: int = 500


PROFILES = {
    "smoke": SBDProfile(resolution=32, steps=20, batch_size=16, seeds=(0, 1), encoder_channels=8,
                         decoder_channels=8, hidden=32, sb_layers=2, sb_padding="same",
                         fig3_factor_vae=FactorVAEConfig(gamma=10.0, disc_hidden=32, disc_layers=2, disc_lr=3e-4),
                         rate_distortion=(2, 1), comparison_seeds=2, budget_steps=(20, 40), budget_seeds=2,
                         mig_samples=512, eval_samples=128, checkpoint_every=10),
    "preview": SBDProfile(resolution=32, steps=1500, batch_size=16, seeds=(0, 1, 2, 3, 4, 5), encoder_channels=32,
                           decoder_channels=32, hidden=256, sb_layers=3, sb_padding="same",
                           fig3_factor_vae=FactorVAEConfig(gamma=10.0, disc_hidden=256, disc_lr=3e-4),
                           rate_distortion=(2, 5),
                           comparison_seeds=8, budget_steps=(1500, 4500, 13500)),
    "paper": SBDProfile(resolution=64, steps=1_500_000, batch_size=16, seeds=tuple(range(10)),
                         encoder_channels=64, decoder_channels=64, hidden=256, sb_layers=4, sb_padding="valid",
                         fig3_factor_vae=FactorVAEConfig(gamma=10.0, disc_lr=3e-4), rate_distortion=(11, 10), comparison_seeds=10,
                         checkpoint_every=10_000),
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


#: How figures and titles name the two decoders.
DECODER_NAMES = {"deconv": "DeConv", "sb": "Spatial Broadcast"}


# --------------------------------------------------------------------------- evaluation
# Each evaluation draws its images from a generator seeded by the run's seed (offset so the draws are
# independent of training's), and draws them afresh for every model it scores: the trained run and its
# untrained model see the same images, and SB and DeConv at one seed see the same images too.
MIG_DRAWS = 10_000           # + seed: the MIG and ELBO draws of evaluate_run
HELDOUT_DRAWS = 20_000       # + seed: the held-out region's ELBO draws
MEAN_IMAGE_DRAWS = 30_000    # + seed: the mean image's estimation and scoring draws


def _mig_and_elbo(model, dataset, p: SBDProfile, seed: int) -> dict:
    rng = np.random.default_rng(MIG_DRAWS + seed)
    codes, factors = sample_codes(dataset, mean_encoder(model), p.mig_samples, rng)
    return {"mig": mig(codes, factors), "elbo": evaluate_elbo(model, dataset, p.eval_samples, rng)}


def _device_of(model) -> str:
    return str(next(model.parameters()).device)


def evaluate_run(run: dict, dataset, p: SBDProfile) -> dict:
    """MIG (on ``mig_samples`` uniform grid draws) and the ELBO's two terms of one trained run, and what its
    learning gate (:func:`run_gate`) compares them with, on the same draws:

    - ``untrained_mig``, ``untrained_recon_nll``: the run's model before its first step
      (:func:`dvae_core.train.untrained_model`), scored by the same code on the same images. Measured per
      run (it costs ~2 s): SB and DeConv at one seed share the encoder's initialisation, so their
      untrained MIGs are equal, which the tests check rather than assume;
    - ``mean_image_nll``: the NLL of predicting every image by the dataset's mean image
      (:func:`dvae_core.evaluate.mean_image_nll`, ``eval_samples`` draws), the reconstruction baseline.
    """
    config: TrainConfig = run["config"]
    model = run["model"]
    trained = _mig_and_elbo(model, dataset, p, config.seed)
    untrained = _mig_and_elbo(untrained_model(config, _device_of(model)), dataset, p, config.seed)
    baseline = mean_image_nll(model.likelihood, dataset, p.eval_samples,
                              np.random.default_rng(MEAN_IMAGE_DRAWS + config.seed))
    elbo = trained["elbo"]
    return {"decoder": config.model.decoder, "seed": config.seed, "mig": trained["mig"]["score"],
            "recon_nll": elbo["recon_nll"], "kl": elbo["kl"], "untrained_mig": untrained["mig"]["score"],
            "untrained_recon_nll": untrained["elbo"]["recon_nll"], "mean_image_nll": baseline,
            "kl_per_dim": elbo["kl_per_dim"], "mig_per_factor": trained["mig"]["per_factor"],
            "train_images_per_s": throughput(run["history"])}


def score_on_training_data(run: dict, p: SBDProfile, score=evaluate_run) -> dict:
    """``score(run, dataset, p)`` on the data the run trained on (its config's dataset and kwargs)."""
    return score(run, build_dataset(run["config"]), p)


def scorer(p: SBDProfile, score=evaluate_run):
    """``evaluate=`` for :func:`~dvae_core.sweep.get_or_train_all`: each run is scored by ``score`` (default
    :func:`evaluate_run`) on its own training data, on the worker that trained it, so one run's MIG
    overlaps the next run's training; the rows are ``run["evaluation"]``."""
    return partial(score_on_training_data, p=p, score=score)


#: The columns of an evaluated run that its learning gate reads, and the per-run columns the tables show.
GATE_COLUMNS = ("kl", "mig", "untrained_mig", "recon_nll", "mean_image_nll")
TABLE_COLUMNS = ("decoder", "seed", "mig", "recon_nll", "kl", "untrained_mig", "untrained_recon_nll",
                 "mean_image_nll", "train_images_per_s")


def fig2_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)[list(TABLE_COLUMNS)]


# --------------------------------------------------------------------------- learning gate, budget, cost
def run_gate(row) -> rules.Gate:
    """:func:`dvae_core.rules.learning_gate` of one evaluated run (a row of :func:`evaluate_run`'s numbers):
    MIG above its untrained model's (same draws), reconstruction NLL below the mean image's, KL ≥ 1 nat."""
    missing = [c for c in GATE_COLUMNS if c not in row]
    if missing:
        raise ValueError(f"a run's learning gate needs {', '.join(missing)} (from sbd.evaluate_run)")
    return rules.learning_gate(kl=float(row["kl"]), score=float(row["mig"]),
                               untrained_score=float(row["untrained_mig"]), recon_nll=float(row["recon_nll"]),
                               mean_image_nll=float(row["mean_image_nll"]))


def table_gates(table: pd.DataFrame) -> list[rules.Gate]:
    return [run_gate(row) for _, row in table.iterrows()]


def budget(p: SBDProfile) -> dict:
    """Training images per run (steps × batch size) against the paper profile's."""
    paper_profile = PROFILES["paper"]
    return training_budget(p.steps * p.batch_size, paper_profile.steps * paper_profile.batch_size)


def replicate_cost(runs: list[dict] | None, replicates: int) -> rules.Cost | None:
    """What one more replicate costs when ``runs`` make ``replicates`` of them (a seed pair, a seed's curve,
    the four runs of a difference of differences); None without runs (no cost in the power plan)."""
    return mean_replicate_cost(runs, replicates) if runs else None


def verdict_report(claims: list[Claim]) -> str:
    """Each claim's verdict and reason, the sentence with its numbers (for an underpowered claim: the
    replicates that would decide it and their cost), its learning gate and its training budget, as text."""
    lines = []
    for c in claims:
        lines.append(f"{c.id}: {c.verdict}" + (f" ({c.reason})" if c.reason else ""))
        lines.append(f"  {c.explanation}")
        if c.gate:
            collapsed = f", {c.gate['collapsed']} collapsed" if c.gate["collapsed"] else ""
            lines.append(f"  learning gate: {c.gate['passed']} of {c.gate['runs']} runs passed{collapsed}")
        if c.budget:
            lines.append(f"  training budget: {c.budget['images_per_run']:,} images per run, "
                         f"{c.budget['ratio']:.2g} × the paper's {c.budget['paper_images_per_run']:,}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- decoder comparisons
# The smallest effect each claim means (in the column's units): a per-seed effect significantly below
# it is evidence against the claim. Chosen from each metric's scale, not from which way the runs went.
MIN_EFFECTS = {
    # MIG lies in [0, 1]; untrained encoders score ≈ 0.002–0.02 and the preview's trained runs ≈ 0.02–0.07,
    # with a seed-to-seed spread of ≈ 0.015 per decoder: 0.02 is about the smallest MIG gap that would show
    # between Fig. 2's two boxes, so "SB disentangles better" by less than that is no advantage.
    "mig": 0.02,
    # Reconstruction NLL is ≈ 40–1200 nats/image across the chapter's datasets; 1 nat/image is below 1 % of
    # any of them (and below one evaluation's standard error, ≈ 1.5 nats/image on 2,048 draws): a smaller
    # difference is no better reconstruction anyone could see.
    "recon_nll": 1.0,
    "heldout_nll": 1.0,
    "gap": 1.0,
    # Affine R² of position lies in [0, 1] (preview: SB ≈ 0.99, DeConv ≈ 0.93): 0.01 is the smallest change
    # in how straight the lattice is that a reader of the grid plots could see.
    "r2": 0.01,
}
UNITS = {"mig": "", "recon_nll": "nats/image", "heldout_nll": "nats/image", "gap": "nats/image", "r2": ""}

# "SB does not hurt without positional variation": SB's MIG may fall short of DeConv's by at most this
# (the MIG minimal effect: a smaller shortfall is no disadvantage a reader could see).
NO_POSITION_MIG_MARGIN = 0.02


def decoder_arms(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SB's and DeConv's rows, indexed and sorted by seed; a ValueError unless both arms have the same seeds,
    once each (a paired test pairs by seed)."""
    arms = []
    for decoder in ("sb", "deconv"):
        rows = table[table.decoder == decoder]
        if rows.seed.duplicated().any():
            raise ValueError(f"{DECODER_NAMES[decoder]} has more than one run for seed(s) "
                             f"{sorted(rows.seed[rows.seed.duplicated()].tolist())}")
        arms.append(rows.set_index("seed").sort_index())
    sb, deconv = arms
    if list(sb.index) != list(deconv.index):
        raise ValueError(f"the decoders' seeds differ, so they cannot be paired: SB {list(sb.index)}, "
                         f"DeConv {list(deconv.index)}")
    return sb, deconv


def decoder_claim(table: pd.DataFrame, column: str, higher_is_better: bool, claim_id: str, claim: str, metric: str,
                  paper_value: str, *, p: SBDProfile, runs: list[dict] | None, min_effect: float | None = None,
                  digits: int = 4) -> Claim:
    """"SB beats DeConv on ``column``": :func:`dvae_core.rules.paired` over seeds (SB and DeConv share each
    seed's initialisation and data), minimal effect ``MIN_EFFECTS[column]`` unless given. A seed pair counts
    only if both runs pass :func:`run_gate`; ``runs`` (the comparison's runs) price one more pair."""
    sb, deconv = decoder_arms(table)
    gates_sb, gates_deconv = table_gates(sb), table_gates(deconv)
    outcome = decoder_outcome(sb, deconv, gates_sb, gates_deconv, column, higher_is_better,
                              replicate_cost(runs, len(sb)), min_effect)
    return Claim.decided(outcome, id=claim_id, paper=PAPER, claim=claim, metric=metric, paper_value=paper_value,
                         ours=_arms_ours(sb, deconv, column, digits), budget=budget(p),
                         seeds=[int(s) for s in sb.index], gate=gate_summary(gates_sb + gates_deconv))


def decoder_outcome(sb: pd.DataFrame, deconv: pd.DataFrame, gates_sb: list[rules.Gate],
                    gates_deconv: list[rules.Gate], column: str, higher_is_better: bool,
                    cost: rules.Cost | None, min_effect: float | None = None) -> rules.Outcome:
    """The rule of :func:`decoder_claim` on arms from :func:`decoder_arms` and their gates."""
    min_effect = MIN_EFFECTS[column] if min_effect is None else min_effect
    return rules.paired(sb[column].to_numpy(float), deconv[column].to_numpy(float),
                        higher_is_better=higher_is_better, min_effect=min_effect, gates_a=gates_sb,
                        gates_b=gates_deconv, cost=cost, unit=UNITS.get(column, ""))


def _arms_ours(sb: pd.DataFrame, deconv: pd.DataFrame, column: str, digits: int) -> dict:
    return {"sb_median": round(float(sb[column].median()), digits),
            "deconv_median": round(float(deconv[column].median()), digits),
            "sb": sb[column].round(digits).tolist(), "deconv": deconv[column].round(digits).tolist()}


def comparison_claims(table: pd.DataFrame, prefix: str, setting: str, figure: str, *, p: SBDProfile,
                      runs: list[dict] | None) -> list[Claim]:
    """The two claims of a decoder comparison: SB has the higher MIG and the lower reconstruction NLL."""
    return [
        decoder_claim(table, "mig", True, f"{prefix}-mig",
                      f"{setting}: the Spatial Broadcast decoder gives a more disentangled code than DeConv "
                      "(higher MIG)",
                      "MIG, SB − DeConv per seed", f"SB > DeConv ({figure})", p=p, runs=runs),
        decoder_claim(table, "recon_nll", False, f"{prefix}-reconstruction",
                      f"{setting}: the Spatial Broadcast decoder reconstructs better than DeConv (lower NLL)",
                      "reconstruction NLL (nats/image), DeConv − SB per seed", f"SB < DeConv ({figure})",
                      p=p, runs=runs, digits=2),
    ]


def fig2_claims(table: pd.DataFrame, *, p: SBDProfile, runs: list[dict] | None) -> list[Claim]:
    return comparison_claims(table, "sbd-fig2", "VAE on colored sprites", "Fig. 2", p=p, runs=runs)


# --------------------------------------------------------------------------- Fig. 2's budget curve
def budget_profiles(p: SBDProfile) -> list[SBDProfile]:
    """Fig. 2's settings at each of ``p.budget_steps``, on its first ``p.budget_seeds`` seeds."""
    return [replace(p, steps=steps, seeds=p.seeds[:p.budget_seeds]) for steps in p.budget_steps]


def budget_point(table: pd.DataFrame, p: SBDProfile, runs: list[dict] | None = None) -> dict:
    """One budget of the curve: the MIG and reconstruction claims' rule (:func:`decoder_claim`'s, on this
    budget's runs) and what deciding it would take. ``pairs_to_decide`` is the pairs the rule has if it
    decided, else its power plan's (None where the runs give no effect or spread to plan from), and
    ``cpu_hours``/``gpu_minutes`` what that many pairs cost at this budget from scratch."""
    sb, deconv = decoder_arms(table)
    gates_sb, gates_deconv = table_gates(sb), table_gates(deconv)
    gates = gates_sb + gates_deconv
    point = {"steps": p.steps, "images_per_run": p.steps * p.batch_size,
             "paper_ratio": budget(p)["ratio"], "runs": len(table),
             "runs_passing_gate": sum(g.passed for g in gates),
             "collapsed": sum(g.collapsed for g in gates if not g.passed)}
    cost = replicate_cost(runs, len(sb))
    for column in ("mig", "recon_nll"):
        outcome = decoder_outcome(sb, deconv, gates_sb, gates_deconv, column, HIGHER_IS_BETTER[column], cost)
        needed = outcome.test.get("n") if outcome.verdict != "inconclusive" else (outcome.power or {}).get("needed")
        point.update({f"{column}_sb": float(sb[column].median()), f"{column}_deconv": float(deconv[column].median()),
                      f"{column}_effect": outcome.test.get("mean_effect"),
                      f"{column}_sd": outcome.test.get("sd"), f"{column}_p": outcome.test.get("p_claim"),
                      f"{column}_verdict": outcome.verdict + (f" ({outcome.reason})" if outcome.reason else ""),
                      f"{column}_pairs_to_decide": needed,
                      f"{column}_towards": (outcome.verdict if outcome.verdict != "inconclusive"
                                            else (outcome.power or {}).get("towards")),
                      f"{column}_cpu_hours": float(f"{needed * cost.cpu_seconds / 3600:.3g}")
                      if needed and cost else None,
                      f"{column}_gpu_minutes": float(f"{needed * cost.gpu_seconds / 60:.3g}")
                      if needed and cost else None})
    return point


def budget_curve(tables: list[pd.DataFrame], profiles: list[SBDProfile],
                 runs: list[list[dict]] | None = None) -> pd.DataFrame:
    """:func:`budget_point` at every budget, one row each, in the order given."""
    runs = runs or [None] * len(tables)
    return pd.DataFrame([budget_point(t, bp, r) for t, bp, r in zip(tables, profiles, runs)])


COLUMN_NAMES = {"mig": "MIG", "recon_nll": "reconstruction NLL"}


def budget_summary(curve: pd.DataFrame, column: str = "mig") -> str:
    """What the curve's largest budget says about ``column``'s claim, in two sentences, from its numbers."""
    last = curve.iloc[-1]

    def number(key: str, spec: str) -> str:
        value = last.get(key)
        return format(value, spec) if pd.notna(value) else "n/a"  # pd.notna(None) is False

    text = (f"At {last.images_per_run:,} images per run ({last.paper_ratio:.2g} × the paper's), "
            f"{last.runs_passing_gate} of {last.runs} runs pass their learning gate; the "
            f"{COLUMN_NAMES.get(column, column)} effect is "
            f"{number(f'{column}_effect', '+.3g')} (sd {number(f'{column}_sd', '.3g')}), "
            f"{last[f'{column}_verdict']}.")
    first_effect, last_effect = curve.iloc[0].get(f"{column}_effect"), last.get(f"{column}_effect")
    if (len(curve) > 1 and pd.notna(first_effect) and pd.notna(last_effect)
            and np.sign(first_effect) * np.sign(last_effect) < 0):
        first = curve.iloc[0]
        text += (f" Its sign changes with training: {first_effect:+.3g} at {first.images_per_run:,} images per run, "
                 f"{last_effect:+.3g} at {last.images_per_run:,} (positive favours SB), so a verdict at the "
                 f"shorter budget describes that budget, not the decoders.")
    pairs, hours = last.get(f"{column}_pairs_to_decide"), last.get(f"{column}_cpu_hours")
    if pd.isna(pairs):
        return text + " These runs give no effect and spread to plan the pairs that would decide it from."
    towards = last.get(f"{column}_towards")
    text += f" Deciding it at this budget would take ≈ {pairs:.0f} seed pairs"
    if pd.notna(towards) and last[f"{column}_verdict"].startswith("inconclusive"):
        text += f" (towards {towards})"
    if pd.notna(hours):
        text += (f": ≈ {hours:g} CPU-hours on this machine from scratch, or ≈ "
                 f"{last[f'{column}_gpu_minutes']:g} GPU-minutes (estimated)")
    return text + "."


def plot_budget_curve(tables: list[pd.DataFrame], profiles: list[SBDProfile], axes=None):
    """MIG and reconstruction NLL of every run (points) and each decoder's median (line) against the training
    images per run, and the per-seed MIG difference SB − DeConv with the rule's minimal effect; runs that
    fail their learning gate are hollow."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(11.5, 3.5))
    colours = {"deconv": "C0", "sb": "C1"}
    frame = pd.concat([t.assign(images=bp.steps * bp.batch_size, passed=[g.passed for g in table_gates(t)])
                       for t, bp in zip(tables, profiles)], ignore_index=True)
    for ax, column, label in ((axes[0], "mig", "MIG"), (axes[1], "recon_nll", "reconstruction NLL (nats/image)")):
        for decoder, rows in frame.groupby("decoder"):
            median = rows.groupby("images")[column].median()
            ax.plot(median.index, median.values, "-", color=colours[decoder], label=DECODER_NAMES[decoder])
            for passed, marker_face in ((True, colours[decoder]), (False, "none")):
                sel = rows[rows.passed == passed]
                ax.scatter(sel.images, sel[column], s=22, facecolors=marker_face, edgecolors=colours[decoder])
        ax.set_xscale("log")
        ax.set_xlabel("training images per run")
        ax.set_ylabel(label)
    axes[0].plot(frame.groupby("images").untrained_mig.median(), ":", color="0.4", label="untrained (median)")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Disentanglement")
    axes[1].set_title("Reconstruction")
    pairs = frame.pivot_table(index=["images", "seed"], columns="decoder", values="mig").reset_index()
    for seed, rows in pairs.groupby("seed"):
        axes[2].plot(rows.images, rows.sb - rows.deconv, "o-", color="0.5", alpha=0.7, ms=4)
    axes[2].axhline(0, color="k", lw=0.8)
    axes[2].axhline(MIN_EFFECTS["mig"], color="C3", ls="--", lw=1, label=f"minimal effect {MIN_EFFECTS['mig']:g}")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("training images per run")
    axes[2].set_ylabel("MIG, SB − DeConv")
    axes[2].set_title("Per-seed difference")
    axes[2].legend(fontsize=8)
    axes[0].figure.tight_layout()
    return axes


def comparison_profile(name: str, seed_offset: int = 0) -> SBDProfile:
    """Fig. 2's settings with ``comparison_seeds`` seeds, from Fig. 2's first: the chapter's other decoder
    comparisons (Fig. 3, Fig. 5, small objects, held-out region) share them."""
    p = profile(name, seed_offset)
    return replace(p, seeds=tuple(range(p.seeds[0], p.seeds[0] + p.comparison_seeds)))


# Small objects: the dSprites scale grid halved (6 values in [0.25, 0.5] instead of [0.5, 1]).
SMALL_SCALES = tuple(float(v) for v in np.linspace(0.25, 0.5, 6))

# Held-out region: no square (shape 0) ever appears in the bottom-right quadrant during training.
HOLDOUT_REGION = {"shape": (0, 1), "pos_x": (16, 32), "pos_y": (16, 32)}


def evaluate_generalisation(run: dict, dataset, p: SBDProfile) -> dict:
    """:func:`evaluate_run`'s numbers on the training distribution (the seen combinations: MIG, reconstruction
    NLL ``recon_nll``, KL and the learning gate's baselines), and the reconstruction NLL on the held-out
    region (``eval_samples`` draws of it, the same for the trained and the untrained model)."""
    config: TrainConfig = run["config"]
    row = evaluate_run(run, dataset, p)

    def heldout_nll(model) -> float:
        rng = np.random.default_rng(HELDOUT_DRAWS + config.seed)
        return evaluate_elbo(model, dataset, p.eval_samples, rng, sample_factors=dataset.sample_held_out)["recon_nll"]

    held = heldout_nll(run["model"])
    return {**row, "heldout_nll": held, "gap": held - row["recon_nll"],
            "untrained_heldout_nll": heldout_nll(untrained_model(config, _device_of(run["model"])))}


def generalisation_table(rows: list[dict]) -> pd.DataFrame:
    """The held-out notebook's table: ``recon_nll`` is the NLL on seen combinations, ``gap`` held-out − seen."""
    columns = ["decoder", "seed", "recon_nll", "heldout_nll", "gap", "untrained_heldout_nll"]
    return pd.DataFrame(rows)[columns + [c for c in TABLE_COLUMNS if c not in columns]]


def generalisation_claims(table: pd.DataFrame, *, p: SBDProfile, runs: list[dict] | None) -> list[Claim]:
    return [
        decoder_claim(table, "heldout_nll", False, "sbd-heldout-nll",
                      "Held-out factor combinations: the SB-VAE reconstructs them better than the DeConv-VAE",
                      "reconstruction NLL on the held-out region (nats/image), DeConv − SB per seed",
                      "SB < DeConv (Sec. 4.3, Fig. 5)", p=p, runs=runs, digits=2),
        decoder_claim(table, "gap", False, "sbd-heldout-gap",
                      "Held-out factor combinations: the SB-VAE's NLL rises less from seen to held-out combinations",
                      "(held-out NLL − seen NLL) (nats/image), DeConv − SB per seed",
                      "SB < DeConv (Sec. 4.3)", p=p, runs=runs, digits=2),
    ]


GEOMETRY_FIXED = {"shape": 1, "scale": 5, "orientation": 0, "hue": 0, "saturation": 4, "value": 4}


def evaluate_geometry(run: dict, dataset, p: SBDProfile) -> dict:
    """:func:`evaluate_run`'s numbers (for the learning gate) and the affine R² of the position grid
    (:func:`~dvae_core.papers.sbd.geometry.position_grid` with :data:`GEOMETRY_FIXED`) of the trained run,
    with its two position latents, and of its untrained model (for comparison, not for the gate)."""
    row = evaluate_run(run, dataset, p)
    grid = position_grid(mean_encoder(run["model"]), dataset, GEOMETRY_FIXED)
    untrained = untrained_model(run["config"], _device_of(run["model"]))
    return {**row, "r2": grid.r2, "dims": grid.dims,
            "untrained_r2": position_grid(mean_encoder(untrained), dataset, GEOMETRY_FIXED).r2}


def geometry_table(rows: list[dict]) -> pd.DataFrame:
    columns = ["decoder", "seed", "r2", "untrained_r2", "dims"]
    return pd.DataFrame(rows)[columns + [c for c in TABLE_COLUMNS if c not in columns]]


def geometry_claim(table: pd.DataFrame, *, p: SBDProfile, runs: list[dict] | None) -> Claim:
    return decoder_claim(table, "r2", True, "sbd-geometry-linearity",
                         "Latent geometry: a grid of positions maps to a more nearly linear lattice in the SB-VAE's "
                         "position latents than in the DeConv-VAE's",
                         "affine R² of (x, y) from the two position latents, SB − DeConv per seed",
                         "SB lattice ≈ linear, DeConv warped (Figs. 6–7, qualitative)", p=p, runs=runs)


# --------------------------------------------------------------------------- the runs figures show
#: Which way each column is better, for :func:`median_run`.
HIGHER_IS_BETTER = {"mig": True, "r2": True, "recon_nll": False, "heldout_nll": False, "gap": False}


def median_index(count: int, higher_is_better: bool) -> int:
    """Position, in ascending order of a column, of the run a figure shows: the median of an odd count; of
    an even count the middle run that does not flatter the model (the lower of the two middle values where
    higher is better, the upper where lower is better)."""
    if count < 1:
        raise ValueError("no runs to choose from")
    return count // 2 if count % 2 or not higher_is_better else count // 2 - 1


def median_run(table: pd.DataFrame, runs: list[dict], decoder: str, column: str = "mig",
               higher_is_better: bool | None = None) -> tuple[dict, pd.Series]:
    """The run (and its table row) nearest the median ``column`` among ``decoder``'s seeds (:func:`median_index`):
    the one figures show. ``higher_is_better`` defaults to :data:`HIGHER_IS_BETTER` for the column."""
    if higher_is_better is None:
        if column not in HIGHER_IS_BETTER:
            raise ValueError(f"say whether higher {column!r} is better (higher_is_better=)")
        higher_is_better = HIGHER_IS_BETTER[column]
    mine = table[table.decoder == decoder].sort_values(column, kind="stable")
    row = mine.iloc[median_index(len(mine), higher_is_better)]
    run = next(r for r in runs if r["config"].model.decoder == decoder and r["config"].seed == row.seed)
    return run, row


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


# --------------------------------------------------------------------------- small objects
def _joint_gate(gates) -> rules.Gate:
    """One gate for runs that count together: it fails if any of them fails."""
    return rules.Gate(tuple(f for g in gates for f in g.failures), any(g.collapsed for g in gates))


def small_objects_gap_claim(small: pd.DataFrame, normal: pd.DataFrame, *, p: SBDProfile,
                            small_runs: list[dict] | None, normal_runs: list[dict] | None) -> Claim:
    """"SB's MIG advantage is larger for small objects": per seed, the difference of differences
    (SB − DeConv on small sprites) − (SB − DeConv on normal sprites), tested by
    :func:`dvae_core.rules.one_sample` (minimal effect: the MIG one). The four runs of a seed share its
    initialisation; a seed counts only if all four pass their learning gate."""
    small_sb, small_deconv = decoder_arms(small)
    normal_sb, normal_deconv = decoder_arms(normal)
    if list(small_sb.index) != list(normal_sb.index):
        raise ValueError(f"small and normal sprites need the same seeds to pair: {list(small_sb.index)} vs "
                         f"{list(normal_sb.index)}")
    gap_small, gap_normal = small_sb.mig - small_deconv.mig, normal_sb.mig - normal_deconv.mig
    difference = gap_small - gap_normal
    arm_gates = [table_gates(arm) for arm in (small_sb, small_deconv, normal_sb, normal_deconv)]
    gates = [_joint_gate(seed_gates) for seed_gates in zip(*arm_gates)]
    seeds = [int(s) for s in small_sb.index]
    outcome = rules.one_sample(difference.to_numpy(float), MIN_EFFECTS["mig"], gates=gates,
                               cost=replicate_cost((small_runs or []) + (normal_runs or []), len(seeds)),
                               replicate="seed",
                               test_name="exact Wilcoxon signed-rank test of the per-seed difference of differences")
    ours = {"gap_small": gap_small.round(4).tolist(), "gap_normal": gap_normal.round(4).tolist(),
            "difference": difference.round(4).tolist()}
    return Claim.decided(outcome, id="sbd-small-gap", paper=PAPER,
                         claim="The Spatial Broadcast decoder's MIG advantage is larger for small objects than for "
                               "normal ones",
                         metric="(MIG SB − MIG DeConv on small sprites) − (the same on normal sprites), per seed",
                         paper_value="largest benefit on small objects (Sec. 4.2)", ours=ours, budget=budget(p),
                         seeds=seeds, gate=gate_summary([g for arm in arm_gates for g in arm]))


# --------------------------------------------------------------------------- Fig. 4
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


def rate_distortion_table(runs: list[dict]) -> pd.DataFrame:
    """One row per run of the sweep: :func:`evaluate_run`'s numbers and the run's β."""
    return pd.DataFrame([{**{c: run["evaluation"][c] for c in TABLE_COLUMNS}, "beta": run["config"].beta}
                         for run in runs])


def curve_claim(table: pd.DataFrame, x: str, y: str, higher_is_better: bool, claim_id: str, claim: str,
                paper_value: str, *, p: SBDProfile, runs: list[dict] | None, min_effect: float | None = None) -> Claim:
    """"SB's y-vs-x curve is better" over the β sweep: :func:`dvae_core.rules.curve` (per-seed gaps between the
    two curves, one point per β; ≥ 3 replicas per (decoder, β) or inconclusive). A run that fails its learning
    gate (e.g. a collapsed high-β run) leaves its seed's curve; one seed's curves price one more replicate."""
    gates = table_gates(table)
    keep = pd.Series([g.passed for g in gates], index=table.index)
    seeds = sorted(int(s) for s in table.seed.unique())
    min_effect = MIN_EFFECTS[y] if min_effect is None else min_effect
    outcome = rules.curve(table, group="decoder", level="beta", x=x, y=y, better="sb", worse="deconv",
                          higher_is_better=higher_is_better, min_effect=min_effect, unit=UNITS.get(y, ""),
                          seed="seed", keep=keep, cost=replicate_cost(runs, len(seeds)))
    ours = {"mean_gap": outcome.test.get("mean_effect"), "per_seed_gap": outcome.test["per_seed_gap"],
            "replicas_per_cell": outcome.test["replicas_per_cell"]}
    return Claim.decided(outcome, id=claim_id, paper=PAPER, claim=claim,
                         metric=f"per-seed mean SB advantage in {y} at equal {x}, over the {x} range both curves cover",
                         paper_value=paper_value, ours=ours, budget=budget(p), seeds=seeds, gate=gate_summary(gates))


def rate_distortion_claims(table: pd.DataFrame, *, p: SBDProfile, runs: list[dict] | None) -> list[Claim]:
    return [
        curve_claim(table, "kl", "recon_nll", False, "sbd-fig4-nll-vs-kl",
                    "Rate–distortion: at equal KL, the SB-VAE reaches a lower reconstruction NLL than the DeConv-VAE",
                    "SB curve below DeConv (Fig. 4a)", p=p, runs=runs),
        curve_claim(table, "recon_nll", "mig", True, "sbd-fig4-mig-vs-nll",
                    "At equal reconstruction NLL, the SB-VAE has a higher MIG than the DeConv-VAE",
                    "SB curve above DeConv (Fig. 4b)", p=p, runs=runs),
    ]


# --------------------------------------------------------------------------- Fig. 5
def no_position_claim(table: pd.DataFrame, *, p: SBDProfile, runs: list[dict] | None) -> Claim:
    """"SB does not hurt without positional variation": :func:`dvae_core.rules.non_inferior`, SB's MIG against
    DeConv's minus :data:`NO_POSITION_MIG_MARGIN`, paired by seed, gated as :func:`decoder_claim`."""
    sb, deconv = decoder_arms(table)
    gates_sb, gates_deconv = table_gates(sb), table_gates(deconv)
    outcome = rules.non_inferior(sb.mig.to_numpy(float), deconv.mig.to_numpy(float), higher_is_better=True,
                                 margin=NO_POSITION_MIG_MARGIN, gates_a=gates_sb, gates_b=gates_deconv,
                                 cost=replicate_cost(runs, len(sb)))
    return Claim.decided(outcome, id="sbd-fig5-shapes3d-mig", paper=PAPER,
                         claim="Without positional variation (3D object in a room), the SB-VAE disentangles no "
                               f"worse than the DeConv-VAE (MIG no lower by more than {NO_POSITION_MIG_MARGIN:g})",
                         metric=f"MIG, SB − DeConv per seed, against the margin −{NO_POSITION_MIG_MARGIN:g}",
                         paper_value="SB ≥ DeConv (Sec. 4.4, Fig. 5)", ours=_arms_ours(sb, deconv, "mig", 4),
                         budget=budget(p), seeds=[int(s) for s in sb.index], gate=gate_summary(gates_sb + gates_deconv))


def bench_config(decoder: str, name: str) -> TrainConfig:
    """The run ``dvae_core.bench`` times for ``decoder`` under profile ``name``: Fig. 2's first seed."""
    p = profile(name)
    return comparison_config(p, decoder, p.seeds[0])


BENCH_MODELS = {
    "sb_vae": BenchModel("SB-VAE", "sbd.comparison_config(sbd.profile(profile), 'sb', …)",
                         partial(bench_config, "sb")),
    "deconv_vae": BenchModel("DeConv-VAE", "sbd.comparison_config(sbd.profile(profile), 'deconv', …)",
                             partial(bench_config, "deconv")),
}
