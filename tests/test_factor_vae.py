"""FactorVAE (Kim & Mnih 2018): Algorithm 1 (permute_dims), the density-ratio trick, the loss and
Algorithm 2's discriminator step, and training through the one loop (history, checkpoint, resume).

The density-ratio test drives the real ``FactorVAE.loss`` → ``auxiliary_step`` path on a 2-D
Gaussian whose TC and log density ratio are known in closed form, so a swapped label, a wrong
sign in ``log_density_ratio`` or a permutation that keeps the dependence all fail it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dvae_core.data import make_dataset
from dvae_core.models import (Discriminator, FactorVAE, FactorVAEConfig, FactorVAEModelConfig, VAEConfig, gaussian_kl,
                              permute_dims)
from dvae_core.train import CHECKPOINT, load_checkpoint, train
from test_train import params, tiny_config  # tests/ is on sys.path under pytest's default import mode

torch.set_num_threads(1)


def correlated_gaussian(n: int, rho: float, generator: torch.Generator) -> torch.Tensor:
    """n samples of the 2-D standard Gaussian with correlation rho."""
    e = torch.randn(n, 2, generator=generator)
    return torch.stack([e[:, 0], rho * e[:, 0] + math.sqrt(1.0 - rho**2) * e[:, 1]], dim=1)


def analytic_log_ratio(z: torch.Tensor, rho: float) -> torch.Tensor:
    """log q(z) − log q1(z1) − log q2(z2) for that Gaussian (unit marginals)."""
    z1, z2 = z[:, 0], z[:, 1]
    quad = (z1**2 - 2 * rho * z1 * z2 + z2**2) / (2 * (1 - rho**2))
    return -0.5 * math.log(1 - rho**2) - quad + 0.5 * (z1**2 + z2**2)


# ---------------------------------------------------------------- Algorithm 1: permute_dims

def test_permute_dims_keeps_every_marginal_exactly():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 5, generator=g)
    z[:, 2] = torch.randint(0, 3, (500,), generator=g).float()  # ties: the multiset, not just the set
    out = permute_dims(z, generator=g)
    assert out.shape == z.shape
    assert torch.equal(out.sort(dim=0).values, z.sort(dim=0).values)
    assert not torch.equal(out, z)


def test_permute_dims_breaks_dependence():
    g = torch.Generator().manual_seed(1)
    z = correlated_gaussian(20_000, 0.9, g)
    assert torch.corrcoef(z.T)[0, 1] > 0.89
    r = torch.corrcoef(permute_dims(z, generator=g).T)[0, 1].item()
    assert abs(r) < 0.03, f"permuted correlation {r:.4f}: columns were not shuffled independently"


def test_permute_dims_is_deterministic_under_a_seeded_generator():
    z = torch.randn(100, 4)
    a = permute_dims(z, generator=torch.Generator().manual_seed(7))
    b = permute_dims(z, generator=torch.Generator().manual_seed(7))
    c = permute_dims(z, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------- the density-ratio trick

class CodesAreTheInput(nn.Module):
    """Stub encoder: the "images" are 2-D codes, posteriors are (numerically) points."""

    def forward(self, x):
        return x, torch.full_like(x, -30.0)


def train_discriminator_through_algorithm_2(rho: float, seed: int = 0, steps: int = 500, batch: int = 256):
    """A FactorVAE whose encoder passes 2-D Gaussian codes through; D trained only by auxiliary_step."""
    torch.manual_seed(seed)
    config = VAEConfig(latent_dim=2, in_channels=1, resolution=8, encoder_channels=1, decoder_channels=1, hidden=2)
    model = FactorVAE(config, FactorVAEConfig(gamma=1.0, disc_hidden=64, disc_layers=2, disc_lr=1e-3,
                                              disc_betas=(0.9, 0.999)))
    model.encoder, model.decoder = CodesAreTheInput(), nn.Identity()
    optimizer = model.auxiliary_optimizer()
    g = torch.Generator().manual_seed(100 + seed)
    for _ in range(steps):
        model.loss(correlated_gaussian(batch, rho, g))                    # VAE half: records the codes
        model.auxiliary_step(correlated_gaussian(batch, rho, g), optimizer)  # D half: real vs permuted
    return model.discriminator, g


def test_discriminator_learns_the_log_density_ratio_and_the_tc():
    rho = 0.8
    true_tc = -0.5 * math.log(1 - rho**2)  # 0.511 nats
    disc, g = train_discriminator_through_algorithm_2(rho)
    held_out_q = correlated_gaussian(4000, rho, g)
    held_out_perm = permute_dims(correlated_gaussian(4000, rho, g), generator=g)
    with torch.no_grad():
        est_q = disc.log_density_ratio(held_out_q)
        est_perm = disc.log_density_ratio(held_out_perm)
    truth_q = analytic_log_ratio(held_out_q, rho)
    truth = torch.cat([truth_q, analytic_log_ratio(held_out_perm, rho)])
    est = torch.cat([est_q, est_perm])
    corr_q = torch.corrcoef(torch.stack([est_q, truth_q]))[0, 1].item()
    corr_all = torch.corrcoef(torch.stack([est, truth]))[0, 1].item()
    assert corr_q > 0.9 and corr_all > 0.9, (corr_q, corr_all)
    assert (est_q - truth_q).abs().mean() < 0.25 * truth_q.std()
    assert (est - truth).abs().mean() < 0.25 * truth.std()
    tc_estimate = est_q.mean().item()   # E_q[log D/(1−D)], what FactorVAE.loss calls tc
    assert abs(tc_estimate - true_tc) < 0.25 * true_tc, f"D's TC {tc_estimate:.3f} vs analytic {true_tc:.3f}"


def test_discriminator_finds_no_tc_in_independent_codes():
    disc, g = train_discriminator_through_algorithm_2(0.0, steps=300)
    with torch.no_grad():
        tc_estimate = disc.log_density_ratio(correlated_gaussian(4000, 0.0, g)).mean().item()
    assert abs(tc_estimate) < 0.05, tc_estimate


def test_discriminator_shape():
    disc = Discriminator(latent_dim=3, hidden=8, layers=2)
    assert disc(torch.zeros(5, 3)).shape == (5, 2)
    assert disc.log_density_ratio(torch.zeros(5, 3)).shape == (5,)
    assert sum(isinstance(m, nn.Linear) for m in disc.modules()) == 3


# ---------------------------------------------------------------- the loss and Algorithm 2

def tiny_factor_vae(gamma: float = 7.0) -> FactorVAE:
    torch.manual_seed(0)
    config = VAEConfig(decoder="deconv", latent_dim=4, in_channels=1, resolution=32, encoder_channels=4,
                       decoder_channels=4, hidden=16)
    return FactorVAE(config, FactorVAEConfig(gamma=gamma, disc_hidden=16, disc_layers=2, disc_lr=1e-3))


def dsprites_batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    x, _ = make_dataset("dsprites", resolution=32).sample(n, np.random.default_rng(seed))
    return x


def test_loss_is_recon_plus_beta_kl_plus_gamma_tc():
    model, x, beta = tiny_factor_vae(gamma=7.0), dsprites_batch(), 2.5
    torch.manual_seed(5)
    terms = model.loss(x, beta=beta)
    # recompute every term from the public parts, under the same noise
    torch.manual_seed(5)
    mean, logvar = model.encoder(x)
    z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
    recon = model.likelihood.nll(model.decoder(z), x).mean()
    kl = gaussian_kl(mean, logvar).sum(1).mean()
    tc = model.discriminator.log_density_ratio(z).mean()
    for name, value in [("recon", recon), ("kl", kl), ("tc", tc)]:
        torch.testing.assert_close(terms[name], value, msg=name)
    torch.testing.assert_close(terms["loss"], recon + beta * kl + 7.0 * tc)
    torch.testing.assert_close(terms["loss"], terms["recon"] + beta * terms["kl"] + 7.0 * terms["tc"])
    # γ·TC reaches the encoder (the VAE is pushed towards factorised codes)
    grads = torch.autograd.grad(terms["tc"], list(model.encoder.parameters()), allow_unused=True)
    assert any(gr is not None and gr.abs().sum() > 0 for gr in grads)


def test_vae_parameters_exclude_the_discriminator():
    model = tiny_factor_vae()
    vae = {id(p) for p in model.vae_parameters()}
    disc = {id(p) for p in model.discriminator.parameters()}
    assert vae and disc and not vae & disc
    assert vae | disc == {id(p) for p in model.parameters()}
    aux = {id(p) for group in model.auxiliary_optimizer().param_groups for p in group["params"]}
    assert aux == disc


def test_auxiliary_step_needs_a_preceding_loss_call():
    model = tiny_factor_vae()
    with pytest.raises(RuntimeError, match="preceding loss"):
        model.auxiliary_step(dsprites_batch(), model.auxiliary_optimizer())


def test_auxiliary_step_trains_only_the_discriminator():
    model = tiny_factor_vae()
    optimizer = model.auxiliary_optimizer()
    model.loss(dsprites_batch(seed=0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model.auxiliary_step(dsprites_batch(seed=1), optimizer)
    after = model.state_dict()
    assert set(out) == {"disc_loss", "disc_accuracy"}
    assert out["disc_loss"] > 0 and 0.0 <= out["disc_accuracy"] <= 1.0
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("discriminator.") for k in changed), changed
    assert all(p.grad is None for p in model.vae_parameters()), "the discriminator's loss reached the VAE"


# ---------------------------------------------------------------- through train()

def factor_config(**overrides):
    factor = overrides.pop("factor", FactorVAEConfig(gamma=5.0, disc_hidden=16, disc_layers=2, disc_lr=1e-3))
    return tiny_config(model=FactorVAEModelConfig.of(tiny_config().model, factor), **overrides)


def test_train_logs_tc_and_discriminator_terms(tmp_path):
    result = train(factor_config(), tmp_path, device="cpu", progress=False)
    model = result["model"]
    assert isinstance(model, FactorVAE)
    assert [row["step"] for row in result["history"]] == [4, 8, 12]
    for row in result["history"]:
        for key in ("loss", "recon", "kl", "tc", "disc_loss", "disc_accuracy"):
            assert math.isfinite(row[key]), (key, row)
        assert 0.0 <= row["disc_accuracy"] <= 1.0
    state = load_checkpoint(tmp_path / CHECKPOINT)
    # the optimisers train.py built: the VAE one without D, D's own with its Adam state
    assert len(state["optimizer"]["param_groups"][0]["params"]) == len(list(model.vae_parameters()))
    n_disc = len(list(model.discriminator.parameters()))
    assert len(state["auxiliary_optimizer"]["param_groups"][0]["params"]) == n_disc
    assert len(state["auxiliary_optimizer"]["state"]) == n_disc


def test_vae_optimizer_never_moves_the_discriminator(tmp_path):
    frozen = FactorVAEConfig(gamma=5.0, disc_hidden=16, disc_layers=2, disc_lr=0.0)  # D's own optimiser is a no-op
    initial = train(factor_config(factor=frozen, steps=0), tmp_path / "init", device="cpu", progress=False)["model"]
    trained = train(factor_config(factor=frozen), tmp_path / "run", device="cpu", progress=False)["model"]
    assert torch.equal(params(initial.discriminator), params(trained.discriminator))
    assert not torch.equal(params(initial.encoder), params(trained.encoder))


def test_factor_vae_resume_matches_uninterrupted_run(tmp_path):
    full = train(factor_config(), tmp_path / "full", device="cpu", progress=False)
    interrupted = tmp_path / "interrupted"
    train(factor_config(steps=5), interrupted, device="cpu", progress=False)
    state = torch.load(interrupted / CHECKPOINT, weights_only=True)
    assert state["auxiliary_optimizer"]["state"], "D's Adam moments were not checkpointed"
    state["config"] = factor_config().to_dict()  # the prefix run is the full run stopped at step 5
    torch.save(state, interrupted / CHECKPOINT)
    resumed = train(factor_config(), interrupted, device="cpu", progress=False)
    assert torch.equal(params(full["model"]), params(resumed["model"]))  # discriminator included
    assert load_checkpoint(interrupted / CHECKPOINT)["step"] == 12
    assert [r["tc"] for r in resumed["history"]][-1] == [r["tc"] for r in full["history"]][-1]


def test_gamma_warmup_rises_linearly_to_gamma_then_stays():
    config = VAEConfig(decoder="deconv", latent_dim=4, in_channels=1, resolution=32, encoder_channels=4,
                       decoder_channels=4, hidden=16)
    model = FactorVAE(config, FactorVAEConfig(gamma=8.0, disc_hidden=16, disc_layers=2, gamma_warmup=4))
    seen = []
    for steps_done in (0, 1, 2, 4, 9):
        model.set_step(steps_done)
        seen.append(model.gamma)
    assert seen == [0.0, 2.0, 4.0, 8.0, 8.0]
    model.set_step(0)
    x = dsprites_batch()
    torch.manual_seed(5)
    terms = model.loss(x)
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])  # γ·TC is off at step 0
    assert tiny_factor_vae(gamma=7.0).gamma == 7.0  # no warm-up: the paper's constant γ


def test_gamma_warmup_is_left_out_of_the_recipe_unless_set():
    """An optional model field set to None leaves the recipe, so adding it renames no stored run."""
    plain = factor_config()
    assert "gamma_warmup" not in plain.to_dict()["model"]
    warmed = factor_config(factor=FactorVAEConfig(gamma=5.0, disc_hidden=16, disc_layers=2, disc_lr=1e-3,
                                                  gamma_warmup=6))
    assert warmed.to_dict()["model"]["gamma_warmup"] == 6
    assert type(warmed).from_dict(warmed.to_dict()) == warmed


def test_gamma_warmup_run_resumes_like_an_uninterrupted_one(tmp_path):
    factor = FactorVAEConfig(gamma=5.0, disc_hidden=16, disc_layers=2, disc_lr=1e-3, gamma_warmup=8)
    full = train(factor_config(factor=factor), tmp_path / "full", device="cpu", progress=False)
    interrupted = tmp_path / "interrupted"
    train(factor_config(factor=factor, steps=5), interrupted, device="cpu", progress=False)
    state = torch.load(interrupted / CHECKPOINT, weights_only=True)
    state["config"] = factor_config(factor=factor).to_dict()
    torch.save(state, interrupted / CHECKPOINT)
    resumed = train(factor_config(factor=factor), interrupted, device="cpu", progress=False)
    assert torch.equal(params(full["model"]), params(resumed["model"]))
    no_warmup = train(factor_config(), tmp_path / "plain", device="cpu", progress=False)
    assert not torch.equal(params(full["model"]), params(no_warmup["model"]))  # the warm-up reached the loss
