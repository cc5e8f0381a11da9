"""The RAE chapter's colour columns (CIFAR-10, CelebA): networks, paper settings, data checks and a smoke
run of Table 1 on tiny files in the real formats."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dvae_core.papers import rae as rae_exp
from dvae_core.metrics.fid import INCEPTION_FILENAME
from dvae_core.models.rae import RAEConfig, RegularizedAE
from dvae_core.runs import config_hash
from dvae_core.train import build_model

torch.set_num_threads(1)

#: The 32×32 grey network (C = 4, latent 16) before the colour path existed: state-dict names and shapes,
#: and the sum of |values| after ``torch.manual_seed(0)``. Any change here renames or re-initialises the
#: Fashion-MNIST runs.
GREY_32_SHAPES = [
    ("encoder.convs.0.weight", (4, 1, 4, 4)), ("encoder.convs.0.bias", (4,)), ("encoder.convs.1.weight", (4,)),
    ("encoder.convs.1.bias", (4,)), ("encoder.convs.1.running_mean", (4,)), ("encoder.convs.1.running_var", (4,)),
    ("encoder.convs.1.num_batches_tracked", ()), ("encoder.convs.3.weight", (8, 4, 4, 4)),
    ("encoder.convs.3.bias", (8,)), ("encoder.convs.4.weight", (8,)), ("encoder.convs.4.bias", (8,)),
    ("encoder.convs.4.running_mean", (8,)), ("encoder.convs.4.running_var", (8,)),
    ("encoder.convs.4.num_batches_tracked", ()), ("encoder.convs.6.weight", (16, 8, 4, 4)),
    ("encoder.convs.6.bias", (16,)), ("encoder.convs.7.weight", (16,)), ("encoder.convs.7.bias", (16,)),
    ("encoder.convs.7.running_mean", (16,)), ("encoder.convs.7.running_var", (16,)),
    ("encoder.convs.7.num_batches_tracked", ()), ("encoder.convs.9.weight", (32, 16, 4, 4)),
    ("encoder.convs.9.bias", (32,)), ("encoder.convs.10.weight", (32,)), ("encoder.convs.10.bias", (32,)),
    ("encoder.convs.10.running_mean", (32,)), ("encoder.convs.10.running_var", (32,)),
    ("encoder.convs.10.num_batches_tracked", ()), ("encoder.dense.weight", (16, 128)), ("encoder.dense.bias", (16,)),
    ("decoder.dense.weight", (2048, 16)), ("decoder.dense.bias", (2048,)),
    ("decoder.deconvs.0.weight", (32, 16, 4, 4)), ("decoder.deconvs.0.bias", (16,)),
    ("decoder.deconvs.1.weight", (16, 8, 4, 4)), ("decoder.deconvs.1.bias", (8,)),
    ("decoder.norms.0.weight", (16,)), ("decoder.norms.0.bias", (16,)), ("decoder.norms.0.running_mean", (16,)),
    ("decoder.norms.0.running_var", (16,)), ("decoder.norms.0.num_batches_tracked", ()),
    ("decoder.norms.1.weight", (8,)), ("decoder.norms.1.bias", (8,)), ("decoder.norms.1.running_mean", (8,)),
    ("decoder.norms.1.running_var", (8,)), ("decoder.norms.1.num_batches_tracked", ()),
    ("decoder.to_image.weight", (8, 1, 3, 3)), ("decoder.to_image.bias", (1,)),
]
GREY_32_ABS_SUM = 5335.62809


def test_the_32px_grey_network_is_unchanged():
    torch.manual_seed(0)
    model = RegularizedAE(RAEConfig(variant="rae", channels=4, latent_dim=16))
    state = model.state_dict()
    assert [(name, tuple(value.shape)) for name, value in state.items()] == GREY_32_SHAPES
    total = sum(float(value.double().abs().sum()) for value in state.values())
    assert total == pytest.approx(GREY_32_ABS_SUM, abs=1e-3)  # same layers built in the same order


def test_fashion_mnist_run_recipes_are_unchanged():
    # The colour path must not move the hashes (= run-store names) of the existing Fashion-MNIST runs.
    assert config_hash(rae_exp.run_config(rae_exp.profile("paper"), "rae")) == "283fac32a01eb6ef"
    assert config_hash(rae_exp.run_config(rae_exp.profile("preview"), "rae_l2")) == "df2a6f49d19a04e4"
    assert rae_exp.dataset_kwargs(rae_exp.profile("preview"), "fashion_mnist", None, "train") == \
        {"split": "train", "pad_to": 32}


@pytest.mark.parametrize("variant", ["rae", "vae", "rae_sn"])
def test_the_64px_colour_network_maps_celeba_images_to_64_codes_and_back(variant):
    torch.manual_seed(0)
    model = RegularizedAE(RAEConfig(variant=variant, channels=2, latent_dim=64, in_channels=3, resolution=64))
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    code, _ = model.encode(x)
    out = model.decode(code)
    assert code.shape == (3, 64) and out.shape == (3, 3, 64, 64)
    assert 0 <= out.min() and out.max() <= 1
    terms = model.loss(x, beta=0.01)
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"]) and model.encoder.convs[0].weight.grad is not None
    # three stride-2 transposed convolutions (4C, 2C, C) then one to the image, 5×5 kernels (released CelebA code)
    assert [tuple(d.weight.shape) for d in model.decoder.deconvs] == [(16, 8, 5, 5), (8, 4, 5, 5), (4, 2, 5, 5)]


def test_resolutions_other_than_32_and_64_are_clear_errors():
    with pytest.raises(ValueError, match="64×64"):
        RAEConfig(resolution=48)


def test_colour_configs_follow_the_papers_settings():
    p = rae_exp.profile("preview")
    for dataset, latent, resolution in (("cifar10", 128, 32), ("celeba", 64, 64)):
        for config in rae_exp.run_configs(p, dataset=dataset):
            assert (config.model.latent_dim, config.model.in_channels, config.model.resolution) == \
                (latent, 3, resolution)
            assert config.model.channels == p.channels and config.steps == p.steps  # the profile's budget
            assert "pad_to" not in config.dataset_kwargs
            assert isinstance(build_model(config), RegularizedAE)
    cifar_l2 = rae_exp.run_config(p, "rae_l2", dataset="cifar10")
    assert (cifar_l2.beta, cifar_l2.model.reg_weight) == (1e-3, 1e-6)
    assert rae_exp.run_config(p, "rae_sn", dataset="celeba").beta == 2.4e-3
    assert rae_exp.run_config(p, "rae_sn", dataset="fashion_mnist").beta == 0.009
    celeba = rae_exp.run_config(p, "rae", dataset="celeba")
    # the preview trains on the first 30,000 faces (1.5 GB of float32), not all 162,770 (8 GB)
    assert celeba.dataset_kwargs == {"split": "train", "resolution": 64, "crop": 140, "limit": 30_000}
    assert "limit" not in rae_exp.run_config(p, "rae", dataset="cifar10").dataset_kwargs
    assert rae_exp.dataset_kwargs(p, "celeba", None, "test") == \
        {"split": "test", "resolution": 64, "crop": 140}
    paper = rae_exp.profile("paper")
    assert "limit" not in rae_exp.run_config(paper, "rae", dataset="celeba").dataset_kwargs
    assert rae_exp.run_config(paper, "rae", dataset="celeba").lr == 1e-3  # CelebA's Adam rate
    assert rae_exp.run_config(paper, "rae", dataset="cifar10").lr == 5e-4
    assert rae_exp.run_config(p, "rae", dataset="celeba").lr == p.lr      # other profiles keep theirs
    with pytest.raises(ValueError, match="no settings for dataset 'svhn'"):
        rae_exp.run_config(p, "rae", dataset="svhn")


def test_crop_to_source_only_crops_padded_sets():
    padded, colour = torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 32)
    assert rae_exp.crop_to_source(padded).shape == (2, 1, 28, 28)
    torch.testing.assert_close(rae_exp.crop_to_source(padded, "mnist_files"), padded[..., 2:30, 2:30])
    assert rae_exp.crop_to_source(colour, "cifar10") is colour
    assert rae_exp.crop_to_source(torch.rand(2, 3, 64, 64), "celeba").shape == (2, 3, 64, 64)


# ------------------------------------------------------------------------------------------- tiny files

def write_cifar(root, per_batch: int = 32, test: int = 160, seed: int = 0) -> None:
    """The binary CIFAR-10 layout: records of 1 label byte + 3,072 pixel bytes (R, G, B planes). Class k
    brightens channel k % 3, so a classifier has something to learn."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for name, n in [(f"data_batch_{i}.bin", per_batch) for i in range(1, 6)] + [("test_batch.bin", test)]:
        labels = rng.integers(0, 10, n)
        pixels = rng.integers(0, 120, (n, 3, 32, 32))
        pixels[np.arange(n), labels % 3] += 120
        np.concatenate([labels[:, None], pixels.reshape(n, -1)], axis=1).astype(np.uint8).tofile(root / name)


def write_celeba(root, names_and_parts) -> None:
    from PIL import Image

    (root / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, _ in names_and_parts:
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(root / "img_align_celeba" / name)
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in names_and_parts))


@pytest.fixture()
def quiet_store(tmp_path, monkeypatch):
    """Runs and cached classifiers go to tmp_path; training in this process, without progress bars."""
    monkeypatch.setenv("DVAE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("DVAE_PROGRESS", "0")
    monkeypatch.delenv("DVAE_JOBS", raising=False)
    monkeypatch.delenv("DVAE_SCHEDULER", raising=False)
    return tmp_path / "runs"


TINY_PROFILE = rae_exp.RAEProfile(channels=2, latent_dim=16, batch_size=8, steps=2, lr=5e-4, fid_samples=150,
                                  gmm_fit_codes=160, fid_repeats=2, variants=("rae",),
                                  classifier_epochs=1, checkpoint_every=2)


def test_data_status_says_what_is_present_and_where_the_rest_goes(tmp_path):
    status = rae_exp.colour_data_status(tmp_path, inception_path=tmp_path / INCEPTION_FILENAME)
    assert set(status) == {"cifar10", "celeba"}
    assert "CIFAR-10: absent" in status["cifar10"] and str(tmp_path / "cifar-10-batches-bin") in status["cifar10"]
    assert "CelebA: absent" in status["celeba"] and str(tmp_path / "celeba") in status["celeba"]
    assert all("\n" not in line for line in status.values())
    assert rae_exp.available_colour_datasets(tmp_path) == []
    write_cifar(tmp_path / "cifar-10-batches-bin")
    write_celeba(tmp_path / "celeba", [("000001.jpg", 0)])
    status = rae_exp.colour_data_status(tmp_path, inception_path=tmp_path / INCEPTION_FILENAME)
    assert status["cifar10"] is None
    assert "files present" in status["celeba"] and INCEPTION_FILENAME in status["celeba"]
    assert rae_exp.available_colour_datasets(tmp_path, tmp_path / INCEPTION_FILENAME) == ["cifar10"]
    (tmp_path / INCEPTION_FILENAME).write_bytes(b"weights")
    assert rae_exp.available_colour_datasets(tmp_path, tmp_path / INCEPTION_FILENAME) == ["cifar10", "celeba"]


def test_cifar10_table1_smoke_run(tmp_path, quiet_store):
    write_cifar(tmp_path / "cifar-10-batches-bin")
    out = rae_exp.dataset_table1(TINY_PROFILE, "cifar10", device="cpu", data_dir=tmp_path)
    assert out["dataset"] == "cifar10/train" and out["paper_column"] == "CIFAR-10"
    assert out["features"]["feature_dim"] == 128 and 0 <= out["features"]["test_accuracy"] <= 1
    cached = list(quiet_store.glob("fid-classifier-*.pt"))
    assert len(cached) == 1  # the 3-channel classifier, trained for 1 epoch (the smoke classifier)
    assert '"in_channels": 3' in torch.load(cached[0], weights_only=True)["config"]
    rows = {row["variant"]: row for row in out["rows"]}
    assert set(rows) == {"rae"}
    for row in rows.values():
        assert all(np.isfinite(row[c]) and row[c] > 0 for c in rae_exp.COLUMNS)
        assert np.isfinite(row["final_loss"])
    runs = [p for p in quiet_store.iterdir() if p.is_dir()]
    config = rae_exp.run_config(TINY_PROFILE, "rae", dataset="cifar10", root=str(tmp_path / "cifar-10-batches-bin"))
    assert [run.name for run in runs] == [config_hash(config)] and config.model.latent_dim == 128
    table = rae_exp.table1(out["rows"], out["paper_column"])
    assert list(table.index) == ["RAE"]
    assert table.loc["RAE", ("N", "paper CIFAR-10")] == 83.87
    assert table.loc["RAE", ("GMM", "ours")] == rows["rae"]["GMM"]


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_celeba_table1_needs_inception_and_runs_with_it(tmp_path, quiet_store):
    write_celeba(tmp_path / "celeba", [(f"{i:06d}.jpg", 0 if i <= 12 else 2) for i in range(1, 21)])
    missing = tmp_path / "nowhere" / INCEPTION_FILENAME
    with pytest.raises(FileNotFoundError) as caught:
        rae_exp.dataset_table1(TINY_PROFILE, "celeba", device="cpu", data_dir=tmp_path, inception_path=missing)
    message = str(caught.value)
    assert "\n" not in message and INCEPTION_FILENAME in message and str(missing) in message
    assert "never downloads" in message and "$DVAE_DATA_DIR" in message
    assert not quiet_store.exists() or not any(quiet_store.iterdir())  # nothing trained before the error

    class SmallInception(torch.nn.Module):  # the export's calling convention, 6 features (channel means, squares)
        def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            means = img.to(torch.float32).mean(dim=(2, 3)) / 255.0
            return torch.cat([means, means * means], dim=1)

    weights = tmp_path / INCEPTION_FILENAME
    torch.jit.save(torch.jit.script(SmallInception()), str(weights))
    profile = dataclasses.replace(TINY_PROFILE, fid_samples=8, gmm_fit_codes=12)
    out = rae_exp.dataset_table1(profile, "celeba", device="cpu", data_dir=tmp_path, inception_path=weights)
    assert out["paper_column"] == "CelebA" and out["features"]["extractor"] == "inception"
    (row,) = out["rows"]
    assert all(np.isfinite(row[c]) for c in rae_exp.COLUMNS)
    assert rae_exp.table1(out["rows"], "CelebA").loc["RAE", ("REC", "paper CelebA")] == 40.18
