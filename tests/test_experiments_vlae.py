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


def fake_rows(noise: float = 1.0, images: int = 400, **shift) -> list[dict]:
    """Evaluation rows of the six models on the same test images: per-image NLLs share an image effect, so
    a model's shift is its paired difference; ``noise`` is each model's own per-image scatter. Every row
    passes its learning gate unless the caller overrides a gate number."""
    rng = np.random.default_rng(0)
    base = rng.normal(300, 20, images)
    nll = {"vae": 310, "vae_iaf": 305, "vae_af": 300, "pixelcnn": 290, "pixelcnn_gaussian": 285, "vlae": 280}
    nll.update(shift)
    return [{"model": m, "nll": v, "per_image": base + (v - 300) + rng.normal(0, noise, images),
             "kl": 0.0 if m == "pixelcnn" else 10.0, "elbo": -v - 5, "untrained_elbo": -545.0,
             "recon_nll": v - 10, "mean_image_nll": 400.0} for m, v in nll.items()]


def table(rows):
    return {c.id: c for c in vlae.table_claims(rows, SMOKE, seed=3)}


AF_IAF, VLAE_PIXELCNN, AF_GAUSSIAN = ("vlae-af-prior-beats-iaf-posterior", "vlae-beats-unconditional-pixelcnn",
                                      "vlae-af-prior-beats-gaussian-prior")


def test_paired_claims_follow_the_measured_difference_rule():
    claims = table(fake_rows())
    assert {c.verdict for c in claims.values()} == {"reproduced"}            # clear gains of 5 nats
    claim = claims[AF_IAF]
    assert claim.test["test"].startswith("z-test") and claim.test["z"] > 1.645
    assert claim.test["min_effect"] == vlae.NLL_MIN_EFFECT[AF_IAF] and claim.ours["gain"] == pytest.approx(5, abs=0.3)
    assert "one training seed per model" in claim.metric and "one training seed per model" in claim.rule
    assert claim.seeds == [3] and claim.budget["images_per_run"] == SMOKE.steps * SMOKE.batch_size
    assert claim.budget["paper_images_per_run"] == 200_000 * 100
    assert claim.gate == {"runs": 2, "passed": 2, "collapsed": 0, "failed": {}}
    # reversed: the AF prior is worse than the IAF posterior
    assert table(fake_rows(vae_af=310))[AF_IAF].verdict == "not reproduced"
    # no difference, noisy images (gains of ±8 nats averaging 0): nothing to say either way
    rows = fake_rows()
    iaf = next(row for row in rows if row["model"] == "vae_iaf")
    af = next(row for row in rows if row["model"] == "vae_af")
    af["per_image"] = iaf["per_image"] + 8.0 * np.resize([1.0, -1.0], len(iaf["per_image"]))
    none = table(rows)[AF_IAF]
    assert none.verdict == "inconclusive" and none.reason == "underpowered"
    # no difference, precise images: significantly below the 0.1-nat minimal effect
    assert table(fake_rows(noise=0.01, vae_af=305))[AF_IAF].verdict == "not reproduced"
    # a VLAE between its two baselines: it beats the PixelCNN but not the Gaussian prior
    between = table(fake_rows(vlae=287))
    assert between[VLAE_PIXELCNN].verdict == "reproduced" and between[AF_GAUSSIAN].verdict == "not reproduced"


def test_paired_claims_leave_out_runs_that_fail_their_gate():
    rows = fake_rows()
    by_model = {row["model"]: row for row in rows}
    by_model["vae_iaf"]["kl"] = 0.3                        # posterior collapse
    by_model["pixelcnn_gaussian"]["recon_nll"] = 450.0     # worse than the mean image
    claims = table(rows)
    collapsed, undertrained = claims[AF_IAF], claims[AF_GAUSSIAN]
    assert collapsed.verdict == "inconclusive" and collapsed.reason == "collapsed"
    assert collapsed.gate == {"runs": 2, "passed": 1, "collapsed": 1, "failed": {"collapsed": 1}}
    assert undertrained.verdict == "inconclusive" and undertrained.reason == "under-trained"
    assert undertrained.gate["failed"] == {"reconstruction not better than the mean image": 1}
    # the unconditional PixelCNN has no code: its KL of 0 is not a collapse
    assert claims[VLAE_PIXELCNN].verdict == "reproduced"
    by_model["vlae"]["elbo"] = -600.0                      # no better than untrained
    assert table(rows)[VLAE_PIXELCNN].reason == "under-trained"


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
