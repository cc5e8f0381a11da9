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


def sweep_rows(kls, fields=(4, 10, 17, 31, 46, 60, 77, 95), **gate):
    return [{"model": "vlae", "receptive_field": rf, "kl": kl, "window": (rf, 1), "nll": 0.0, "nll_se": 0.0,
             "elbo": -250.0, "untrained_elbo": -545.0, "recon_nll": 240.0, "mean_image_nll": 400.0,
             **{k: v[i] for k, v in gate.items()}}
            for i, (rf, kl) in enumerate(zip(fields, kls))]


def trend_claim(rows, cost=None):
    return vlae.receptive_field_claim(rows, SMOKE, seed=0, cost=cost)


def test_receptive_field_trend_on_four_points_is_underpowered():
    # the preview's sweep: one swap of neighbours, ρ = −0.8 exactly, p = 4/24 (no rounding onto a threshold)
    cost = rules.Cost(cpu_seconds=360.0, gpu_seconds=30.0)
    claim = trend_claim(sweep_rows([9.672, 8.965, 8.451, 8.73]), cost)
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert claim.ours["spearman_rho"] == -0.8 and claim.test["p_claim"] == pytest.approx(4 / 24, abs=1e-4)
    assert claim.power["needed"] == 9 and claim.power["more"] == 5
    assert claim.power["cpu_hours"] == pytest.approx(0.5) and claim.power["gpu_minutes"] == pytest.approx(2.5)
    # no four-point sweep short of a perfectly monotone one can reproduce: the smallest p is 1/4! ≈ 0.042
    import itertools
    for order in itertools.permutations([20, 15, 12, 8]):
        verdict = trend_claim(sweep_rows(order)).verdict
        assert verdict == ("reproduced" if list(order) == [20, 15, 12, 8] else
                           "not reproduced" if list(order) == [8, 12, 15, 20] else "inconclusive")
    assert trend_claim(sweep_rows([20, 8, 15, 12])).reason == "underpowered"


def test_receptive_field_trend_on_eight_points():
    assert trend_claim(sweep_rows([20, 18, 15, 14, 12, 10, 9, 8])).verdict == "reproduced"
    assert trend_claim(sweep_rows([20, 18, 15, 14, 12, 10, 9, 8][::-1])).verdict == "not reproduced"
    flat = trend_claim(sweep_rows([12, 9, 14, 10, 13, 8, 12, 11]))
    assert flat.verdict == "inconclusive" and flat.reason == "underpowered"


def test_receptive_field_trend_drops_runs_that_fail_their_gate():
    kls = [20, 18, 15, 14, 12]
    # the fifth run is no better than untrained: it leaves the trend, four monotone points remain
    rows = sweep_rows(kls, elbo=[-250.0] * 4 + [-600.0])
    claim = trend_claim(rows)
    assert claim.verdict == "reproduced" and claim.ours["receptive_field"] == [4, 10, 17, 31]
    assert claim.gate["runs"] == 5 and claim.gate["passed"] == 4
    # a window whose code is nearly empty is the claim's prediction, not a failed run: KL is not gated
    assert trend_claim(sweep_rows([20, 18, 15, 14, 0.2])).verdict == "reproduced"
    # two of four fail: too few points left, inconclusive for the gate's reason
    rows = sweep_rows([20, 8, 15, 12], recon_nll=[240.0, 450.0, 450.0, 240.0])
    claim = trend_claim(rows)
    assert claim.verdict == "inconclusive" and claim.reason == "under-trained"
