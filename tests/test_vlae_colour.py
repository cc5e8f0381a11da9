"""Colour kept in z (Chen et al. 2017, Sec. 3, Fig. 3(d)): the grayscale-context PixelCNN, the
colour error of decompressions and the claim rule of ``notebooks/vlae_colour.ipynb``."""

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from dvae_core.papers import vlae
from dvae_core.papers.vlae import colour
from dvae_core.models.pixelcnn import LUMINANCE_WEIGHTS, PixelCNN, PixelCNNConfig, luminance
from dvae_core.models.vlae import VLAE, GrayContextVLAEConfig, VLAEConfig, vlae_config
from dvae_core.runs import config_hash
from dvae_core.train import TrainConfig, train
from test_vlae import analytic_dependencies, one_thread  # noqa: F401 (one_thread: the same autouse fixture)

WEIGHTS = torch.tensor(LUMINANCE_WEIGHTS)


def tiny_vlae_config(context: str = "full", **overrides) -> VLAEConfig:
    kwargs = dict(latent_dim=4, in_channels=3, resolution=8, encoder_channels=4, decoder_channels=4, hidden=16,
                  pixelcnn_layers=2, pixelcnn_channels=4, flow_steps=1, flow_hidden=16)
    return vlae_config(context, **{**kwargs, **overrides})


def rgb_jacobian(function, shape, seed=1) -> torch.Tensor:
    """(3, H·W outputs, 3, H·W inputs): d output[channel, pixel] / d input[channel, pixel]."""
    height, width = shape
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
    jac = jacobian(function, x)                                    # (1, 3, H, W, 1, 3, H, W)
    return jac.reshape(3, height * width, 3, height * width)


def assert_luminance_only(jac: torch.Tensor, config: PixelCNNConfig, shape) -> None:
    """Every output channel depends on exactly the receptive field's earlier pixels, and on a pixel's
    three channels only through 0.299 R + 0.587 G + 0.114 B."""
    expected = analytic_dependencies(config, shape)
    for out_channel in range(3):
        for in_channel in range(3):
            depends = jac[out_channel, :, in_channel, :] != 0
            assert not torch.triu(depends).any()        # causal: never pixel i itself or later ones
            assert torch.equal(depends, expected)       # exactly the receptive field, borders included
        # The gradient w.r.t. (R, G, B) of an earlier pixel is one number times the luminance weights.
        per_weight = jac[out_channel] / WEIGHTS.view(1, 3, 1)     # (outputs, input channel, inputs)
        torch.testing.assert_close(per_weight[:, 1], per_weight[:, 0], rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(per_weight[:, 2], per_weight[:, 0], rtol=1e-4, atol=1e-7)
    assert expected.any()


# --- the grayscale-context PixelCNN --------------------------------------------------------------

@pytest.mark.parametrize("config", [
    PixelCNNConfig(layers=3, channels=4, kernel=3),
    PixelCNNConfig(layers=2, channels=4, window=(4, 2)),
], ids=["stacked-3x3", "window-4x2"])
@pytest.mark.parametrize("conditioned", [False, True])
def test_gray_pixelcnn_is_causal_and_reads_colour_only_through_luminance(config, conditioned):
    torch.manual_seed(0)
    shape = (5, 6)
    net = PixelCNN(config, in_channels=3, context_channels=2 if conditioned else 0, gray_input=True)
    context = torch.randn(1, 2, *shape) if conditioned else None
    assert net.input_layer.in_channels == 1 and net.output.out_channels == 3
    assert_luminance_only(rgb_jacobian(lambda image: net(image, context), shape), config, shape)


def test_full_context_pixelcnn_reads_each_colour_channel_separately():
    # The control for the test above: with full context the three channels' gradients are not tied.
    torch.manual_seed(0)
    config, shape = PixelCNNConfig(layers=2, channels=4), (4, 4)
    jac = rgb_jacobian(PixelCNN(config, in_channels=3), shape)
    per_weight = jac[0] / WEIGHTS.view(1, 3, 1)
    assert not torch.allclose(per_weight[:, 1], per_weight[:, 0], rtol=1e-3)
    assert torch.equal(jac[0, :, 0, :] != 0, analytic_dependencies(config, shape))


def test_gray_vlae_decoder_is_causal_and_luminance_only_given_z():
    torch.manual_seed(0)
    config = tiny_vlae_config(context="gray")
    model = VLAE(config)
    z = torch.randn(1, config.latent_dim)
    assert_luminance_only(rgb_jacobian(lambda image: model._decoder_logits(image, z), (8, 8)),
                          config.pixelcnn(), (8, 8))


def test_luminance_is_the_bt601_weighted_sum():
    x = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5]).view(4, 3, 1, 1)
    torch.testing.assert_close(luminance(x).flatten(), torch.tensor([0.299, 0.587, 0.114, 0.5]))
    with pytest.raises(ValueError, match="RGB"):
        luminance(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="in_channels=3"):
        PixelCNN(PixelCNNConfig(), in_channels=1, gray_input=True)


def test_mean_decoding_is_the_fixed_point_of_the_pixel_means():
    # Every pixel of a mean decoding is its own predicted probability given the pixels before it, so
    # feeding the image back through the network returns it.
    torch.manual_seed(0)
    net = PixelCNN(PixelCNNConfig(layers=2, channels=4), in_channels=3, context_channels=2, gray_input=True)
    context = torch.randn(3, 2, 5, 4)
    image = net.sample(3, (5, 4), context, mean=True)
    assert image.min() > 0 and image.max() < 1
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(net(image, context)), image)
    torch.testing.assert_close(net.sample(3, (5, 4), context, mean=True), image)   # deterministic given c


# --- the full-context VLAE is unchanged ------------------------------------------------------------

# Outputs of the full-context VLAE as they were before the colour option existed (same seeds).
REFERENCE = {1: (53.246124267578125, 0.537561297416687, 47.44209671020508, -0.10390996932983398, 2709),
             3: (5.15574312210083, -0.1043483167886734, 135.99623107910156, -0.08206427097320557, 2895)}


@pytest.mark.parametrize("channels", [1, 3])
def test_full_context_vlae_outputs_are_unchanged(channels):
    torch.manual_seed(0)
    model = VLAE(tiny_vlae_config(in_channels=channels))
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, channels, 8, 8, generator=generator)
    z = torch.randn(2, 4, generator=generator)
    with torch.no_grad():
        logits = model._decoder_logits(x, z)
        torch.manual_seed(1)
        terms = model.loss(x)
    got = (logits.sum().item(), logits[1, -1, 5, 6].item(), terms["loss"].item(), terms["kl"].item(),
           sum(p.numel() for p in model.parameters()))
    assert got[:4] == pytest.approx(REFERENCE[channels][:4], rel=1e-5, abs=1e-6)
    assert got[4] == REFERENCE[channels][4]


def test_gray_vlae_differs_only_by_its_first_layer():
    full, gray = VLAE(tiny_vlae_config()), VLAE(tiny_vlae_config(context="gray"))
    full_shapes = {k: v.shape for k, v in full.state_dict().items()}
    gray_shapes = {k: v.shape for k, v in gray.state_dict().items()}
    assert full_shapes.keys() == gray_shapes.keys()
    assert {k for k in full_shapes if full_shapes[k] != gray_shapes[k]} == {"pixelcnn.input_layer.weight"}
    assert gray_shapes["pixelcnn.input_layer.weight"][1] == 1


# --- the configuration ---------------------------------------------------------------------------

#: Run hashes of the chapter's preview VLAEs (runs/ holds them): the colour option must not rename them.
PREVIEW_HASHES = ["0e4059d15a399007", "8d13a43abf2dc246", "b75d66f090028182", "3594c6a47b3b19b7",
                  "61f5e800309f6287", "03d6e429a7e44851", "acfae5770d48a3fd", "7e2c7e14ce896182",
                  "38b13b6d778a324b", "a74c3dc6952c2596"]


def test_existing_full_context_recipes_are_unchanged():
    p = vlae.profile("preview")
    configs = vlae.table_configs(p) + vlae.sweep_configs(p)
    assert [config_hash(c) for c in configs] == PREVIEW_HASHES
    for config in configs:
        assert "context" not in config.to_dict()["model"] and type(config.model) is VLAEConfig
    assert vlae_config("full") == VLAEConfig() and type(vlae_config("full")) is VLAEConfig
    assert VLAEConfig().context == "full"
    assert [f.name for f in dataclasses.fields(VLAEConfig)][-1] == "unconditional"


@pytest.mark.parametrize("profile", ["smoke", "preview", "paper"])
def test_colour_configs_round_trip_through_their_recipes(profile):
    full, gray = colour.colour_configs(colour.profile(profile), seed=2)
    assert type(full.model) is VLAEConfig and isinstance(gray.model, GrayContextVLAEConfig)
    assert gray.model.context == "gray" and gray.to_dict()["model"]["kind"] == "vlae_gray"
    assert "context" not in full.to_dict()["model"] and "context" not in gray.to_dict()["model"]
    for config in (full, gray):
        assert TrainConfig.from_dict(config.to_dict()) == config
        assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict(), default=list))) == config
        assert pickle.loads(pickle.dumps(config)) == config
    assert config_hash(full) != config_hash(gray)
    # Same recipe but for the model kind.
    assert {**gray.to_dict()["model"], "kind": "vlae"} == full.to_dict()["model"]
    assert full.dataset == "shapes3d" and full.dataset_kwargs == {"resolution": colour.profile(profile).resolution}


def test_gray_context_rejects_what_it_cannot_be():
    with pytest.raises(ValueError, match="in_channels=3"):
        vlae_config("gray")                                          # 1 channel by default
    with pytest.raises(ValueError, match="decoder='pixelcnn'"):
        tiny_vlae_config(context="gray", decoder="factorized")
    with pytest.raises(ValueError, match="unknown context"):
        tiny_vlae_config(context="sepia")


def test_gray_context_vlae_trains_through_the_training_loop(tmp_path):
    config = colour.colour_configs(colour.profile("smoke"))[1]
    config = dataclasses.replace(config, steps=2, checkpoint_every=2)
    run = train(config, tmp_path / "run", device="cpu", progress=False)
    assert run["model"].pixelcnn.gray_input and len(run["history"]) >= 1
    assert np.isfinite(run["history"][-1]["loss"])


# --- the colour error ------------------------------------------------------------------------------

def flat(rgb, size=4) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, size, size).clone()


def test_chroma_error_on_images_with_known_answers():
    red, gray_same_luma, green = flat([1.0, 0.0, 0.0]), flat([0.299] * 3), flat([0.0, 1.0, 0.0])
    # Red's chroma is (1 − 0.299, −0.299, −0.299); any gray image's is 0.
    assert colour.chroma_error(red, gray_same_luma).item() == pytest.approx((0.701 + 0.299 + 0.299) / 3, abs=1e-6)
    assert colour.chroma_error(red, red).item() == 0.0
    # Red vs green: chroma (0.701, −0.299, −0.299) vs (−0.587, 0.413, −0.587).
    assert colour.chroma_error(red, green).item() == pytest.approx((1.288 + 0.712 + 0.288) / 3, abs=1e-6)
    # Brightness alone is not colour: two grays differ in mean RGB but not in chroma.
    dark, light = flat([0.2] * 3), flat([0.8] * 3)
    assert colour.chroma_error(dark, light).item() == pytest.approx(0.0, abs=1e-7)
    assert colour.mean_rgb_error(dark, light).item() == pytest.approx(0.6)
    # Only the image's mean counts: moving the same pixels around changes nothing.
    image = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    shuffled = image.flatten(2)[:, :, torch.randperm(16)].view(2, 3, 4, 4)
    torch.testing.assert_close(colour.chroma_error(image, shuffled), torch.zeros(2), atol=1e-6, rtol=0)
    # Half the image recoloured from red to green: half the full error.
    half = red.clone()
    half[:, :, :2] = green[:, :, :2]
    assert colour.chroma_error(red, half).item() == pytest.approx((1.288 + 0.712 + 0.288) / 6, abs=1e-6)


def test_colour_error_scores_the_models_own_decompressions():
    torch.manual_seed(0)
    model = VLAE(tiny_vlae_config(context="gray")).eval()
    images = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    result = colour.colour_error(model, images, num=2, seed=0, kl_samples=3)
    outputs = result["decompressions"]
    assert len(outputs) == 2 and outputs[0].shape == images.shape
    expected = ((colour.chroma_error(images, outputs[0]) + colour.chroma_error(images, outputs[1])) / 2).numpy()
    np.testing.assert_allclose(result["per_image_colour_error"], expected, rtol=1e-6)
    assert result["per_image_kl"].shape == (5,)
    assert result["colour_error"] == pytest.approx(expected.mean())
    again = colour.colour_error(model, images, num=2, seed=0, kl_samples=3)
    np.testing.assert_array_equal(again["per_image_colour_error"], result["per_image_colour_error"])
    table = colour.colour_table({"full": result, "gray": again})
    assert list(table.index) == [colour.COLOUR_LABELS["full"], colour.COLOUR_LABELS["gray"]]


# --- the claim rule --------------------------------------------------------------------------------

SMOKE = colour.profile("smoke")
PASSING_GATE = {"elbo": -300.0, "untrained_elbo": -540.0, "recon_nll": 280.0, "mean_image_nll": 420.0}


def result(colour, kl) -> dict:
    colour, kl = np.asarray(colour, float), np.asarray(kl, float)
    return {"per_image_colour_error": colour, "per_image_kl": kl, "colour_error": colour.mean(), "kl": kl.mean()}


def seeds_of(full_colour, gray_colour, full_kl, gray_kl, images=10):
    """Per seed, the two models' results with the given per-seed means (constant over the images)."""
    return {seed: {"full": result([fc] * images, [fk] * images), "gray": result([gc] * images, [gk] * images)}
            for seed, (fc, gc, fk, gk) in enumerate(zip(full_colour, gray_colour, full_kl, gray_kl))}


def gates_of(per_seed, **overrides):
    return {s: {c: {**PASSING_GATE, **overrides.get(f"{c}{s}", {})} for c in colour.COLOUR_CONTEXTS} for s in per_seed}


FULL_COLOUR = [0.080, 0.075, 0.090, 0.070, 0.085]
FULL_KL = [7.0, 7.5, 6.8, 7.2, 7.9]


def test_colour_claim_over_seeds_on_constructed_numbers():
    gray_colour = [c - 0.04 - 0.002 * i for i, c in enumerate(FULL_COLOUR)]
    gray_kl = [k + 2 + 0.1 * i for i, k in enumerate(FULL_KL)]
    per_seed = seeds_of(FULL_COLOUR, gray_colour, FULL_KL, gray_kl)
    claim = colour.colour_claim(per_seed, SMOKE, gates_of(per_seed))
    assert claim.verdict == "reproduced" and claim.reason is None
    assert claim.ours["p_colour"] == pytest.approx(1 / 32) and claim.ours["p_kl"] == pytest.approx(1 / 32)
    assert claim.ours["images"] == 10 and claim.ours["per_seed"]["0"] == {"colour_gain": 0.04, "kl_gain": 2.0}
    assert "Wilcoxon" in claim.rule and "both" in claim.rule
    assert claim.test["colour"]["replicate"] == "seed pair" and claim.test["kl"]["min_effect"] == colour.KL_MIN_EFFECT
    assert claim.test["colour"]["min_effect"] == colour.COLOUR_MIN_EFFECT and claim.test["colour"]["n"] == 5
    assert claim.gate == {"runs": 10, "passed": 10, "collapsed": 0, "failed": {}}
    assert claim.seeds == [0, 1, 2, 3, 4] and claim.budget["images_per_run"] == SMOKE.steps * SMOKE.batch_size
    assert claim.budget["paper_images_per_run"] == 200_000 * 100
    # Colour kept but less in z: the KL half is reversed, so the claim is not reproduced.
    less_kl = seeds_of(FULL_COLOUR, gray_colour, FULL_KL, [k - 1.5 for k in FULL_KL])
    assert colour.colour_claim(less_kl, SMOKE).verdict == "not reproduced"
    # Worse colours: not reproduced.
    worse = seeds_of(FULL_COLOUR, [c + 0.05 for c in FULL_COLOUR], FULL_KL, gray_kl)
    assert colour.colour_claim(worse, SMOKE).verdict == "not reproduced"
    # Two identical decoders on every seed: gains of 0, significantly below both minimal effects.
    same = colour.colour_claim(seeds_of(FULL_COLOUR, FULL_COLOUR, FULL_KL, FULL_KL), SMOKE)
    assert same.verdict == "not reproduced" and same.test["colour"]["p_below_min_effect"] < 0.05


def test_colour_claim_is_inconclusive_when_a_half_is_not_significant():
    # Four seeds that all lean the claimed way cannot reach p < 0.05 (the smallest p of four is 1/16).
    four = seeds_of(FULL_COLOUR[:4], [c - 0.04 for c in FULL_COLOUR[:4]], FULL_KL[:4], [k + 2 for k in FULL_KL[:4]])
    claim = colour.colour_claim(four, SMOKE)
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert claim.test["colour"]["mean_effect"] > 0 and claim.test["kl"]["mean_effect"] > 0
    assert claim.power["unit"] == "seed pairs"
    # A clear colour half and a KL half that goes both ways: inconclusive, for the KL half's reason.
    mixed = seeds_of(FULL_COLOUR, [c - 0.04 for c in FULL_COLOUR], FULL_KL, [k + d for k, d in
                                                                            zip(FULL_KL, [3, -2.5, 2, -1, 1.5])])
    claim = colour.colour_claim(mixed, SMOKE)
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert claim.test["colour"]["p_claim"] < 0.05 and claim.test["kl"]["p_claim"] >= 0.05


def test_colour_claim_counts_a_seed_only_if_both_its_runs_pass_their_gate():
    per_seed = seeds_of(FULL_COLOUR, [c - 0.04 for c in FULL_COLOUR], FULL_KL, [k + 2 for k in FULL_KL])
    untrained = {"recon_nll": 500.0}       # no better than the renderer's mean image
    claim = colour.colour_claim(per_seed, SMOKE, gates_of(per_seed, gray1=untrained, full3=untrained))
    assert claim.verdict == "inconclusive" and claim.reason == "under-trained"
    assert claim.test["colour"]["n"] == 3 and claim.test["colour"]["dropped_by_gate"] == 2
    assert claim.gate == {"runs": 10, "passed": 8, "collapsed": 0, "failed": {"reconstruction not better than the mean image": 2}}
    # A tiny KL is the measurement, not a gate failure: the gate has no KL check here.
    assert colour.colour_gate({**PASSING_GATE, "kl": 0.01}).passed


def test_colour_claim_needs_the_same_images():
    per_seed = {0: {"full": result([0.1, 0.2], [1, 2]), "gray": result([0.1, 0.2, 0.3], [1, 2, 3])}}
    with pytest.raises(ValueError, match="same images"):
        colour.colour_claim(per_seed, SMOKE)


def test_every_training_seed_trains_both_decoders():
    p = colour.profile("preview")
    assert colour.training_seeds(p, 2000) == [2000, 2001, 2002, 2003, 2004]
    configs = colour.all_colour_configs(p, 2000)
    assert [(c.seed, c.model.context) for c in configs[:2]] == [(2000, "full"), (2000, "gray")]
    assert len(configs) == 10 and len({c.seed for c in configs}) == 5
