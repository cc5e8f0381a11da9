"""Known-answer tests for the Fréchet distance, FID on images, and its two feature extractors.

Closed forms are computed independently of ``scipy.linalg.sqrtm``: for diagonal covariances
tr((Σ1Σ2)^{1/2}) = Σ_i √(a_i b_i), and in general it is Σ √λ over the eigenvalues λ of the
symmetric matrix Σ1^{1/2} Σ2 Σ1^{1/2} (``eigh`` throughout). The classifier tests use a tiny
synthetic 28×28 set and a tiny config; only the last test needs the real Fashion-MNIST.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dvae_core.data.files import FASHION_MNIST_DIR, load_mnist_like
from dvae_core.metrics.fid import (
    INCEPTION_FILENAME,
    INCEPTION_URL,
    DomainClassifier,
    DomainClassifierConfig,
    FeatureExtractor,
    InceptionFeatures,
    extract_features,
    feature_statistics,
    fid,
    frechet_distance,
    image_statistics,
    make_feature_extractor,
    train_domain_classifier,
)

torch.set_num_threads(1)  # tiny models: threads only add contention on a shared CPU


def random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    factor = rng.standard_normal((dim, dim))
    return factor @ factor.T / dim + 0.1 * np.eye(dim)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def closed_form_fid(mu1, sigma1, mu2, sigma2) -> float:
    root1 = psd_sqrt(sigma1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ sigma2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * cross)


# ------------------------------------------------------------------------------ frechet_distance

def test_fid_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).standard_normal((500, 16)) @ np.diag(np.arange(1, 17.0))
    stats = feature_statistics(features)
    assert frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-8)


def test_fid_of_diagonal_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    a, b = rng.uniform(0.1, 3.0, 8), rng.uniform(0.1, 3.0, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("dim", [1, 2, 10, 64])
def test_fid_of_non_commuting_gaussians_matches_the_closed_form(dim):
    rng = np.random.default_rng(dim)
    mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
    sigma1, sigma2 = random_covariance(rng, dim), random_covariance(rng, dim)
    if dim > 1:
        assert not np.allclose(sigma1 @ sigma2, sigma2 @ sigma1)
    expected = closed_form_fid(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_fid_is_symmetric():
    rng = np.random.default_rng(2)
    stats_a = feature_statistics(rng.standard_normal((300, 12)))
    stats_b = feature_statistics(rng.standard_normal((300, 12)) @ random_covariance(rng, 12) + 0.5)
    assert frechet_distance(*stats_a, *stats_b) == pytest.approx(frechet_distance(*stats_b, *stats_a), rel=1e-9)


def test_translation_adds_the_squared_mean_shift():
    rng = np.random.default_rng(3)
    features_a = rng.standard_normal((400, 6)) @ random_covariance(rng, 6)
    features_b = rng.standard_normal((400, 6))
    shift = rng.standard_normal(6)
    # The same set shifted: only the mean term remains.
    assert frechet_distance(*feature_statistics(features_a + shift), *feature_statistics(features_a)) == (
        pytest.approx(shift @ shift, rel=1e-8))
    # Two sets: the mean term changes from ‖Δμ‖² to ‖Δμ + δ‖², the covariance term not at all.
    mean_gap = features_a.mean(0) - features_b.mean(0)
    before = frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))
    after = frechet_distance(*feature_statistics(features_a + shift), *feature_statistics(features_b))
    assert after - before == pytest.approx(shift @ shift + 2 * shift @ mean_gap, rel=1e-8)


def test_singular_covariances_do_not_crash():
    rng = np.random.default_rng(4)
    dim = 32
    # A dead unit (a constant feature) and fewer samples than features: both rank-deficient.
    dead = rng.standard_normal((200, dim))
    dead[:, 0] = 1.5
    few = rng.standard_normal((10, dim))
    other = rng.standard_normal((200, dim))
    for features in (dead, few):
        stats, reference = feature_statistics(features), feature_statistics(other)
        got = frechet_distance(*stats, *reference)
        # If the eps fallback ran, each null direction of Σ1 costs up to 2·√(eps·σ²) ≈ 2e-3.
        assert got == pytest.approx(closed_form_fid(*stats, *reference), abs=1e-2)
    # A zero covariance makes Σ1Σ2 = 0, which scipy flags as singular: the eps fallback gives
    # ‖Δμ‖² + tr Σ2 up to 2·√eps·tr Σ2^{1/2}.
    mu, sigma = np.ones(dim), random_covariance(rng, dim)
    with_eps = frechet_distance(np.zeros(dim), np.zeros((dim, dim)), mu, sigma)
    exact = dim + np.trace(sigma)
    assert with_eps == pytest.approx(exact, abs=2 * np.sqrt(1e-6) * np.trace(psd_sqrt(sigma)) * 1.01)
    assert with_eps != exact  # the fallback really ran


def test_a_large_imaginary_component_is_an_error():
    # diag(1, -1) is no covariance: sqrtm(Σ1Σ2) has an imaginary unit on its diagonal.
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="square"):
        frechet_distance(np.zeros(3), np.ones((3, 2)), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(np.zeros((1, 3)))


# ------------------------------------------------------------------------------ fid on images

class PixelFeatures:
    """Features = the flattened pixels; records that it ran in inference mode and its batch sizes."""

    name = "pixels"

    def __init__(self):
        self.batch_sizes = []

    def features(self, images: torch.Tensor) -> np.ndarray:
        assert torch.is_inference_mode_enabled()
        self.batch_sizes.append(images.shape[0])
        return images.flatten(1).numpy()


def test_fid_on_images_is_zero_for_the_same_set_and_independent_of_batching():
    images = torch.rand(300, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    other = torch.rand(300, 1, 3, 3, generator=torch.Generator().manual_seed(1)) ** 2
    extractor = PixelFeatures()
    assert isinstance(extractor, FeatureExtractor)
    assert fid(extractor, images, images, batch_size=64) == pytest.approx(0.0, abs=1e-10)
    whole = fid(extractor, images, other, batch_size=1000)
    extractor.batch_sizes.clear()
    in_pieces = fid(extractor, images, (other[i:i + 130] for i in range(0, 300, 130)), batch_size=100)
    assert in_pieces == pytest.approx(whole, rel=1e-12)
    assert max(extractor.batch_sizes) <= 100 and sum(extractor.batch_sizes) == 600
    mu, sigma = image_statistics(extractor, other)
    np.testing.assert_allclose(mu, other.flatten(1).double().mean(0).numpy(), rtol=1e-12)
    assert sigma.shape == (9, 9)


def test_fid_rejects_images_outside_the_unit_interval():
    extractor = PixelFeatures()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        extract_features(extractor, torch.full((4, 1, 2, 2), 1.5))
    with pytest.raises(TypeError, match="torch tensor"):
        extract_features(extractor, [np.zeros((4, 1, 2, 2))])
    with pytest.raises(ValueError, match="no images"):
        extract_features(extractor, [])


# ------------------------------------------------------------------------------ domain classifier

TINY = DomainClassifierConfig(epochs=2, batch_size=32, lr=1e-2, width=2, feature_dim=8, num_classes=2, seed=0)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 28, 28): class 0 lights the top half, class 1 the bottom half, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 100, (n, 28, 28))
    images[labels == 0, :14] += 150
    images[labels == 1, 14:] += 150
    return images.astype(np.uint8), labels


def test_domain_classifier_training_is_deterministic_and_learns(tmp_path):
    images, labels = synthetic_digits(512, 0)
    test_images, test_labels = synthetic_digits(128, 1)
    rng_state = torch.get_rng_state()
    first = train_domain_classifier(images, labels, test_images, test_labels, TINY, "cpu", tmp_path / "a")
    second = train_domain_classifier(images, labels, test_images, test_labels, TINY, "cpu", tmp_path / "b")
    assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's RNG is left alone
    for name, value in first["model"].state_dict().items():
        assert torch.equal(value, second["model"].state_dict()[name]), name
    assert first["test_accuracy"] == second["test_accuracy"] >= 0.95
    assert not first["from_cache"] and not second["from_cache"]
    reseeded = train_domain_classifier(images, labels, test_images, test_labels,
                                       replace(TINY, seed=1), "cpu", tmp_path / "a")
    assert not torch.equal(reseeded["model"].body[0].weight, first["model"].body[0].weight)


def test_domain_classifier_is_cached_and_reloaded_without_training(tmp_path, monkeypatch):
    images, labels = synthetic_digits(256, 0)
    test_images, test_labels = synthetic_digits(64, 1)
    trained = train_domain_classifier(images, labels, test_images, test_labels, TINY, "cpu", tmp_path)
    path = trained["path"]
    assert path.parent == tmp_path and path.name.startswith("fid-classifier-") and path.suffix == ".pt"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the weights were cached")

    monkeypatch.setattr(torch.optim, "Adam", no_training)
    # The same data as floats (n, 1, 28, 28) hash the same: the cache keys on the pixels, not their type.
    as_floats = torch.from_numpy(images).float().div(255)[:, None]
    loaded = train_domain_classifier(as_floats, labels, test_images, test_labels, TINY, "cpu", tmp_path)
    assert loaded["from_cache"] and loaded["path"] == path
    assert loaded["test_accuracy"] == trained["test_accuracy"]
    assert loaded["train_seconds"] == trained["train_seconds"]
    probe = torch.from_numpy(test_images[:16]).float().div(255)[:, None]
    np.testing.assert_array_equal(loaded["model"].features(probe), trained["model"].features(probe))

    # Other training data is another classifier, not a cache hit.
    with pytest.raises(AssertionError, match="retrained"):
        train_domain_classifier(images[::-1].copy(), labels[::-1].copy(), test_images, test_labels, TINY, "cpu",
                                tmp_path)


def test_a_damaged_cached_classifier_is_a_clear_error(tmp_path):
    images, labels = synthetic_digits(64, 0)
    trained = train_domain_classifier(images, labels, images, labels, TINY, "cpu", tmp_path)
    trained["path"].write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="delete it to retrain"):
        train_domain_classifier(images, labels, images, labels, TINY, "cpu", tmp_path)


def test_domain_classifier_features_and_input_checks():
    model = DomainClassifier(TINY)
    features = model.features(torch.rand(5, 1, 28, 28))
    assert features.shape == (5, TINY.feature_dim) and features.dtype == np.float64
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, TINY.num_classes)
    with pytest.raises(ValueError, match="28, 28"):
        model.features(torch.rand(5, 3, 28, 28))
    images, labels = synthetic_digits(8, 0)
    with pytest.raises(ValueError, match="labels must lie"):
        train_domain_classifier(images, labels + 5, images, labels, TINY, "cpu", Path("/nonexistent"))
    with pytest.raises(ValueError, match="uint8 \\(n, 28, 28\\)"):
        train_domain_classifier(images[:, :20], labels, images, labels, TINY, "cpu", Path("/nonexistent"))


def write_idx_uint8(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_make_feature_extractor_trains_the_domain_classifier_on_mnist_format_files(tmp_path):
    for prefix, seed in (("train", 0), ("t10k", 1)):
        images, labels = synthetic_digits(128, seed)
        write_idx_uint8(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        write_idx_uint8(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
    extractor = make_feature_extractor("domain", "cpu", config=TINY, data_root=tmp_path, cache_dir=tmp_path / "runs")
    assert isinstance(extractor, DomainClassifier) and extractor.name == "domain"
    assert len(list((tmp_path / "runs").glob("fid-classifier-*.pt"))) == 1
    with pytest.raises(ValueError, match="domain, inception"):
        make_feature_extractor("vgg")


# ------------------------------------------------------------------------------ Inception

class FakeInception(torch.nn.Module):
    """Same calling convention as NVIDIA's export: uint8 (n, 3, H, W), ``return_features`` → (n, 2048)."""

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if img.dtype != torch.uint8 or img.shape[1] != 3:
            raise ValueError("expected uint8 (n, 3, H, W)")
        channel_means = img.to(torch.float32).mean(dim=(2, 3))
        if not return_features:
            return torch.zeros(img.shape[0], 1008)  # the softmax head, which FID must not use
        return channel_means.repeat(1, 2048 // 2)[:, :2048]


@pytest.fixture
def fake_inception_file(tmp_path) -> Path:
    path = tmp_path / INCEPTION_FILENAME
    torch.jit.save(torch.jit.script(FakeInception()), str(path))
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
def test_inception_features_calls_the_torchscript_module_like_stylegan(fake_inception_file, monkeypatch):
    monkeypatch.setenv("DVAE_DATA_DIR", str(fake_inception_file.parent))
    extractor = InceptionFeatures(device="cpu")  # found through $DVAE_DATA_DIR
    assert extractor.path == fake_inception_file and extractor.name == "inception"
    grey = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    features = extractor.features(grey)
    assert features.shape == (6, 2048) and features.dtype == np.float64
    # Grey is repeated to 3 channels, pixels are rounded to uint8 (not truncated), at native size.
    expected = (grey * 255).round().mean(dim=(1, 2, 3)).double().numpy()
    np.testing.assert_allclose(features[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(features[:, 1], expected, rtol=1e-6)
    colour = torch.rand(4, 3, 8, 8)
    np.testing.assert_allclose(extractor.features(colour)[:, :2],
                               (colour[:, :2] * 255).round().mean(dim=(2, 3)).double().numpy(), rtol=1e-6)
    assert isinstance(make_feature_extractor("inception", "cpu", inception_path=fake_inception_file), InceptionFeatures)


def test_missing_inception_file_says_where_to_put_it_and_where_it_comes_from(tmp_path, monkeypatch):
    monkeypatch.setenv("DVAE_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as caught:
        InceptionFeatures(device="cpu")
    message = str(caught.value)
    assert str(tmp_path / INCEPTION_FILENAME) in message
    assert "$DVAE_DATA_DIR/inception-2015-12-05.pt" in message and "./data" in message
    assert INCEPTION_URL in message and "never downloads" in message


# ------------------------------------------------------------------------------ real Fashion-MNIST

@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(),
                    reason=f"Fashion-MNIST not in {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)")
def test_domain_classifier_on_fashion_mnist(tmp_path):
    images, labels = load_mnist_like(split="train")
    test_images, test_labels = load_mnist_like(split="test")
    run = train_domain_classifier(images, labels, test_images, test_labels, device="cpu", cache_dir=tmp_path)
    assert 0.87 <= run["test_accuracy"] <= 0.93, run["test_accuracy"]

    # 2,000 images a side: the real-vs-real floor is ~4 (0.6 at 10,000), noise ~900.
    as_images = lambda x: torch.from_numpy(x[:2000]).float().div(255)[:, None]  # noqa: E731
    real, other_real = as_images(test_images), as_images(images)
    noise = torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    floor = fid(run["model"], real, other_real)
    assert 0 < floor < 10, floor
    assert fid(run["model"], real, noise) > 50 * floor
