"""dvae_core.papers.vlae: the models of the table, configurations and claim rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dvae_core import rules
from dvae_core.papers import vlae
from dvae_core.train import TrainConfig, build_model
from dvae_core.models.vlae import VLAE


def test_every_table_model_round_trips_and_is_named_back():
    p = vlae.profile("smoke")
    configs = vlae.table_configs(p) + vlae.sweep_configs(p)
    assert [vlae.model_name(c) for c in configs[:6]] == list(vlae.MODELS)
    for config in configs:
        assert config.optimizer == "adamax" and config.dataset_kwargs["binarize"] == "static"
        again = TrainConfig.from_dict(json.loads(config.canonical()))
        assert again == config
        assert isinstance(build_model(again), VLAE)
    assert [tuple(c.model.pixelcnn_window) for c in configs[6:]] == list(p.windows)


def test_af_and_iaf_models_have_flows_of_the_same_size():
    p = vlae.profile("preview")
    af, iaf = (build_model(vlae.run_config(p, m)) for m in ("vae_af", "vae_iaf"))
    size = lambda module: sum(t.numel() for t in module.parameters())  # noqa: E731
    # "of equal size": same steps and widths; the IAF's MADEs also read the encoder context
    assert size(af.af_prior) <= size(iaf.iaf) and size(af.af_prior) > 0.5 * size(iaf.iaf)


def test_paper_profile_is_the_papers_binary_model():
    p = vlae.profile("paper")
    assert (p.latent_dim, p.pixelcnn_layers, p.pixelcnn_channels, p.flow_steps, p.flow_hidden, p.lr, p.nll_k) == \
        (64, 6, 12, 4, 640, 2e-3, 4096)
    assert vlae.model_config(p, "vlae").free_bits == 0.01
    with pytest.raises(ValueError, match="unknown profile"):
        vlae.profile("quick")


SMOKE = vlae.profile("smoke")


def fake_rows(seeds: int = 5, seed_sd: float = 0.5, images: int = 100, **shift) -> list[dict]:
    """Evaluation rows of the six models at ``seeds`` training seeds on the same test images. A model's NLL
    is its table value plus ``shift``, plus a per-(model, seed) training scatter of sd ``seed_sd``; its
    per-image NLLs share an image effect. Every row passes its learning gate unless the caller overrides
    a gate number."""
    rng = np.random.default_rng(0)
    base = rng.normal(300, 20, images)
    nll = {"vae": 310, "vae_iaf": 305, "vae_af": 300, "pixelcnn": 290, "pixelcnn_gaussian": 285, "vlae": 280}
    nll.update(shift)
    rows = []
    for seed in range(seeds):
        for m, v in nll.items():
            value = v + rng.normal(0, seed_sd)
            rows.append({"model": m, "seed": 100 + seed, "nll": value,
                         "per_image": base + (value - 300) + rng.normal(0, 1.0, images),
                         "kl": 0.0 if m == "pixelcnn" else 10.0, "elbo": -value - 5, "untrained_elbo": -545.0,
                         "recon_nll": value - 10, "mean_image_nll": 400.0})
    return rows


def table(rows):
    return {c.id: c for c in vlae.table_claims(rows, SMOKE)}


AF_IAF, VLAE_PIXELCNN, AF_GAUSSIAN = ("vlae-af-prior-beats-iaf-posterior", "vlae-beats-unconditional-pixelcnn",
                                      "vlae-af-prior-beats-gaussian-prior")


def row_of(rows, model, seed):
    return next(r for r in rows if r["model"] == model and r["seed"] == seed)


def test_paired_claims_test_the_per_seed_differences_over_training_seeds():
    claims = table(fake_rows())
    assert {c.verdict for c in claims.values()} == {"reproduced"}            # gains of 5 nats on every seed
    claim = claims[AF_IAF]
    assert claim.test["test"] == "exact Wilcoxon signed-rank test of the per-seed differences"
    assert claim.test["n"] == 5 and claim.test["p_claim"] == pytest.approx(1 / 32)
    assert claim.test["min_effect"] == vlae.NLL_MIN_EFFECT[AF_IAF]
    assert claim.test["mean_effect"] == pytest.approx(5, abs=1.0) and "per training seed" in claim.metric
    assert claim.seeds == [100, 101, 102, 103, 104] and set(claim.ours["per_seed"]) == {str(s) for s in claim.seeds}
    assert claim.budget["images_per_run"] == SMOKE.steps * SMOKE.batch_size
    assert claim.budget["paper_images_per_run"] == 200_000 * 100
    assert claim.gate == {"runs": 10, "passed": 10, "collapsed": 0, "failed": {}}
    # reversed on every seed: the AF prior is worse than the IAF posterior
    assert table(fake_rows(vae_af=310))[AF_IAF].verdict == "not reproduced"
    # no difference, training noise of 3 nats: nothing to say either way
    none = table(fake_rows(seed_sd=3.0, vae_af=305))[AF_IAF]
    assert none.verdict == "inconclusive" and none.reason == "underpowered"
    # no difference, precise seeds: significantly below the 0.1-nat minimal effect
    assert table(fake_rows(seed_sd=0.001, vae_af=305))[AF_IAF].verdict == "not reproduced"
    # a VLAE between its two baselines: it beats the PixelCNN but not the Gaussian prior
    between = table(fake_rows(vlae=287))
    assert between[VLAE_PIXELCNN].verdict == "reproduced" and between[AF_GAUSSIAN].verdict == "not reproduced"


def test_one_test_set_cannot_stand_in_for_training_seeds():
    """Two seeds cannot reach p < 0.05 however large and precise the per-image gains are."""
    claim = table(fake_rows(seeds=2, seed_sd=0.001))[AF_IAF]
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert all(v["gain"] == pytest.approx(5, abs=0.6) for v in claim.ours["per_seed"].values())


def test_paired_claims_leave_out_seeds_whose_runs_fail_their_gate():
    rows = fake_rows()
    row_of(rows, "vae_iaf", 100)["kl"] = 0.3                          # posterior collapse at one seed
    claim = table(rows)[AF_IAF]
    assert claim.test["n"] == 4 and claim.test["dropped_collapsed"] == 1
    assert claim.gate == {"runs": 10, "passed": 9, "collapsed": 1, "failed": {"collapsed": 1}}
    for seed in range(100, 105):                                        # worse than the mean image everywhere
        row_of(rows, "pixelcnn_gaussian", seed)["recon_nll"] = 450.0
    undertrained = table(rows)[AF_GAUSSIAN]
    assert undertrained.verdict == "inconclusive" and undertrained.reason == "under-trained"
    # the unconditional PixelCNN has no code: its KL of 0 is not a collapse
    assert table(rows)[VLAE_PIXELCNN].verdict == "reproduced"


def test_the_table_trains_every_model_on_each_seed_and_scores_it_on_its_own():
    configs = vlae.seeded_table_configs(SMOKE, seed=7)
    assert vlae.table_seeds(SMOKE, 7) == (7, 8) and len(configs) == 2 * len(vlae.MODELS)
    assert [c.seed for c in configs] == [7] * 6 + [8] * 6
    assert vlae.profile("preview").training_seeds == 5  # 5 pairs all agreeing give p = 1/32 < 0.05
    frame = vlae.nll_table([{**r, "label": vlae.LABELS[r["model"]], "neg_elbo": -r["elbo"]} for r in fake_rows()])
    assert list(frame["seeds"].unique()) == [5] and frame["sd over seeds"].notna().all()


FIELDS = (4, 10, 17, 31)  # the receptive fields of the preview's four windows


def sweep_rows(kls_by_seed, fields=FIELDS, first_seed=100, **gate):
    """Evaluation rows of a receptive-field sweep: ``kls_by_seed[i]`` are seed ``first_seed + i``'s KLs, one per
    receptive field. Every run passes its learning gate unless ``gate`` gives, per gate number, a
    {(seed index, window index): value} override."""
    rows = []
    for i, kls in enumerate(kls_by_seed):
        for j, (rf, kl) in enumerate(zip(fields, kls)):
            row = {"model": "vlae", "seed": first_seed + i, "receptive_field": rf, "kl": kl, "window": (rf, 1),
                   "nll": 240.0 - j, "nll_se": 1.0, "elbo": -250.0, "untrained_elbo": -545.0, "recon_nll": 240.0,
                   "mean_image_nll": 400.0}
            row.update({k: v[i, j] for k, v in gate.items() if (i, j) in v})
            rows.append(row)
    return rows


def trend_claim(rows, cost=None):
    return vlae.receptive_field_claim(rows, SMOKE, cost=cost)


def falling(seeds=5, noise=0.0, rng=None):
    """KLs that fall with the window on every seed (plus a per-run noise of sd ``noise``)."""
    rng = rng or np.random.default_rng(0)
    return [list(np.array([10.0, 9.0, 8.5, 8.2]) + 0.3 * s + rng.normal(0, noise, 4)) for s in range(seeds)]


def test_the_sweep_trains_every_window_on_each_seed():
    configs = vlae.seeded_sweep_configs(SMOKE, seed=7)
    assert [c.seed for c in configs] == [7, 7, 8, 8]
    assert [tuple(c.model.pixelcnn_window) for c in configs] == list(SMOKE.windows) * 2
    assert configs[:2] == vlae.sweep_configs(SMOKE, 7)     # seed 7's runs are the one-seed sweep's: reused
    assert vlae.profile("preview").training_seeds == 5     # 5 seeds all falling give p = 1/32 < 0.05
    from dvae_core.papers.factorvae.tradeoff import MIN_TC_FALL_RHO
    assert vlae.MIN_KL_FALL_RHO == MIN_TC_FALL_RHO          # one minimal effect for a per-replicate ρ
    # ρ exact enough that equal trends of two seeds tie in the signed-rank test; two windows give the direction
    assert vlae.spearman_rho(FIELDS, [10.0, 9.0, 8.2, 8.5]) == -0.8 and vlae.spearman_rho([4, 17], [3.0, 2.0]) == -1.0
    assert np.isnan(vlae.spearman_rho([4], [3.0])) and np.isnan(vlae.spearman_rho(FIELDS, [9.0] * 4))


def test_kl_falling_with_the_window_on_every_seed_is_reproduced_over_seeds():
    # one swap of neighbours on two seeds (ρ = −0.8): each seed alone could not decide (p = 4/24), five can
    kls = falling()
    kls[1] = [10.0, 9.0, 8.2, 8.5]
    kls[3] = [9.0, 10.0, 8.5, 8.2]
    cost = rules.Cost(cpu_seconds=1440.0, gpu_seconds=120.0)
    claim = trend_claim(sweep_rows(kls), cost)
    assert claim.verdict == "reproduced" and claim.reason is None
    assert claim.test["test"] == "exact Wilcoxon signed-rank test of −ρ over seeds" and claim.test["replicate"] == "seed"
    assert claim.test["n"] == 5 and claim.test["p_claim"] == pytest.approx(1 / 32)
    assert claim.test["min_effect"] == vlae.MIN_KL_FALL_RHO
    assert claim.ours["per_seed_rho"] == {"100": -1.0, "101": -0.8, "102": -1.0, "103": -0.8, "104": -1.0}
    assert claim.ours["median_rho"] == -1.0 and claim.ours["seeds_falling"] == 5
    assert claim.ours["receptive_field"] == list(FIELDS) and claim.ours["windows"] == ["4×1", "10×1", "17×1", "31×1"]
    assert claim.ours["mean_kl"][0] == pytest.approx(np.mean([k[0] for k in kls]), abs=1e-3)
    assert claim.seeds == [100, 101, 102, 103, 104]
    assert claim.gate == {"runs": 20, "passed": 20, "collapsed": 0, "failed": {}}
    assert claim.budget["images_per_run"] == SMOKE.steps * SMOKE.batch_size
    # rising on every seed: the reverse is significant
    assert trend_claim(sweep_rows([k[::-1] for k in kls])).verdict == "not reproduced"
    # a near-empty code at the largest window is the claim's prediction, not a collapsed run: KL is not gated
    empty = falling()
    for k in empty:
        k[-1] = 0.2
    assert trend_claim(sweep_rows(empty)).verdict == "reproduced"


def test_no_trend_over_seeds_is_not_reproduced_or_inconclusive_by_the_rule():
    # KLs in a random order on every seed: ρ of either sign, no direction significant
    rng = np.random.default_rng(3)
    noise = [list(rng.permutation([10.0, 9.0, 8.5, 8.2])) for _ in range(5)]
    rhos = [vlae.spearman_rho(FIELDS, k) for k in noise]
    claim = trend_claim(sweep_rows(noise))
    assert claim.ours["per_seed_rho"] == {str(100 + i): pytest.approx(r) for i, r in enumerate(rhos)}
    assert claim.verdict in ("inconclusive", "not reproduced")
    assert claim.test["p_claim"] >= rules.ALPHA
    # flat to weakly falling on every seed (ρ between −0.2 and +0.2): significantly below the minimal effect 0.3
    weak = [[8.0 + r for r in ranks] for ranks in ([2, 4, 1, 3], [2, 3, 4, 1], [4, 1, 2, 3], [1, 4, 3, 2], [3, 1, 4, 2])]
    assert [vlae.spearman_rho(FIELDS, k) for k in weak] == pytest.approx([0.0, -0.2, -0.2, 0.2, 0.0])
    below = trend_claim(sweep_rows(weak))
    assert below.verdict == "not reproduced" and below.test["p_below_min_effect"] < rules.ALPHA
    # falling on four seeds, rising on one: p = 2/32 at best, inconclusive, with the seeds that would decide it
    mixed = falling()
    mixed[2] = mixed[2][::-1]
    cost = rules.Cost(cpu_seconds=1440.0, gpu_seconds=120.0)
    open_ = trend_claim(sweep_rows(mixed), cost)
    assert open_.verdict == "inconclusive" and open_.reason == "underpowered"
    assert open_.power["unit"] == "seeds" and open_.power["needed"] > 5 and open_.power["towards"] == "reproduced"
    assert open_.power["cpu_hours"] == pytest.approx(open_.power["more"] * 0.4)


def test_a_seed_whose_run_fails_its_gate_is_dropped():
    kls = falling(seeds=6)
    # seed 101's third window is no better than untrained: the whole seed leaves the test, five remain
    rows = sweep_rows(kls, elbo={(1, 2): -600.0})
    claim = trend_claim(rows)
    assert claim.verdict == "reproduced" and claim.test["n"] == 5 and claim.test["dropped_by_gate"] == 1
    assert claim.gate == {"runs": 24, "passed": 23, "collapsed": 0,
                          "failed": {"score not above the untrained model's": 1}}
    assert claim.ours["seeds"] == 5 and "101" in claim.ours["per_seed_rho"]   # its ρ is shown, not tested
    assert claim.seeds == [100, 101, 102, 103, 104, 105]
    # the dropped seed's KLs leave the mean KL per window
    kept = [k for i, k in enumerate(kls) if i != 1]
    assert claim.ours["mean_kl"][1] == pytest.approx(np.mean([k[1] for k in kept]), abs=1e-3)
    # with five seeds, one dropped leaves four: p ≥ 1/16, inconclusive for the gate's reason
    rows = sweep_rows(falling(), recon_nll={(0, 0): 450.0})
    claim = trend_claim(rows)
    assert claim.verdict == "inconclusive" and claim.reason == "under-trained" and claim.test["n"] == 4
    # every seed dropped: nothing to test
    rows = sweep_rows(falling(seeds=3), recon_nll={(i, 0): 450.0 for i in range(3)})
    none = trend_claim(rows)
    assert none.verdict == "inconclusive" and none.reason == "under-trained" and none.ours["median_rho"] is None


def test_the_sweep_seed_table_and_figure_show_every_seed():
    import matplotlib
    matplotlib.use("Agg")
    rows = sweep_rows(falling(seeds=3), elbo={(2, 0): -600.0})
    table = vlae.sweep_seed_table(rows)
    assert list(table.index) == [100, 101, 102] and table["Spearman ρ"].tolist() == [-1.0, -1.0, -1.0]
    assert table.gate.tolist()[:2] == ["passed", "passed"] and table.gate.iloc[2].startswith("score")
    fig = vlae.plot_receptive_field_sweep(rows)
    assert len(fig.axes[0].lines) >= 3 and len(fig.axes[1].lines) >= 3
