"""The VLAE chapter's models: PixelCNN causality and receptive fields, MADE, the flows, the VLAE."""

import json
import math
from dataclasses import asdict, fields

import pytest
import torch
from torch.autograd.functional import jacobian

from dvae_core.models.flows import AutoregressiveFlowPrior, IAFPosterior, standard_normal_log_prob
from dvae_core.models.likelihoods import Bernoulli
from dvae_core.models.made import MADE
from dvae_core.models.pixelcnn import (PixelCNN, PixelCNNConfig, receptive_field, receptive_field_offsets,
                                       receptive_field_size)
from dvae_core.models.vlae import VLAE, VLAEConfig



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one thread skips OpenMP's overhead (and a shared CPU's contention)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def randomize(module: torch.nn.Module, std: float = 0.5, seed: int = 0) -> torch.nn.Module:
    """Dense random weights everywhere (the flows start at zero or near the identity, which would
    make their Jacobians trivially diagonal)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * std)
    return module


# --- PixelCNN ------------------------------------------------------------------------------------

def pixel_dependencies(net: PixelCNN, shape, context=None) -> torch.Tensor:
    """(H·W outputs, H·W inputs) bool: which input pixels have a nonzero gradient on which logit."""
    height, width = shape
    x = torch.rand(1, 1, height, width, generator=torch.Generator().manual_seed(1))
    jac = jacobian(lambda image: net(image, context), x)    # (1, 1, H, W, 1, 1, H, W)
    return jac.reshape(height * width, height * width) != 0


def analytic_dependencies(config: PixelCNNConfig, shape) -> torch.Tensor:
    height, width = shape
    expected = torch.zeros(height * width, height * width, dtype=torch.bool)
    for row in range(height):
        for col in range(width):
            for r, c in receptive_field(config, (row, col), shape):
                expected[row * width + col, r * width + c] = True
    return expected


@pytest.mark.parametrize("config", [
    PixelCNNConfig(layers=3, channels=4, kernel=3),
    PixelCNNConfig(layers=2, channels=4, kernel=5),
    PixelCNNConfig(layers=3, channels=4, window=(4, 2)),
    PixelCNNConfig(layers=2, channels=4, window=(7, 4)),
], ids=["stacked-3x3", "stacked-5x5", "window-4x2", "window-7x4"])
@pytest.mark.parametrize("conditioned", [False, True])
def test_pixelcnn_gradients_match_the_analytic_receptive_field_exactly(config, conditioned):
    torch.manual_seed(0)
    shape = (7, 9)  # not square, so a transposed index would show
    net = PixelCNN(config, in_channels=1, context_channels=3 if conditioned else 0)
    context = torch.randn(1, 3, *shape) if conditioned else None
    empirical = pixel_dependencies(net, shape, context)
    # Causal: logit i never depends on pixels i, i+1, … in raster order.
    assert not torch.triu(empirical).any()
    # The dependency set equals the analytic one, for every output pixel including the borders.
    assert torch.equal(empirical, analytic_dependencies(config, shape))
    assert empirical.any()


def test_pixelcnn_output_depends_on_the_context():
    torch.manual_seed(0)
    net = PixelCNN(PixelCNNConfig(layers=2, channels=4), context_channels=2)
    context = torch.randn(1, 2, 5, 5, requires_grad=True)
    net(torch.zeros(1, 1, 5, 5), context)[0, 0, 0, 0].backward()
    assert context.grad.abs().sum() > 0  # the first pixel has no image context, only c


@pytest.mark.parametrize("layers", range(1, 7))
def test_stacked_receptive_field_size_matches_the_hand_count(layers):
    # L masked 3×3 layers: the L pixels to the left on the pixel's row, and on the r-th row above
    # columns −L … +r (the blind spot cuts off the upper right), so L + Σ_r (L + r + 1).
    expected = layers + sum(layers + r + 1 for r in range(1, layers + 1))
    assert receptive_field_size(PixelCNNConfig(layers=layers, kernel=3)) == expected


@pytest.mark.parametrize("window, size", [((4, 2), 10), ((5, 3), 17), ((7, 4), 31)])
def test_window_receptive_field_is_the_block_above_plus_pixels_to_the_left(window, size):
    a, b = window
    left = math.ceil((a - 1) / 2)
    config = PixelCNNConfig(layers=4, window=window)
    offsets = receptive_field_offsets(config)
    block = {(-dr, dc) for dr in range(1, b + 1) for dc in range(-left, a - left)}
    same_row = {(0, -dc) for dc in range(1, left + 1)}
    assert offsets == block | same_row
    assert receptive_field_size(config) == size == a * b + left


def test_receptive_field_of_an_interior_pixel_is_the_shifted_offsets():
    config = PixelCNNConfig(layers=6, kernel=3)
    field = receptive_field(config, (14, 14), (28, 28))
    assert field == {(14 + dr, 14 + dc) for dr, dc in receptive_field_offsets(config)}
    assert receptive_field(config, (0, 0), (28, 28)) == set()


def test_pixelcnn_config_rejects_even_kernels_and_bad_windows():
    with pytest.raises(ValueError, match="odd kernel"):
        PixelCNNConfig(kernel=4)
    with pytest.raises(ValueError, match="window"):
        PixelCNNConfig(window=(3,))


def test_pixelcnn_is_normalised_and_its_sampler_draws_from_it():
    # On a 2×3 image all 64 binary images can be listed: an autoregressive model's probabilities
    # sum to 1, and raster-order sampling must reproduce them (a sampler visiting pixels in the
    # wrong order, or reading unsampled ones, is off by a total variation of ≈ 0.15 here).
    torch.manual_seed(0)
    net = randomize(PixelCNN(PixelCNNConfig(layers=3, channels=8, kernel=3)), std=0.7)
    height, width = 2, 3
    bits = height * width
    images = ((torch.arange(2 ** bits)[:, None] >> torch.arange(bits)) & 1).float().view(-1, 1, height, width)
    with torch.no_grad():
        exact = (-Bernoulli().nll(net(images), images)).exp()
    assert torch.isclose(exact.sum(), torch.tensor(1.0), atol=1e-5)
    samples = net.sample(10_000, (height, width), generator=torch.Generator().manual_seed(0))
    assert samples.shape == (10_000, 1, height, width)
    codes = (samples.view(-1, bits) * 2 ** torch.arange(bits)).sum(1).long()
    frequencies = torch.bincount(codes, minlength=2 ** bits) / len(codes)
    assert 0.5 * (frequencies - exact).abs().sum() < 0.04


# --- MADE ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("context_features", [0, 3])
def test_made_jacobian_is_strictly_lower_triangular(context_features):
    torch.manual_seed(0)
    dim = 6
    made = MADE(dim, hidden_sizes=(16, 16), outputs_per_dim=2, context_features=context_features)
    context = torch.randn(1, 3) if context_features else None
    jac = jacobian(lambda x: made(x, context)[0], torch.randn(1, dim))[:, :, 0]   # (2, dim, dim)
    strictly_lower = torch.ones(dim, dim).tril(-1).bool()
    for block in jac:
        # Exactly the allowed connections: zero on and above the diagonal, nonzero below it.
        assert torch.equal(block != 0, strictly_lower)


def test_made_context_reaches_every_output():
    torch.manual_seed(0)
    made = MADE(4, hidden_sizes=(8,), outputs_per_dim=1, context_features=3)
    jac = jacobian(lambda h: made(torch.zeros(1, 4), h)[0, 0], torch.randn(1, 3))[:, 0]  # (4, 3)
    assert (jac.abs().sum(1) > 0).all()
    with pytest.raises(ValueError, match="context"):
        made(torch.zeros(1, 4))


# --- flows -----------------------------------------------------------------------------------------

def test_iaf_log_det_matches_autograd():
    dim = 5
    iaf = randomize(IAFPosterior(dim, context_features=3, steps=3, hidden=16, hidden_layers=2))
    z0, context = torch.randn(1, dim), torch.randn(1, 3)
    _, log_det = iaf(z0, context)
    jac = jacobian(lambda z: iaf(z, context)[0][0], z0)[:, 0]
    sign, log_abs_det = torch.linalg.slogdet(jac)
    assert sign > 0
    assert torch.isclose(log_det[0], log_abs_det, atol=1e-4)
    # Each step is triangular; reversing the order between steps makes the whole map dense.
    assert (jac.triu(1) != 0).any() and (jac.tril(-1) != 0).any()


def test_af_prior_sampling_and_density_agree():
    prior = randomize(AutoregressiveFlowPrior(dim=5, steps=3, hidden=16, hidden_layers=2), std=0.3)
    z, log_prob_along_path = prior.sample_with_log_prob(32, torch.Generator().manual_seed(0))
    assert torch.allclose(prior.log_prob(z), log_prob_along_path, atol=1e-4)
    eps = torch.randn(8, 5)
    assert torch.allclose(prior.inverse(prior.transform(eps)), eps, atol=1e-5)
    assert not torch.allclose(prior.transform(eps), eps, atol=1e-2)   # the flow does move the noise


def test_af_prior_is_volume_preserving():
    # Why log p(z) needs no log-det term: ∂z/∂ε is unit-triangular (up to the order reversals).
    prior = randomize(AutoregressiveFlowPrior(dim=4, steps=2, hidden=16, hidden_layers=2), std=0.3)
    jac = jacobian(lambda eps: prior.transform(eps)[0], torch.randn(1, 4))[:, 0]
    assert torch.isclose(torch.linalg.slogdet(jac).logabsdet, torch.tensor(0.0), atol=1e-4)
    assert (jac.triu(1) != 0).any() and (jac.tril(-1) != 0).any()   # the order reverses between steps


def test_af_prior_density_integrates_to_one():
    prior = randomize(AutoregressiveFlowPrior(dim=2, steps=2, hidden=16, hidden_layers=2), std=0.3)
    grid = torch.linspace(-10, 10, 401)
    points = torch.cartesian_prod(grid, grid)
    cell = (grid[1] - grid[0]) ** 2
    with torch.no_grad():
        assert torch.isclose(prior.log_prob(points).exp().sum() * cell, torch.tensor(1.0), atol=1e-3)


def test_af_prior_with_zero_made_is_the_standard_normal():
    prior = AutoregressiveFlowPrior(dim=6, steps=2, hidden=8)
    z = torch.randn(10, 6)
    # As built (zero output layers) and with every parameter zero, μ = 0 and p = N(0, I).
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert torch.allclose(prior.log_prob(z), expected, atol=1e-5)
    with torch.no_grad():
        for p in prior.parameters():
            p.zero_()
    assert torch.allclose(prior.log_prob(z), expected, atol=1e-5)
    assert torch.allclose(standard_normal_log_prob(z), expected, atol=1e-5)


# --- VLAE ------------------------------------------------------------------------------------------

def tiny(**overrides) -> VLAEConfig:
    settings = dict(latent_dim=4, encoder_channels=4, decoder_channels=4, hidden=16, pixelcnn_layers=2,
                    pixelcnn_channels=4, flow_steps=2, flow_hidden=16)
    return VLAEConfig(**{**settings, **overrides})


def binary_batch(n: int = 3, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


COMBINATIONS = [dict(decoder=d, prior=p, posterior=q) for d in ("pixelcnn", "factorized")
                for p in ("gaussian", "af") for q in ("gaussian", "iaf")] + [dict(unconditional=True)]


def combination_id(options: dict) -> str:
    return "unconditional" if options.get("unconditional") else "-".join(options.values())


@pytest.mark.parametrize("options", COMBINATIONS, ids=combination_id)
def test_vlae_loss_terms_are_finite_and_trainable(options):
    torch.manual_seed(0)
    model = VLAE(tiny(**options))
    x = binary_batch()
    terms = model.loss(x, beta=1.0)
    assert set(terms) == {"loss", "recon", "kl"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    assert terms["recon"] > 0
    terms["loss"].backward()
    grads = [p.grad for p in model.vae_parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    log_w = model.log_importance_weights(x, k=5)
    assert log_w.shape == (5, 3) and torch.isfinite(log_w).all()
    assert model.auxiliary_optimizer() is None


def test_kl_is_log_q_minus_log_p_at_the_sampled_code():
    torch.manual_seed(0)
    model = VLAE(tiny(decoder="factorized", prior="gaussian", posterior="gaussian"))
    x = binary_batch(4)
    torch.manual_seed(5)
    z = model.sample_posterior(x)
    torch.manual_seed(5)                                   # the same ε again
    terms = model.loss(x)
    mean, logvar = model.encode(x)
    log_q = torch.distributions.Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert torch.isclose(terms["kl"], (log_q - log_p).mean(), atol=1e-5)
    recon = torch.nn.functional.binary_cross_entropy(model.decode_mean(z), x, reduction="sum") / 4
    assert torch.isclose(terms["recon"], recon, atol=1e-3)


def test_iaf_posterior_density_is_the_change_of_variables():
    torch.manual_seed(0)
    model = VLAE(tiny(decoder="factorized", posterior="iaf"))
    randomize(model.iaf, std=0.3)
    x = binary_batch(2)
    torch.manual_seed(3)
    z, log_q = model.sample_posterior_with_log_q(x)
    torch.manual_seed(3)
    mean, logvar = model.encode(x)
    z0 = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
    context = model.encoder(x)
    for i in range(2):
        flow = lambda v: model.iaf(v, context[i:i + 1])[0][0]
        assert torch.allclose(flow(z0[i:i + 1]), z[i], atol=1e-5)
        log_det = torch.linalg.slogdet(jacobian(flow, z0[i:i + 1])[:, 0]).logabsdet
        log_q0 = torch.distributions.Normal(mean[i], (0.5 * logvar[i]).exp()).log_prob(z0[i]).sum()
        assert torch.isclose(log_q[i], log_q0 - log_det, atol=1e-4)


@pytest.mark.parametrize("options", COMBINATIONS, ids=combination_id)
def test_one_importance_weight_is_minus_the_elbo_of_the_loss(options):
    torch.manual_seed(0)
    model = VLAE(tiny(free_bits=0.0, **options))
    x = binary_batch()
    torch.manual_seed(7)
    terms = model.loss(x)
    torch.manual_seed(7)
    log_w = model.log_importance_weights(x, k=1)
    assert torch.isclose(-log_w.mean(), terms["recon"] + terms["kl"], atol=1e-3)


def test_importance_weights_are_laid_out_sample_by_image():
    torch.manual_seed(0)
    model = VLAE(tiny(posterior="iaf"))
    with torch.no_grad():                      # a posterior of (almost) zero variance: z = f(mean)
        model.posterior_head.weight[4:] = 0
        model.posterior_head.bias[4:] = -30

    def log_joint(x, k):                       # log p(x, z_s) = log w_s + log q(z_s | x), (k, n)
        torch.manual_seed(1)
        log_w = model.log_importance_weights(x, k)
        torch.manual_seed(1)
        return log_w + model.sample_posterior_with_log_q(x, k)[1].view(k, -1)

    x = binary_batch(3)
    joint = log_joint(x, 4)
    assert torch.allclose(joint, joint[0].expand(4, -1), atol=1e-2)     # z_s ≈ f(mean) for every s
    for i in range(3):
        assert torch.isclose(joint[0, i], log_joint(x[i:i + 1], 1)[0, 0], atol=1e-2)
    assert not torch.isclose(joint[0, 0], joint[0, 1], atol=1e-2)


def test_unconditional_pixelcnn_has_no_kl_and_exact_weights():
    torch.manual_seed(0)
    model = VLAE(tiny(unconditional=True))
    x = binary_batch()
    terms = model.loss(x)
    assert terms["kl"] == 0 and torch.equal(terms["loss"], terms["recon"])
    log_w = model.log_importance_weights(x, k=4)
    assert torch.allclose(log_w, log_w[0].expand(4, -1))      # no latent: every weight is p(x)
    assert model.sample_prior(2).shape == (2, 0)


def test_free_bits_floor_the_kl_in_the_loss_only():
    torch.manual_seed(0)
    x = binary_batch()
    floor_per_dim = 1.0                                          # 784 nats: far above this KL
    model = VLAE(tiny(free_bits=floor_per_dim))
    torch.manual_seed(1)
    terms = model.loss(x, beta=2.0)
    assert terms["kl"] < floor_per_dim * 784
    assert torch.isclose(terms["loss"] - terms["recon"], torch.tensor(2.0 * 784))
    model = VLAE(tiny(free_bits=0.0))
    torch.manual_seed(1)
    terms = model.loss(x, beta=2.0)
    assert torch.isclose(terms["loss"], terms["recon"] + 2.0 * terms["kl"])
    for seed in range(3):                                      # the paper's 0.01: a 7.84-nat floor
        torch.manual_seed(seed)
        terms = VLAE(tiny()).loss(x, beta=0.5)
        assert (terms["loss"] - terms["recon"]) / 0.5 >= 0.01 * 784 - 1e-4


@pytest.mark.parametrize("options", [dict(decoder="pixelcnn", prior="af"), dict(decoder="factorized"),
                                     dict(unconditional=True)], ids=["pixelcnn", "factorized", "unconditional"])
def test_decode_sample_gives_binary_images_and_is_seeded(options):
    torch.manual_seed(0)
    model = VLAE(tiny(**options))
    z = model.sample_prior(2, torch.Generator().manual_seed(0))
    first = model.decode_sample(z, torch.Generator().manual_seed(3))
    assert first.shape == (2, 1, 28, 28)
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(first, model.decode_sample(z, torch.Generator().manual_seed(3)))


def test_sampling_and_encoding_shapes():
    torch.manual_seed(0)
    model = VLAE(tiny(decoder="factorized", prior="af", posterior="iaf"))
    x = binary_batch(5)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (5, 4)
    assert model.sample_posterior(x).shape == (5, 4)
    z = model.sample_prior(6, torch.Generator().manual_seed(0))
    assert torch.equal(z, model.sample_prior(6, torch.Generator().manual_seed(0)))
    probs = model.decode_mean(z)
    assert probs.shape == (6, 1, 28, 28) and ((probs >= 0) & (probs <= 1)).all()
    with pytest.raises(ValueError, match="decode_sample"):
        VLAE(tiny()).decode_mean(z)


def test_vlae_is_deterministic_under_a_seed():
    def run():
        torch.manual_seed(0)
        model = VLAE(tiny(posterior="iaf"))
        return model.loss(binary_batch())
    a, b = run(), run()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_config_round_trips_through_json_and_validates():
    config = tiny(pixelcnn_window=(4, 2), posterior="iaf")
    assert fields(VLAEConfig)[0].name == "kind" and config.kind == "vlae"
    loaded = json.loads(json.dumps(asdict(config)))
    assert VLAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in loaded.items()}) == config
    assert VLAE(config).pixelcnn.config.window == (4, 2)
    with pytest.raises(ValueError, match="unknown decoder"):
        VLAEConfig(decoder="deconv")
    with pytest.raises(ValueError, match="unconditional"):
        VLAEConfig(decoder="factorized", unconditional=True)
