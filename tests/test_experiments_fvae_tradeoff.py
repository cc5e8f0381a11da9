"""The β-VAE vs FactorVAE trade-off and TC-over-training experiment: sweep, evaluation pieces, claim rules."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dvae_core.claims import curve_gap, curve_verdict  # noqa: E402
from dvae_core.papers.factorvae import tradeoff as ft  # noqa: E402
from dvae_core.models.factor_vae import FactorVAE  # noqa: E402
from dvae_core.runs import config_hash  # noqa: E402


def curves(offset: float, seeds: int = 3, noise: float = 0.01) -> pd.DataFrame:
    """Two sweeps on a shared x range: "good" is "bad" shifted up by ``offset``."""
    rng = np.random.default_rng(0)
    rows = []
    for name, shift in (("good", offset), ("bad", 0.0)):
        for level, x in enumerate(np.linspace(10, 20, 4)):
            for seed in range(seeds):
                rows.append({"group": name, "level": level, "x": x + rng.normal(0, noise),
                             "y": 0.05 * x + shift + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_curve_gap_recovers_a_constant_offset():
    assert curve_gap(curves(0.3, noise=0.0), "group", "level", "x", "y", "good", "bad") == pytest.approx(0.3)
    assert curve_gap(curves(0.3, noise=0.0), "group", "level", "x", "y", "good", "bad", sign=-1) == pytest.approx(-0.3)


@pytest.mark.parametrize("offset, higher, verdict", [(0.3, True, "reproduced"), (-0.3, True, "not reproduced"),
                                                      (0.3, False, "not reproduced")])
def test_curve_verdict(offset, higher, verdict):
    got, ours, rule = curve_verdict(curves(offset), "group", "level", "x", "y", "good", "bad", higher,
                                    num_boot=200)
    assert got == verdict, ours
    assert "bootstrap" in rule and set(ours) == {"advantage", "ci90_low"}


def test_curve_verdict_with_a_small_gap_and_wide_spread_is_inconclusive():
    rows = [{"group": "bad", "level": level, "x": float(level), "y": 0.0} for level in range(3)]
    rows += [{"group": "good", "level": level, "x": float(level), "y": y} for level in range(3) for y in (1.0, -0.9)]
    verdict, ours, _ = curve_verdict(pd.DataFrame(rows), "group", "level", "x", "y", "good", "bad", True, num_boot=200)
    assert ours["advantage"] == pytest.approx(0.05) and ours["ci90_low"] < 0 and verdict == "inconclusive"


def test_curve_verdict_without_overlap_is_inconclusive():
    frame = curves(0.3, noise=0.0)
    frame.loc[frame.group == "good", "x"] += 100
    verdict, ours, _ = curve_verdict(frame, "group", "level", "x", "y", "good", "bad", True, num_boot=20)
    assert verdict == "inconclusive" and math.isnan(ours["advantage"])


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
    assert "shapes3d" in preview.datasets and shapes.seeds == (3, 4) and shapes.steps < preview.steps
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


def trajectories(gaps, rhos_sign: int = -1) -> pd.DataFrame:
    rows = []
    for run, gap in enumerate(gaps):
        for step in range(1, 5):
            tc = 5.0 - step if rhos_sign < 0 else 1.0 + step
            rows.append({"model": ft.FACTOR_VAE, "setting": 10.0 * (run + 1), "seed": 0, "step": step * 100,
                         "tc_true": tc + 2.0, "tc_floor": 2.0, "tc_excess": tc, "tc_disc": tc - gap,
                         "factor_score": 0.5 + 0.1 * step})
    return pd.DataFrame(rows)


def test_underestimate_claim_is_a_sign_test_over_runs():
    assert ft.underestimate_claim(trajectories([1.0] * 6)).verdict == "reproduced"
    assert ft.underestimate_claim(trajectories([1.0] * 3)).verdict == "inconclusive"   # p = 1/8
    assert ft.underestimate_claim(trajectories([-1.0] * 6)).verdict == "not reproduced"
    claim = ft.underestimate_claim(trajectories([1.0, 1.0, 1.0, 1.0, 1.0, -1.0]))
    assert claim.ours["runs_below"] == 5 and claim.ours["p_value"] == pytest.approx(7 / 64)


def test_tc_falls_claim_reads_the_sign_of_spearman():
    falling = ft.tc_vs_disentanglement_claim(trajectories([1.0] * 6, rhos_sign=-1))
    assert falling.verdict == "reproduced" and falling.ours["median_rho"] == pytest.approx(-1.0)
    assert ft.tc_vs_disentanglement_claim(trajectories([1.0] * 6, rhos_sign=1)).verdict == "not reproduced"


def test_tradeoff_claims_decide_on_both_metrics():
    rows = []
    for model, shift in ((ft.FACTOR_VAE, 0.2), (ft.BETA_VAE, 0.0)):
        for setting, recon in zip((1, 2, 3), (30.0, 40.0, 50.0)):
            for seed in range(3):
                rows.append({"model": model, "setting": setting, "seed": seed, "recon_nll": recon + seed,
                             "factor_score": 0.01 * recon + shift, "mig": 0.2 - 0.1 * shift})
    claims = ft.tradeoff_claims(pd.DataFrame(rows), "dsprites")
    assert [c.verdict for c in claims] == ["reproduced", "not reproduced"]
    assert claims[0].id == "fvae-tradeoff-dsprites-metric"


def test_gan_baseline_configs_and_claim():
    p = ft.profile("preview")
    configs = ft.gan_configs(p)
    assert [c.seed for c in configs] == list(p.seeds) and all(c.model.kind == "info_wgan" for c in configs)
    assert configs[0].model.critic_steps == 5 and configs[0].model.code_dim == 10 and configs[0].lr == 1e-4
    table = pd.DataFrame({"model": [ft.FACTOR_VAE] * 6, "factor_score": [0.8, 0.82, 0.79, 0.85, 0.81, 0.8]})
    worse = pd.DataFrame({"model": [ft.INFO_WGAN] * 2, "factor_score": [0.4, 0.45]})
    claim = ft.gan_claim(worse, table)
    assert claim.verdict == "reproduced" and claim.ours["n"] == [6, 2]
    assert ft.gan_claim(worse.assign(factor_score=[0.9, 0.95]), table).verdict == "not reproduced"
