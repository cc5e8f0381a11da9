"""InfoWGAN-GP (Kim & Mnih 2018's GAN baseline): the gradient penalty against closed forms and autograd,
which optimiser moves which network, Q learning a code the generator carries, the metrics' ``encode``
view, and training through the one loop (checkpoint, resume, config round trip)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from dvae_core.evaluate import encode_means
from dvae_core.models.info_wgan import InfoWGAN, InfoWGANConfig, gradient_penalty, info_nll
from dvae_core.train import CHECKPOINT, TrainConfig, build_model, load_checkpoint, train
from test_train import train_interrupted  # tests/ is on sys.path under pytest's default import mode

torch.set_num_threads(1)


def tiny(**overrides) -> InfoWGANConfig:
    return InfoWGANConfig(**{**dict(in_channels=1, resolution=8, channels=4, hidden=16, code_dim=3), **overrides})


def flat(params) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in params])


def loop_config(**overrides) -> TrainConfig:
    base = dict(dataset="dsprites", dataset_kwargs={"resolution": 32},
                model=InfoWGANConfig(in_channels=1, resolution=32, channels=8, hidden=32), steps=4, batch_size=8,
                checkpoint_every=2, log_every=2, lr=1e-4, seed=5)
    base.update(overrides)
    return TrainConfig(**base)


# ------------------------------------------------------------------------------------------ shapes


def test_shapes_and_ranges():
    model = InfoWGAN(tiny(noise_dim=2))
    x = torch.rand(5, 1, 8, 8)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (5, 3) and torch.equal(logvar, torch.zeros(5, 3))
    images = model.sample(6, torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 8, 8) and images.min() >= 0.0 and images.max() <= 1.0
    assert model.decode(torch.zeros(4, 3)).shape == (4, 1, 8, 8)          # codes alone: noise at its mean
    assert torch.equal(model.decode(torch.zeros(4, 3)), model.decode(torch.zeros(4, 5)))
    codes, latent = model.sample_latent(1000, torch.Generator().manual_seed(1))
    assert latent.shape == (1000, 5) and torch.equal(latent[:, :3], codes)
    assert codes.min() >= -1.0 and codes.max() <= 1.0 and abs(codes.var().item() - 1 / 3) < 0.03  # U(-1, 1)
    gaussian, _ = InfoWGAN(tiny(code_prior="gaussian")).sample_latent(1000, torch.Generator().manual_seed(1))
    assert gaussian.abs().max() > 1.5 and abs(gaussian.var().item() - 1.0) < 0.1
    terms = model.loss(x)
    assert set(terms) == {"loss", "gen", "info"} and all(t.dim() == 0 for t in terms.values())
    assert torch.allclose(terms["loss"], terms["gen"] + terms["info"])
    with pytest.raises(ValueError, match="code prior"):
        tiny(code_prior="laplace")


def test_encode_means_reads_q():
    model = InfoWGAN(tiny())
    images = torch.rand(7, 1, 8, 8)
    means = encode_means(model, images, batch_size=3)
    assert means.shape == (7, 3)
    assert torch.allclose(torch.from_numpy(means).float(), model.critic(images)[1].detach(), atol=1e-6)


# ---------------------------------------------------------------------------- the gradient penalty


def test_gradient_penalty_is_zero_for_a_unit_lipschitz_linear_critic_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(6, 1, 4, 4, generator=g), torch.rand(6, 1, 4, 4, generator=g)
    w = torch.randn(16, generator=g)
    w = w / w.norm()
    unit = lambda x: x.flatten(1) @ w  # noqa: E731  ‖∇D‖ = 1 everywhere
    assert gradient_penalty(unit, real, fake).item() < 1e-10
    steep = lambda x: x.flatten(1) @ (3.0 * w)  # noqa: E731  ‖∇D‖ = 3: penalty (3 − 1)² = 4
    assert gradient_penalty(steep, real, fake).item() == pytest.approx(4.0, rel=1e-5)
    flat_critic = lambda x: 0.0 * x.flatten(1).sum(1) + 1.0  # noqa: E731  ‖∇D‖ = 0: penalty 1
    assert gradient_penalty(flat_critic, real, fake).item() == pytest.approx(1.0)


def test_gradient_penalty_matches_a_hand_computation_and_is_trainable():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    critic = lambda x: net(x).squeeze(1)  # noqa: E731
    real, fake, eps = torch.rand(5, 1, 2, 2), torch.rand(5, 1, 2, 2), torch.rand(5)
    gp = gradient_penalty(critic, real, fake, eps)
    # by hand: the critic's input gradient is W1ᵀ diag(1 − tanh²(W1 x̂ + b1)) w2 for each interpolate
    w1, b1, w2 = net[1].weight, net[1].bias, net[3].weight[0]
    mixed = eps[:, None] * real.flatten(1) + (1 - eps[:, None]) * fake.flatten(1)
    grads = ((1 - torch.tanh(mixed @ w1.T + b1) ** 2) * w2) @ w1
    expected = ((grads.norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)
    gp.backward()  # create_graph: the penalty's own gradient reaches the critic's weights
    assert net[1].weight.grad is not None and net[1].weight.grad.abs().sum() > 0


def test_critic_step_uses_the_same_penalty_as_separate_passes():
    """The one-pass critic update (real, fake and interpolates concatenated) reports the penalty and the
    Wasserstein estimate that three separate passes give for the same draws."""
    model = InfoWGAN(tiny(critic_steps=1))
    x = torch.rand(6, 1, 8, 8)
    frozen_opt = torch.optim.SGD(model.critic.parameters(), lr=0.0)
    torch.manual_seed(11)
    terms = model.auxiliary_step(x, frozen_opt)
    torch.manual_seed(11)  # replay the step's draws: codes, then ε
    codes, latent = model.sample_latent(6)
    fake = model.decode(latent).detach()
    eps = torch.rand(6)
    gp = gradient_penalty(lambda v: model.critic(v)[0], x, fake, eps)
    w = model.critic(x)[0].mean() - model.critic(fake)[0].mean()
    assert terms["gp"].item() == pytest.approx(gp.item(), rel=1e-5)
    assert terms["wasserstein"].item() == pytest.approx(w.item(), rel=1e-5, abs=1e-7)
    assert terms["critic_loss"].item() == pytest.approx((-w + 10.0 * gp).item(), rel=1e-5, abs=1e-6)
    assert terms["q_info"].item() == pytest.approx(info_nll(model.critic(fake)[1], codes).item(), rel=1e-5)


# ------------------------------------------------------------------- which optimiser moves what


def test_critic_step_moves_only_the_critic_and_q():
    model = InfoWGAN(tiny())
    optimizer = model.auxiliary_optimizer()
    gen_before, critic_before = flat(model.generator.parameters()), flat(model.critic.parameters())
    q_before = flat(model.critic.q_head.parameters())
    terms = model.auxiliary_step(torch.rand(8, 1, 8, 8), optimizer)
    assert set(terms) == {"critic_loss", "wasserstein", "gp", "q_info"}
    assert all(t.dim() == 0 and not t.requires_grad and math.isfinite(t.item()) for t in terms.values())
    assert torch.equal(gen_before, flat(model.generator.parameters()))
    assert not torch.equal(critic_before, flat(model.critic.parameters()))
    assert not torch.equal(q_before, flat(model.critic.q_head.parameters()))  # Q trains with the critic
    assert all(p.requires_grad for p in model.parameters())
    # the optimiser the loop builds for the critic holds exactly the critic (its trunk, score and Q head)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in model.critic.parameters()}
    assert optimizer.defaults["lr"] == 1e-4 and optimizer.defaults["betas"] == (0.5, 0.9)


def test_generator_loss_reaches_the_generator_only():
    model = InfoWGAN(tiny())
    model.loss(torch.rand(8, 1, 8, 8))["loss"].backward()
    assert all(p.grad is not None for p in model.generator.parameters())
    assert flat(p.grad for p in model.generator.parameters()).abs().sum() > 0
    assert all(p.grad is None for p in model.critic.parameters())  # critic frozen during G's step
    assert all(p.requires_grad for p in model.critic.parameters())  # and unfrozen after it
    assert {id(p) for p in model.vae_parameters()} == {id(p) for p in model.generator.parameters()}
    # the info term alone drives G too (the MI bound is maximised by G as well as Q)
    model.zero_grad(set_to_none=True)
    model.loss(torch.rand(8, 1, 8, 8))["info"].backward()
    assert flat(p.grad for p in model.generator.parameters()).abs().sum() > 0


# ------------------------------------------------------------------------- Q learns a carried code


class LinearCodeGenerator(nn.Module):
    """A fixed 'generator' whose image is an affine function of c (logits chosen so sigmoid undoes them)."""

    def __init__(self, code_dim: int, pixels: int):
        super().__init__()
        self.register_buffer("mix", torch.randn(code_dim, pixels, generator=torch.Generator().manual_seed(3)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        image = (0.5 + 0.1 * z @ self.mix).clamp(0.01, 0.99)
        return torch.logit(image).view(len(z), 1, 8, 8)


def held_out_info(model: InfoWGAN) -> float:
    codes, latent = model.sample_latent(256, torch.Generator().manual_seed(99))
    with torch.no_grad():
        return info_nll(model.encode(model.decode(latent))[0], codes).item()


@pytest.mark.parametrize("info_weight", [1.0, 0.0])
def test_critic_step_trains_q_to_recover_a_code_the_generator_carries(info_weight):
    torch.manual_seed(0)
    model = InfoWGAN(tiny(critic_steps=1, critic_lr=2e-3, info_weight=info_weight))
    model.generator = LinearCodeGenerator(3, 64)
    optimizer = model.auxiliary_optimizer()
    before = held_out_info(model)
    for _ in range(150):
        model.auxiliary_step(torch.rand(32, 1, 8, 8), optimizer)
    after = held_out_info(model)
    if info_weight:
        # prior variance 1/3 per dim: predicting 0 scores ½·3·⅓ = 0.5; Q must do far better than that
        assert after < 0.25 * min(before, 0.5), (before, after)
    else:  # without the info term nothing trains Q's head towards c
        assert after > 0.3, (before, after)


# ------------------------------------------------------------------------------- the training loop


def test_config_round_trips_through_the_run_recipe():
    config = loop_config(model=InfoWGANConfig(in_channels=1, resolution=32, channels=8, hidden=32, noise_dim=2,
                                              critic_betas=(0.0, 0.9)))
    assert TrainConfig.from_dict(config.to_dict()) == config
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))  # JSON turns tuples into lists
    assert again == config and again.model.critic_betas == (0.0, 0.9)
    assert isinstance(build_model(again), InfoWGAN)


def test_trains_through_the_loop_and_resumes_deterministically(tmp_path):
    full = train(loop_config(), tmp_path / "full", device="cpu", progress=False)
    model = full["model"]
    assert isinstance(model, InfoWGAN)
    assert [row["step"] for row in full["history"]] == [2, 4]
    for row in full["history"]:
        for key in ("loss", "gen", "info", "critic_loss", "wasserstein", "gp", "q_info"):
            assert math.isfinite(row[key]), (key, row)
    state = load_checkpoint(tmp_path / "full" / CHECKPOINT)
    assert len(state["optimizer"]["param_groups"][0]["params"]) == len(list(model.generator.parameters()))
    assert len(state["auxiliary_optimizer"]["state"]) == len(list(model.critic.parameters()))

    interrupted = tmp_path / "interrupted"
    resumed = train_interrupted(loop_config(), 2, interrupted)
    assert torch.equal(flat(full["model"].parameters()), flat(resumed["model"].parameters()))  # critic included
    assert resumed["history"][-1]["wasserstein"] == full["history"][-1]["wasserstein"]
    assert load_checkpoint(interrupted / CHECKPOINT)["step"] == 4
