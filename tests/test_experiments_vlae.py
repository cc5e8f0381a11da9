"""dvae_core.papers.vlae: the models of the table, configurations and claim rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

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


def fake_rows(**shift) -> list[dict]:
    rng = np.random.default_rng(0)
    base = rng.normal(300, 20, 400)
    nll = {"vae": 310, "vae_iaf": 305, "vae_af": 300, "pixelcnn": 290, "pixelcnn_gaussian": 285, "vlae": 280}
    nll.update(shift)
    return [{"model": m, "nll": v, "per_image": base + (v - 300) + rng.normal(0, 1, 400)} for m, v in nll.items()]


def test_paired_claims():
    verdicts = lambda rows: [c.verdict for c in vlae.table_claims(rows)]  # noqa: E731
    assert verdicts(fake_rows()) == ["reproduced"] * 3
    assert verdicts(fake_rows(vae_af=310))[0] == "not reproduced"
    assert verdicts(fake_rows(vae_af=305.05))[0] == "inconclusive"
    assert verdicts(fake_rows(vlae=287))[1:] == ["reproduced", "not reproduced"]  # between the two baselines


def test_receptive_field_claim():
    def rows(kls):
        return [{"receptive_field": rf, "kl": kl, "window": (rf, 1), "nll": 0.0, "nll_se": 0.0}
                for rf, kl in zip((4, 10, 17, 31), kls)]

    assert vlae.receptive_field_claim(rows([20, 15, 12, 8])).verdict == "reproduced"
    assert vlae.receptive_field_claim(rows([8, 12, 15, 20])).verdict == "not reproduced"
    assert vlae.receptive_field_claim(rows([20, 8, 15, 12])).verdict == "inconclusive"
    one_swap = vlae.receptive_field_claim(rows([9.672, 8.965, 8.451, 8.73]))  # ρ = 1 − 6·18/60 = −0.8 exactly
    assert one_swap.ours["spearman_rho"] == -0.8 and one_swap.verdict == "reproduced"
