"""The RAE chapter's models (dvae_core.models.rae), image sets, and their place in the training loop."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from dvae_core.data import make_dataset
from dvae_core.data.image_sets import ImageSet, mnist_files, pad_images
from dvae_core.papers import rae as rae_exp
from dvae_core.models.rae import DETERMINISTIC, VARIANTS, RAEConfig, RegularizedAE, imq_mmd
from dvae_core.runs import config_hash, get_or_train
from dvae_core.train import TrainConfig, build_model

torch.set_num_threads(1)
TINY = dict(channels=4, latent_dim=3)


def batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_model_has_finite_terms_shapes_and_gradients(variant):
    torch.manual_seed(0)
    model = RegularizedAE(RAEConfig(variant=variant, reg_weight=1e-3, **TINY))
    x = batch()
    terms = model.loss(x, beta=0.1)
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    code, logvar = model.encode(x)
    assert code.shape == (8, 3) and model.decode(code).shape == x.shape
    assert (logvar is None) == (variant in DETERMINISTIC)
    out = model.decode(code)
    assert out.min() >= 0 and out.max() <= 1


def test_each_objective_is_the_documented_sum():
    torch.manual_seed(0)
    x = batch()
    for variant, extra in [("rae", None), ("rae_l2", "decoder_l2"), ("rae_gp", "grad_penalty")]:
        model = RegularizedAE(RAEConfig(variant=variant, reg_weight=0.5, **TINY))
        t = model.loss(x, beta=0.25)
        expected = t["recon"] + 0.25 * t["code"] + (0.5 * t[extra] if extra else 0.0)
        torch.testing.assert_close(t["loss"], expected)
    ae = RegularizedAE(RAEConfig(variant="ae", **TINY))
    t = ae.loss(x, beta=123.0)
    assert set(t) == {"loss", "recon"} and t["loss"] == t["recon"]


def test_code_penalty_is_the_mean_square_of_the_code():
    model = RegularizedAE(RAEConfig(variant="rae", **TINY)).eval()
    x = batch()
    z, _ = model.encode(x)
    torch.testing.assert_close(model.loss(x, beta=1.0)["code"], z.pow(2).mean())


def test_gradient_penalty_matches_autograd_of_the_decoder():
    model = RegularizedAE(RAEConfig(variant="rae_gp", batch_norm=False, **TINY))
    x = batch(4)
    z = model.encode(x)[0].detach().requires_grad_(True)
    jac = torch.autograd.functional.jacobian(lambda v: model.decoder(v).pow(2).sum(), z)  # d Σ x̂² / dz
    t = model._deterministic_loss(x, z, beta=0.0)
    torch.testing.assert_close(t["grad_penalty"], jac.pow(2).mean())


def test_l2_penalty_sums_the_transposed_convolution_kernels():
    model = RegularizedAE(RAEConfig(variant="rae_l2", **TINY))
    expected = sum(m.weight.pow(2).sum() for m in model.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    torch.testing.assert_close(model.loss(batch(), beta=0.0)["decoder_l2"], expected)


def test_spectral_norm_bounds_every_decoder_layer():
    model = RegularizedAE(RAEConfig(variant="rae_sn", **TINY)).train()
    for _ in range(30):  # power iterations converge while training
        model.loss(batch(), beta=0.0)
    dense = model.decoder.dense.weight
    assert torch.linalg.matrix_norm(dense.detach(), ord=2).item() == pytest.approx(1.0, abs=0.05)
    plain = RegularizedAE(RAEConfig(variant="rae", **TINY))
    assert not hasattr(plain.decoder.dense, "parametrizations")


def test_cv_vae_has_the_constant_variance():
    model = RegularizedAE(RAEConfig(variant="cv_vae", constant_std=0.7, **TINY))
    _, logvar = model.encode(batch())
    torch.testing.assert_close((0.5 * logvar).exp(), torch.full_like(logvar, 0.7))


def test_imq_mmd_is_near_zero_for_one_distribution_and_large_for_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 4, generator=g), torch.randn(400, 4, generator=g)
    assert abs(imq_mmd(a, b).item()) < 0.05  # the estimate is unbiased: noise of order 1/n around 0
    assert imq_mmd(a + 3.0, b).item() > 0.5
    assert imq_mmd(a + 3.0, b).item() > imq_mmd(a + 1.0, b).item() > imq_mmd(a, b).item()


def test_unknown_variant_and_resolution_are_clear_errors():
    with pytest.raises(ValueError, match="unknown RAE-chapter model 'rea'"):
        RAEConfig(variant="rea")
    with pytest.raises(ValueError, match="32×32"):
        RAEConfig(resolution=28)


# ------------------------------------------------------------------------------------------- image sets


def write_idx(path, array: np.ndarray, code: int) -> None:
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(">u1").tobytes())


@pytest.fixture()
def idx_root(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 50), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 0x08)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n), 0x08)
    return tmp_path


def test_image_set_pads_binarises_and_samples_deterministically(idx_root):
    plain = mnist_files(idx_root, "train")
    padded = mnist_files(idx_root, "train", pad_to=32)
    assert plain.image_shape == (1, 28, 28) and padded.image_shape == (1, 32, 32) and len(padded) == 50
    torch.testing.assert_close(padded.data[:, :, 2:30, 2:30], plain.data)
    assert padded.data[:, :, :2].abs().sum() == 0
    static = mnist_files(idx_root, "train", binarize="static")
    assert set(static.data.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(static.data, mnist_files(idx_root, "train", binarize="static").data)
    x1, y1 = padded.sample(16, np.random.default_rng(3))
    x2, y2 = padded.sample(16, np.random.default_rng(3))
    assert torch.equal(x1, x2) and (y1 == y2).all()
    dynamic = mnist_files(idx_root, "test", binarize="dynamic")
    rng = np.random.default_rng(0)
    a, b = dynamic.images(np.zeros(64, dtype=int), rng), dynamic.images(np.zeros(64, dtype=int), rng)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)  # a fresh draw each time
    mean = torch.stack([dynamic.images(np.zeros(1, dtype=int), rng)[0] for _ in range(400)]).mean(0)
    assert (mean - dynamic.data[0]).abs().max() < 0.15  # Bernoulli(p) draws average to p


def test_image_set_errors_name_the_fix(idx_root, tmp_path):
    with pytest.raises(ValueError, match="binarize"):
        mnist_files(idx_root, "train", binarize="sometimes")
    with pytest.raises(ValueError, match="cannot pad"):
        pad_images(torch.zeros(1, 1, 28, 28), 20)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        make_dataset("mnist_files", root=tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------- training loop


def test_rae_config_round_trips_and_old_vae_hashes_are_unchanged(idx_root):
    config = TrainConfig(dataset="mnist_files", dataset_kwargs={"root": str(idx_root), "pad_to": 32},
                         model=RAEConfig(variant="rae_gp", reg_weight=1e-3, **TINY), beta=0.1, steps=2)
    again = TrainConfig.from_dict(json.loads(config.canonical()))
    assert again == config and config_hash(again) == config_hash(config)
    assert isinstance(build_model(config), RegularizedAE)
    # A VAE recipe carries no "kind": its hash (the name of every existing run) must not move.
    assert "kind" not in TrainConfig().canonical()


def test_a_rae_trains_resumes_and_is_reused(idx_root, tmp_path):
    config = TrainConfig(dataset="mnist_files", dataset_kwargs={"root": str(idx_root), "pad_to": 32},
                         model=RAEConfig(variant="rae_l2", reg_weight=1e-4, **TINY), beta=1e-3, steps=6,
                         batch_size=8, checkpoint_every=3, log_every=3, optimizer="adamax")
    first = get_or_train(config, store=tmp_path / "runs", device="cpu", progress=False)
    assert not first["reused"] and len(first["history"]) == 2
    second = get_or_train(config, store=tmp_path / "runs", device="cpu", progress=False)
    assert second["reused"]
    for a, b in zip(first["model"].state_dict().values(), second["model"].state_dict().values()):
        assert torch.equal(a, b)


def test_unknown_optimizer_is_a_clear_error(idx_root, tmp_path):
    config = TrainConfig(dataset="mnist_files", dataset_kwargs={"root": str(idx_root), "pad_to": 32},
                         model=RAEConfig(**TINY), steps=1, batch_size=4, optimizer="sgd-ish")
    with pytest.raises(ValueError, match="unknown optimizer 'sgd-ish'"):
        get_or_train(config, store=tmp_path / "runs", device="cpu", progress=False)


# ------------------------------------------------------------------------------------------- experiment


def test_profiles_use_the_papers_weights_and_sizes():
    paper = rae_exp.profile("paper")
    assert (paper.channels, paper.latent_dim, paper.batch_size, paper.lr) == (128, 16, 100, 5e-4)
    assert paper.steps * paper.batch_size == 100 * 60_000  # 100 epochs
    config = rae_exp.run_config(paper, "rae_l2")
    assert (config.beta, config.model.reg_weight) == (1e-4, 1e-7)
    assert rae_exp.run_config(paper, "vae").beta == 0.312
    with pytest.raises(ValueError, match="unknown profile"):
        rae_exp.profile("fast")


def test_midpoints_pair_each_code_with_another():
    codes = np.arange(20, dtype=float).reshape(10, 2)
    mid = rae_exp.midpoint_codes(codes, np.random.default_rng(0))
    partner = 2 * mid - codes
    assert sorted(map(tuple, partner)) == sorted(map(tuple, codes))


PREVIEW = rae_exp.profile("preview")
GMM_N, AE_FAR, COMPETITIVE = "rae-gmm-beats-n", "rae-ae-n-far-worse", "rae-competitive-with-vae"


def rows(sd: float = 0.3, gate: dict | None = None, **overrides) -> list[dict]:
    """Table 1 rows (REC, N, GMM, Interp) with every sampled column's s.d. over draws ``sd``; each model passes
    its learning gate unless ``gate`` overrides its numbers ({variant: {key: value}})."""
    base = {"ae": (20, 60, 15, 25), "rae": (20, 30, 14, 20), "rae_l2": (20, 30, 13, 20), "rae_gp": (20, 30, 14, 20),
            "rae_sn": (20, 30, 15, 20), "vae": (30, 31, 30, 30), "cv_vae": (25, 40, 26, 30), "wae": (18, 25, 17, 20)}
    base.update(overrides)
    gate = gate or {}
    return [{"variant": v, "REC": r, "N": n, "GMM": g, "Interp": i, "N_sd": sd, "GMM_sd": sd, "Interp_sd": sd,
             "untrained_REC": 300.0, "recon_nll": -800.0, "mean_image_nll": -500.0,
             **({"kl": 20.0} if v in ("vae", "cv_vae") else {}), **gate.get(v, {})}
            for v, (r, n, g, i) in base.items()]


def claims_of(table, profile=PREVIEW):
    return {c.id: c for c in rae_exp.table1_claims(table, profile, seed=2)}


def verdicts(table, profile=PREVIEW):
    return {k: (c.verdict, c.reason) for k, c in claims_of(table, profile).items()}


def test_claims_reproduce_clear_differences():
    claims = claims_of(rows())
    assert {c.verdict for c in claims.values()} == {"reproduced"}
    gmm = claims[GMM_N]
    assert gmm.test["per_model"]["AE"]["test"].startswith("z-test") and gmm.test["per_model"]["AE"]["z"] > 1.645
    # the minimal effect of "GMM beats N" is 5 % of each model's FID(N)
    assert gmm.test["per_model"]["RAE"]["min_effect"] == pytest.approx(rae_exp.GMM_MIN_GAIN * 30)
    assert gmm.gate == {"runs": 5, "passed": 5, "collapsed": 0, "failed": {}} and gmm.seeds == [2]
    assert gmm.budget == {"images_per_run": 150_000, "paper_images_per_run": 6_000_000, "ratio": 0.025}
    assert "one training seed per model" in gmm.metric and "one training seed per model" in gmm.rule
    assert claims[COMPETITIVE].gate["runs"] == 5                       # the four variants and the VAE


def test_far_worse_is_the_ratio_tested_against_the_draws():
    # N = 1.5 × GMM exactly: the difference the claim needs is 0, within the draws' noise
    assert verdicts(rows(ae=(20, 22.5, 15, 25)))[AE_FAR] == ("inconclusive", "underpowered")
    # N worse than GMM, significantly, but far less than 1.5 ×: evidence against "far worse"
    assert verdicts(rows(ae=(20, 16, 15, 25)))[AE_FAR] == ("not reproduced", None)
    # reversed
    assert verdicts(rows(ae=(20, 12, 15, 25)))[AE_FAR] == ("not reproduced", None)


def test_gmm_beats_n_needs_every_model_and_a_majority_against_to_fail():
    # three of five models gain nothing (significantly below 5 % of FID(N)): not reproduced
    v = verdicts(rows(ae=(20, 15, 15, 25), rae=(20, 14, 14.1, 20), rae_l2=(20, 13, 13.2, 20)))
    assert v[GMM_N] == ("not reproduced", None)
    # one model inside the noise (N 1.5 above GMM, ± 3.5 over draws of s.d. 6): inconclusive, underpowered
    table = rows()
    table[1].update(N=15.5, N_sd=6.0, GMM_sd=6.0)
    claim = claims_of(table)[GMM_N]
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered"
    assert claim.test["per_model"]["RAE"]["verdict"] == "inconclusive"
    # one model against, four for: not every model, not a majority against
    claim = claims_of(rows(rae_sn=(20, 14, 15, 20)))[GMM_N]
    assert claim.verdict == "inconclusive" and claim.reason == "underpowered" and "4 of 5" in claim.explanation


def test_competitive_claim_uses_the_margin_as_non_inferiority():
    # one of four RAE variants clearly worse than 1.1 × the VAE's GMM FID (33): mixed, inconclusive
    v = verdicts(rows(rae=(20, 30, 40, 20)))
    assert v[COMPETITIVE] == ("inconclusive", "underpowered")
    # three of four clearly worse: not reproduced
    v = verdicts(rows(rae=(20, 50, 40, 20), rae_l2=(20, 50, 40, 20), rae_gp=(20, 50, 40, 20)))
    assert v[COMPETITIVE] == ("not reproduced", None)
    # a variant 5 % above the VAE is within the 10 % margin: competitive (reproduced)
    assert verdicts(rows(rae=(20, 30, 31.5, 20)))[COMPETITIVE] == ("reproduced", None)


def test_no_standard_error_is_never_decided():
    # one sample draw per column: no standard error, every model's part inconclusive (too few replicas)
    one_draw = dataclasses.replace(PREVIEW, fid_repeats=1)
    for verdict, reason in verdicts(rows(sd=float("nan")), one_draw).values():
        assert (verdict, reason) == ("inconclusive", "too few replicas")
    # a variant whose GMM spread is missing is left open, the others decide
    table = rows()
    table[2]["GMM_sd"] = float("nan")
    claim = claims_of(table)[COMPETITIVE]
    assert claim.verdict == "inconclusive" and claim.reason == "too few replicas"
    assert claim.test["per_model"]["RAE-L2"]["reason"] == "too few replicas"


def test_models_that_fail_their_gate_are_left_out_and_counted():
    # a collapsed VAE (KL < 1 nat) is no baseline: every variant's comparison with it is open
    claim = claims_of(rows(gate={"vae": {"kl": 0.2}}))[COMPETITIVE]
    assert claim.verdict == "inconclusive" and claim.reason == "collapsed"
    assert claim.gate == {"runs": 5, "passed": 4, "collapsed": 1, "failed": {"collapsed": 1}}
    # an AE no better than its untrained self, and one whose reconstructions lose to the mean image
    claims = claims_of(rows(gate={"ae": {"REC": 310.0}, "rae": {"recon_nll": -400.0}}))
    assert (claims[AE_FAR].verdict, claims[AE_FAR].reason) == ("inconclusive", "under-trained")
    gmm = claims[GMM_N]
    assert gmm.verdict == "inconclusive" and gmm.reason == "under-trained"
    assert gmm.gate["passed"] == 3 and set(gmm.gate["failed"]) == {"score not above the untrained model's",
                                                               "reconstruction not better than the mean image"}
    for c in claims.values():
        assert c.verdict != "inconclusive" or c.reason


def test_table1_puts_ours_beside_the_papers():
    table = rae_exp.table1(rows())
    assert list(table.index) == ["VAE", "CV-VAE", "WAE", "RAE-GP", "RAE-L2", "RAE-SN", "RAE", "AE"]
    assert table.loc["AE", ("N", "paper MNIST")] == 58.73 and table.loc["AE", ("N", "ours")] == 60


# ------------------------------------------------------------------------------------------- other published files


def glyph(n: int) -> np.ndarray:
    """n distinct 28×28 binary images with an asymmetric mark (an L in the top-left), so a transposed or flipped
    reader would be caught."""
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 2:10, 2] = 1   # vertical stroke
    images[:, 9, 2:6] = 1    # foot to the right
    for i in range(n):
        images[i, 20, i % 28] = 1
    return images


def test_binarized_mnist_amat(tmp_path):
    from dvae_core.data.image_sets import binarized_mnist

    images = glyph(5)
    np.savetxt(tmp_path / "binarized_mnist_valid.amat", images.reshape(5, -1), fmt="%d")
    loaded = binarized_mnist("valid", root=tmp_path)
    assert loaded.image_shape == (1, 28, 28) and len(loaded) == 5
    np.testing.assert_array_equal(loaded.data[:, 0].numpy(), images.astype(np.float32))
    assert len(binarized_mnist("valid", root=tmp_path, limit=2)) == 2
    with pytest.raises(FileNotFoundError, match="Larochelle"):
        binarized_mnist("test", root=tmp_path)


def test_omniglot_chardata_mat(tmp_path):
    from scipy.io import savemat

    from dvae_core.data.image_sets import omniglot

    images, alphabets = glyph(6).astype(np.float64), np.array([0, 3, 49, 3, 0, 7])
    column_major = images.transpose(0, 2, 1).reshape(6, -1).T  # 784 × N, each column in MATLAB order
    one_hot = np.eye(50)[alphabets].T
    savemat(tmp_path / "chardata.mat", {"data": column_major, "target": one_hot,
                                        "testdata": column_major[:, :2], "testtarget": one_hot[:, :2]})
    train = omniglot("train", path=tmp_path / "chardata.mat", binarize=None)
    np.testing.assert_array_equal(train.data[:, 0].numpy(), images.astype(np.float32))
    np.testing.assert_array_equal(train.labels, alphabets)
    test = omniglot("test", path=tmp_path / "chardata.mat")
    assert len(test) == 2 and test.binarize == "static"
    with pytest.raises(FileNotFoundError, match="chardata.mat"):
        omniglot(path=tmp_path / "missing.mat")


def test_caltech_silhouettes_mat(tmp_path):
    from scipy.io import savemat

    from dvae_core.data.image_sets import caltech_silhouettes

    images = glyph(4)
    rows = images.transpose(0, 2, 1).reshape(4, -1)  # MATLAB column-major rows
    savemat(tmp_path / "c.mat", {"train_data": rows, "train_labels": np.array([[1], [101], [5], [1]]),
                                 "val_data": rows[:1], "val_labels": np.array([[2]]),
                                 "test_data": rows[:2], "test_labels": np.array([[3], [4]])})
    train = caltech_silhouettes("train", path=tmp_path / "c.mat")
    np.testing.assert_array_equal(train.data[:, 0].numpy(), images.astype(np.float32))
    np.testing.assert_array_equal(train.labels, [0, 100, 4, 0])
    assert len(caltech_silhouettes("valid", path=tmp_path / "c.mat")) == 1


def test_cifar10_binary_batches(tmp_path):
    from dvae_core.data.image_sets import CIFAR10_RECORD, cifar10

    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    batches = []
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels, pixels = rng.integers(0, 10, 3), rng.integers(0, 256, (3, 3, 32, 32))
        np.concatenate([labels[:, None], pixels.reshape(3, -1)], axis=1).astype(np.uint8).tofile(root / name)
        batches.append((labels, pixels))
    train = cifar10("train", root=root)
    assert len(train) == 15 and train.image_shape == (3, 32, 32)
    np.testing.assert_array_equal(train.labels[:3], batches[0][0])
    np.testing.assert_allclose(train.data[3].numpy() * 255, batches[1][1][0], atol=1e-3)  # channel-major RGB planes
    assert len(cifar10("test", root=root)) == 3
    (root / "test_batch.bin").write_bytes(b"\0" * (CIFAR10_RECORD + 1))
    with pytest.raises(ValueError, match="whole number"):
        cifar10("test", root=root)
    with pytest.raises(FileNotFoundError, match="CIFAR-10"):
        cifar10("train", root=tmp_path)
