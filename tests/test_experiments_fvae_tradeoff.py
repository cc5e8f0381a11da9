"""The β-VAE vs FactorVAE trade-off and TC-over-training experiment: sweep, evaluation pieces, claim rules.

The claim tests build synthetic tables with a known answer (a clear effect, none, a reversed one) and check
the verdict each rule of dvae_core.rules gives, that runs failing their learning gate (a collapsed γ = 100,
a GAN whose samples do not vary) leave the test and are counted, and that every inconclusive verdict says why.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from dvae_core import rules  # noqa: E402
from dvae_core.papers.factorvae import tradeoff as ft  # noqa: E402
from dvae_core.models.factor_vae import FactorVAE  # noqa: E402
from dvae_core.runs import config_hash  # noqa: E402
from dvae_core.data import make_dataset  # noqa: E402
from dvae_core.evaluate import mean_encoder  # noqa: E402
from dvae_core.metrics import factor_vae_score  # noqa: E402
from dvae_core.train import untrained_model  # noqa: E402


def test_sweep_has_every_setting_and_seed_with_distinct_hashes():
    p = ft.profile("preview")
    configs = ft.tradeoff_configs(p)
    assert len(configs) == (len(p.betas) + len(p.gammas)) * len(p.seeds)
    assert len({config_hash(c) for c in configs}) == len(configs)
    fvae = [c for c in configs if ft.is_factor_vae(c)]
    assert {c.model.gamma for c in fvae} == set(p.gammas) and all(c.beta == 1.0 for c in fvae)
    assert {ft.setting(c) for c in configs if not ft.is_factor_vae(c)} == set(p.betas)
    assert all(c.snapshot_every * p.snapshots == p.steps for c in configs)
    followed = ft.trajectory_configs(p)
    assert all(ft.is_factor_vae(c) or c.seed == p.seeds[0] for c in followed)
    assert len(followed) == len(p.gammas) * len(p.seeds) + len(p.betas)
    assert ft.profile("preview", seed_offset=5).seeds == tuple(s + 5 for s in p.seeds)


def test_every_profile_sweeps_3d_shapes_on_its_own_grid():
    preview = ft.profile("preview", seed_offset=3)
    shapes = ft.for_dataset(preview, "shapes3d")
    assert "shapes3d" in preview.datasets and shapes.seeds == tuple(range(3, 10)) and shapes.steps < preview.steps
    assert ft.for_dataset(preview, "dsprites") == preview
    configs = ft.tradeoff_configs(shapes, "shapes3d")
    assert len(configs) == (len(shapes.betas) + len(shapes.gammas)) * len(shapes.seeds)
    assert all(c.dataset == "shapes3d" and c.model.in_channels == 3 and c.steps == shapes.steps for c in configs)
    assert not {config_hash(c) for c in configs} & {config_hash(c) for c in ft.tradeoff_configs(preview)}
    for name in ("smoke", "paper"):  # no grid of their own: the dSprites sweep on 3 channels
        p = ft.profile(name)
        assert "shapes3d" in p.datasets and ft.for_dataset(p, "shapes3d") == p
    with pytest.raises(ValueError, match="unknown dataset"):
        ft.for_dataset(preview, "celeba")


def test_paper_profile_uses_the_papers_settings():
    p = ft.profile("paper")
    assert p.betas == (1, 2, 4, 6, 8, 16) and p.gammas == (10, 20, 30, 40, 50, 100)
    assert (p.resolution, p.batch_size, p.steps, p.lr, p.disc_hidden, p.disc_layers) == (64, 64, 300_000, 1e-4, 1000, 6)
    assert (p.metric_train, p.metric_eval, p.metric_variance) == (10_000, 5000, 10_000)
    with pytest.raises(ValueError, match="unknown profile"):
        ft.profile("huge")


def test_factor_labels_pick_the_most_informative_factor_share():
    mutual_info = np.array([[0.0, 0.9, 0.0], [0.5, 0.0, 0.1], [0.01, 0.02, 0.0]])
    entropy = np.array([1.0, 2.0, 0.0])  # a constant factor is never chosen
    assert ft.factor_labels(mutual_info, entropy, ("shape", "x", "y")) == ["x (0.45)", "shape (0.50)", "—"]


def test_discriminator_tc_is_its_mean_logit_difference():
    p = ft.profile("smoke")
    model = FactorVAE(ft.run_config(p, 0, gamma=10.0).model.vae, ft.run_config(p, 0, gamma=10.0).model.factor)
    mean, logvar = torch.randn(50, 10, dtype=torch.float64), torch.full((50, 10), -60.0, dtype=torch.float64)
    got = ft.discriminator_tc(model, mean, logvar, torch.Generator().manual_seed(0))
    expected = model.discriminator.log_density_ratio(mean.float()).mean().item()
    assert got == pytest.approx(expected, abs=1e-5)  # variance e^-60: z is the mean


def test_permuted_posteriors_keep_each_dimension_and_its_pairs():
    mean = torch.arange(12.0, dtype=torch.float64).view(6, 2)
    logvar = -mean
    shuffled_mean, shuffled_logvar = ft.permute_posteriors(mean, logvar, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled_logvar, -shuffled_mean)                    # (μ_j, log σ²_j) stay together
    for j in range(2):
        assert torch.equal(shuffled_mean[:, j].sort().values, mean[:, j])   # every marginal kept


def test_tc_floor_is_near_the_estimate_for_independent_codes_and_below_it_for_dependent_ones():
    class Encoder(torch.nn.Module):
        def __init__(self, mixing):
            super().__init__()
            self.mixing = torch.nn.Parameter(torch.as_tensor(mixing, dtype=torch.float32), requires_grad=False)

        def encode(self, x):
            factors = x.flatten(1)[:, :2]
            return factors @ self.mixing, torch.full((len(x), 2), -3.0)

    class Gaussian:
        def sample_factors(self, n, rng):
            return rng.normal(size=(n, 2))

        def images(self, factors):
            return torch.as_tensor(factors, dtype=torch.float32).view(-1, 1, 1, 2)

    p = ft.profile("smoke")
    p = type(p)(**{**p.__dict__, "tc_components": 3000, "tc_samples": 1500})
    independent = ft.total_correlations(Encoder([[1.0, 0.0], [0.0, 1.0]]), Gaussian(), p, np.random.default_rng(0))
    dependent = ft.total_correlations(Encoder([[1.0, 0.9], [0.0, 0.45]]), Gaussian(), p, np.random.default_rng(0))
    assert abs(independent["tc_excess"]) < 0.05 and math.isnan(independent["tc_disc"])
    assert dependent["tc_excess"] > 0.4  # ρ = 0.9: ½·log(1/(1 − ρ²)) ≈ 0.83 nats, less the posterior noise


# --------------------------------------------------------------------------- synthetic tables

PREVIEW = ft.profile("preview")


def run_row(model: str, setting: float, seed: int, recon: float, score: float, mig: float | None = None,
            kl: float = 10.0, untrained: float = 0.0, mean_nll: float = 157.0) -> dict:
    return {"model": model, "setting": setting, "seed": seed, "recon_nll": recon, "factor_score": score,
            "mig": score / 4 if mig is None else mig, "kl": kl, "untrained_factor_score": untrained,
            "mean_image_nll": mean_nll}


def sweep_table(gap: float, seeds: int, collapsed_gamma: bool = False, noise: float = 0.02) -> pd.DataFrame:
    """β-VAE and FactorVAE curves over the same reconstruction range; FactorVAE's is ``gap`` higher. With
    ``collapsed_gamma``, every seed also has a γ = 100 run with KL 0.05, metric 0 and the mean image's NLL."""
    rng = np.random.default_rng(seeds)
    rows = []
    for seed in range(seeds):
        for model, shift, settings in ((ft.BETA_VAE, 0.0, (1.0, 4.0, 16.0)), (ft.FACTOR_VAE, gap, (10.0, 40.0))):
            for setting, recon in zip(settings, (30.0, 45.0, 60.0)):
                score = 0.3 + 0.004 * (recon - 30.0) + shift + rng.normal(0, noise)
                rows.append(run_row(model, setting, seed, recon + rng.normal(0, 1), score))
        if collapsed_gamma:
            rows.append(run_row(ft.FACTOR_VAE, 100.0, seed, 155.0, 0.0, mig=0.02, kl=0.05))
    return ft.tradeoff_table([{**r, "mig": r["mig"], "tc_true": 1.0, "tc_floor": 0.1, "tc_disc": 0.5,
                               "active_dims": 5, "train_images_per_s": 1000.0} for r in rows])


def test_gate_of_row_applies_the_three_vae_checks():
    ok = run_row(ft.FACTOR_VAE, 10.0, 0, 40.0, 0.5)
    assert ft.gate_of_row(ok).passed
    collapsed = ft.gate_of_row(run_row(ft.FACTOR_VAE, 100.0, 0, 155.0, 0.0, kl=0.09))
    assert collapsed.collapsed and not collapsed.passed and ft.gate_label(collapsed) == "collapsed"
    assert any("untrained" in f for f in collapsed.failures)  # metric 0 is not above the untrained model's 0
    blurry = ft.gate_of_row(run_row(ft.BETA_VAE, 16.0, 0, 160.0, 0.5))
    assert not blurry.passed and not blurry.collapsed and ft.gate_label(blurry) == "failed"
    assert not ft.gate_of_row(run_row(ft.BETA_VAE, 1.0, 0, 40.0, 0.3, untrained=0.35)).passed


# a zero gap with six seeds is significantly below the 0.05 minimal effect: evidence against the claim
@pytest.mark.parametrize("gap, verdict", [(0.15, "reproduced"), (-0.15, "not reproduced"), (0.0, "not reproduced")])
def test_tradeoff_claims_decide_by_the_per_seed_curve_gaps(gap, verdict):
    claims = ft.tradeoff_claims(sweep_table(gap, seeds=6), "dsprites", PREVIEW)
    metric = claims[0]
    assert metric.id == "fvae-tradeoff-dsprites-metric" and metric.verdict == verdict, metric.explanation
    assert metric.test["replicas_per_cell"] == 6 and metric.seeds == list(PREVIEW.seeds)
    assert metric.budget == {"images_per_run": 1500 * 64, "paper_images_per_run": 300_000 * 64,
                             "ratio": 0.005}


def test_tradeoff_claims_with_a_small_noisy_gap_are_inconclusive_with_a_plan():
    cost = rules.Cost(cpu_seconds=3600.0, gpu_seconds=120.0)
    claim = ft.tradeoff_claims(sweep_table(0.03, seeds=4, noise=0.08), "dsprites", PREVIEW, cost=cost)[0]
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered", claim.explanation
    assert claim.power["needed"] and "CPU-hours" in claim.explanation


def test_tradeoff_claims_with_two_seeds_are_too_few_replicas():
    claim = ft.tradeoff_claims(sweep_table(0.15, seeds=2), "dsprites", PREVIEW)[0]
    assert claim.verdict == "inconclusive" and claim.reason == "too few replicas"
    assert claim.test["replicas_per_cell"] == 2


def test_collapsed_runs_leave_the_curve_and_are_counted():
    table = sweep_table(0.15, seeds=6, collapsed_gamma=True)
    assert (table.gate == "collapsed").sum() == 6 and (table[table.setting == 100.0].gate == "collapsed").all()
    with_collapse = ft.tradeoff_claims(table, "dsprites", PREVIEW)[0]
    without = ft.tradeoff_claims(table[table.setting != 100.0].reset_index(drop=True), "dsprites", PREVIEW)[0]
    assert with_collapse.verdict == without.verdict == "reproduced"
    assert with_collapse.test["per_seed_gap"] == without.test["per_seed_gap"]  # the γ = 100 point is not on the curve
    assert with_collapse.gate["runs"] == len(table) and with_collapse.gate["passed"] == len(table) - 6
    assert with_collapse.gate["collapsed"] == 6 and with_collapse.gate["failed"]["collapsed"] == 6
    assert with_collapse.test["runs_dropped_by_gate"] == 6 and with_collapse.ours["runs_in_curves"] == len(table) - 6
    assert len(with_collapse.ours["collapsed"]) == 6


def test_plot_tradeoff_draws_collapsed_runs_apart():
    table = sweep_table(0.15, seeds=2, collapsed_gamma=True)
    fig = ft.plot_tradeoff(table, "dSprites")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert f"{ft.FACTOR_VAE}, collapsed (left out)" in labels and ft.BETA_VAE in labels
    best = ft.best_run(table, ft.FACTOR_VAE)
    assert best.gate == "passed" and best.setting != 100.0
    plt.close(fig)


def gan_rows(scores, spread: float) -> pd.DataFrame:
    return ft.gan_table([{"model": ft.INFO_WGAN, "seed": s, "factor_score": v, "mig": 0.05,
                          "untrained_factor_score": 0.0, "sample_std": spread, "train_images_per_s": 240.0}
                         for s, v in enumerate(scores)])


def test_gan_claim_is_an_unpaired_test_of_gated_runs():
    table = sweep_table(0.0, seeds=3, collapsed_gamma=True)  # 6 FactorVAE runs that learned, 3 collapsed
    fvae_scores = table[(table.model == ft.FACTOR_VAE) & (table.gate == "passed")].factor_score
    low = gan_rows([fvae_scores.min() - 0.1 - 0.01 * i for i in range(4)], spread=0.2)
    claim = ft.gan_claim(low, table, PREVIEW)
    assert claim.verdict == "reproduced" and claim.test["n"] == [6, 4] and claim.test["dropped_collapsed"] == 3
    assert claim.gate["factorvae"]["collapsed"] == 3 and claim.gate["infowgan"]["passed"] == 4
    assert claim.budget["images_per_run"] == PREVIEW.gan_steps * PREVIEW.batch_size
    high = gan_rows([fvae_scores.max() + 0.3 + 0.01 * i for i in range(4)], spread=0.2)
    assert ft.gan_claim(high, table, PREVIEW).verdict == "not reproduced"


def test_gan_whose_samples_do_not_vary_makes_the_claim_under_trained():
    table = sweep_table(0.0, seeds=3, collapsed_gamma=True)
    stuck = gan_rows([0.05, 0.04], spread=0.004)  # the preview's GAN: all-black samples
    assert (stuck.gate == "failed").all() and "samples do not vary" in stuck.gate_failures[0]
    claim = ft.gan_claim(stuck, table, PREVIEW)
    assert claim.verdict == "inconclusive" and claim.reason == "under-trained"
    assert "no InfoWGAN-GP run passed" in claim.explanation and claim.gate["infowgan"]["passed"] == 0
    assert claim.gate["infowgan"]["failed"] == {"samples do not vary": 2}


def test_sample_spread_is_zero_for_a_generator_that_draws_one_image():
    class Fixed:
        def __init__(self, vary: bool):
            self.vary = vary

        def sample(self, n, generator=None):
            return torch.rand(n, 1, 4, 4, generator=generator) if self.vary else torch.full((n, 1, 4, 4), 0.3)

    assert ft.sample_spread(Fixed(False)) == pytest.approx(0.0)
    assert ft.sample_spread(Fixed(True)) == pytest.approx(math.sqrt(1 / 12), rel=0.1)


def trajectory(model: str, setting: float, seed: int, tcs, gaps, scores=None, kl: float = 10.0) -> list[dict]:
    """One run's snapshots: step 0 (the untrained model: TC, metric and the discriminator at 0), then one row
    per (tc, gap) at steps 100, 200, ...; the discriminator's TC is tc − gap."""
    scores = scores or [0.5] * len(tcs)
    rows = [{"model": model, "setting": setting, "seed": seed, "step": 0, "factor_score": 0.0, "tc_true": 0.0,
             "tc_floor": 0.0, "tc_excess": 0.0, "tc_disc": 5.0 if model == ft.FACTOR_VAE else np.nan,
             "recon_nll": 160.0, "kl": 0.0, "mean_image_nll": 157.0}]
    for i, (tc, gap, score) in enumerate(zip(tcs, gaps, scores), start=1):
        rows.append({"model": model, "setting": setting, "seed": seed, "step": 100 * i, "factor_score": score,
                     "tc_true": tc + 1.0, "tc_floor": 1.0, "tc_excess": tc,
                     "tc_disc": tc - gap if model == ft.FACTOR_VAE else np.nan, "recon_nll": 40.0, "kl": kl,
                     "mean_image_nll": 157.0})
    return rows


def trajectories(runs: int, falling: bool = True, gap: float = 0.5, collapsed: int = 0,
                 beta_rising: bool = False) -> pd.DataFrame:
    tcs = [3.0, 2.0, 1.5, 1.0] if falling else [1.0, 1.5, 2.0, 3.0]
    rows = []
    for run in range(runs):
        rows += trajectory(ft.FACTOR_VAE, 10.0 * (1 + run // 2), run % 2, [t + 0.01 * run for t in tcs],
                           [gap + 0.01 * run] * 4)
    for run in range(collapsed):  # γ = 100: KL ≈ 0, metric 0, and TC and discriminator numbers that flip both claims
        rows += trajectory(ft.FACTOR_VAE, 100.0, run, [0.0, 0.1, 0.2, 0.3], [-9.0] * 4, scores=[0.0] * 4, kl=0.05)
    if beta_rising:  # a β-VAE whose TC rises: no longer pooled into the FactorVAE claim
        rows += trajectory(ft.BETA_VAE, 1.0, 0, [0.0, 1.0, 2.0, 3.0], [0.0] * 4)
    return pd.DataFrame(rows)


def test_trajectory_gates_read_step_zero_as_the_untrained_baseline():
    gates = ft.trajectory_gates(trajectories(2, collapsed=1))
    assert list(gates.gate) == ["passed", "passed", "collapsed"]
    assert (gates.untrained_factor_score == 0.0).all() and (gates.final_step == 400).all()


def test_underestimate_claim_tests_the_gated_runs_after_step_zero():
    claim = ft.underestimate_claim(trajectories(6, collapsed=2), PREVIEW)
    assert claim.verdict == "reproduced" and claim.test["n"] == 6 and claim.test["dropped_collapsed"] == 2
    assert claim.gate["collapsed"] == 2 and claim.ours["runs_below"] == 6
    # step 0 (discriminator 5 nats above a TC of 0) would make every gap negative: it is left out
    assert claim.ours["mean_gap"] == pytest.approx(0.525)
    assert ft.underestimate_claim(trajectories(6, gap=-0.5), PREVIEW).verdict == "not reproduced"
    few = ft.underestimate_claim(trajectories(3), PREVIEW, cost=rules.Cost(600.0, 30.0))
    assert few.verdict == "inconclusive" and few.reason == "underpowered" and few.power["needed"] >= 5


def test_underestimate_claim_with_every_run_collapsed_says_so():
    claim = ft.underestimate_claim(trajectories(0, collapsed=2), PREVIEW)
    assert claim.verdict == "inconclusive" and claim.reason == "collapsed"


def test_tc_falls_claim_reads_spearman_of_step_and_tc_per_fvae_run():
    falling = ft.tc_vs_disentanglement_claim(trajectories(6, collapsed=2, beta_rising=True), PREVIEW)
    assert falling.verdict == "reproduced" and falling.test["n"] == 6  # the β-VAE run is not pooled in
    assert falling.id == "fvae-tc-falls" and "falls" in falling.claim
    assert all(rho == pytest.approx(-1.0) for rho in falling.ours["per_run_rho"].values())
    rising = ft.tc_vs_disentanglement_claim(trajectories(6, falling=False), PREVIEW)
    assert rising.verdict == "not reproduced"
    four = ft.tc_vs_disentanglement_claim(trajectories(4), PREVIEW)
    assert four.verdict == "inconclusive" and four.reason == "underpowered"  # 2⁻⁴ = 0.0625: four runs cannot decide


def test_step_zero_does_not_force_the_trend():
    """Step 0 (the untrained model, TC 0) is left out: with it, a TC that falls after step 0 would start by rising."""
    frame = trajectories(6)
    rhos = ft.tc_fall_rhos(frame).rho
    assert (rhos == -1.0).all()


def test_plot_tc_trajectories_marks_gated_out_runs():
    frame = trajectories(2, collapsed=1, beta_rising=True)
    fig = ft.plot_tc_trajectories(frame, ft.trajectory_gates(frame))
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("collapsed, left out" in label for label in labels)
    plt.close(fig)


def test_gan_baseline_configs():
    configs = ft.gan_configs(PREVIEW)
    assert [c.seed for c in configs] == list(PREVIEW.seeds) and all(c.model.kind == "info_wgan" for c in configs)
    assert configs[0].model.critic_steps == 5 and configs[0].model.code_dim == 10 and configs[0].lr == 1e-4


def test_untrained_factor_score_sees_the_trained_scores_draws():
    """The untrained baseline is the run's model before its first step, scored on the same seeded draws."""
    p = ft.profile("smoke")
    config = ft.run_config(p, 0, gamma=10.0)
    dataset = make_dataset("dsprites", resolution=p.resolution)
    first = ft.untrained_factor_score(config, dataset, p, 20_000)
    assert first == ft.untrained_factor_score(config, dataset, p, 20_000)
    model = untrained_model(config)
    direct = factor_vae_score(dataset, mean_encoder(model), np.random.default_rng(20_000), num_train=p.metric_train,
                              num_eval=p.metric_eval, num_variance_estimate=p.metric_variance)
    assert first == direct["eval_accuracy"]


def test_minimal_effects_and_paper_budget_are_stated():
    assert 0 < ft.MIN_CURVE_GAP < 0.09 and ft.MIN_UNDERESTIMATE_NATS > 0 and 0 < ft.MIN_TC_FALL_RHO < 1
    assert ft.paper_images_per_run("shapes3d") == 300_000 * 64


def test_evaluate_run_and_snapshots_carry_the_gates_numbers():
    """On the smoke profile, with untrained weights standing in for trained ones (the code path is the same)."""
    p = ft.profile("smoke")
    config = ft.run_config(p, 0, gamma=10.0)
    dataset = make_dataset("dsprites", resolution=p.resolution)
    model = untrained_model(config)
    row = ft.evaluate_run({"config": config, "model": model, "history": []}, dataset, p)
    assert row["untrained_factor_score"] == row["factor_score"]  # the same model on the same votes
    assert row["mean_image_nll"] > 0 and not ft.gate_of_row(row).passed  # an untrained model learned nothing
    frame = ft.snapshot_trajectory([(6, model), (12, untrained_model(ft.run_config(p, 1, gamma=10.0)))], config,
                                   dataset, p)
    assert list(frame.step) == [0, 6, 12]
    assert frame.recon_nll.isna().tolist() == [True, True, False] and frame.mean_image_nll.iloc[-1] > 0
    assert frame.factor_score.iloc[0] == frame.factor_score.iloc[1]  # step 0 is the run's own initialisation
    gates = ft.trajectory_gates(frame)
    assert len(gates) == 1 and gates.gate.iloc[0] != "passed"


def test_the_preview_warms_gamma_up_over_a_third_of_each_datasets_steps():
    preview = ft.profile("preview")
    for dataset in preview.datasets:
        grid = ft.for_dataset(preview, dataset)
        fvae = [c for c in ft.tradeoff_configs(grid, dataset) if ft.is_factor_vae(c)]
        assert fvae and {c.model.gamma_warmup for c in fvae} == {round(grid.steps / 3)}
    paper = ft.profile("paper")
    assert all(c.model.gamma_warmup is None for c in ft.tradeoff_configs(paper) if ft.is_factor_vae(c))
