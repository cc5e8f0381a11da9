r"""Fréchet distance between image sets in a feature space (FID), with two feature extractors.

Definition: Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter (2017), "GANs Trained by a Two
Time-Scale Update Rule Converge to a Local Nash Equilibrium" (NeurIPS; arXiv:1706.08500), Eq. 6.
Both image sets are mapped to features, each feature cloud is summarised by a Gaussian
N(μ, Σ) — its mean and covariance — and the score is the squared 2-Wasserstein (Fréchet)
distance between the two Gaussians:

.. math::
   d^2 = \lVert \mu_1 - \mu_2 \rVert^2
         + \operatorname{tr}\big(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2}\big).

Lower is better; 0 means equal first and second moments. FID is biased upwards for finite
samples (the floor of two independent draws from the *same* distribution is > 0 and shrinks
roughly like 1/n), so scores are only comparable at equal sample sizes: Ghosh et al. (2020,
RAE), whose Table 1 this module serves, use 10,000 generated images against the test set.

The "FID" proper uses the pool3 features (2048-d) of the 2015 TensorFlow Inception-v3
(:class:`InceptionFeatures`). Those weights are not shipped here, and an ImageNet network is a
poor judge of 28×28 grey images anyway, so the default extractor is a small CNN trained on the
domain itself (:class:`DomainClassifier`, its 128-d penultimate layer), the usual choice for
MNIST-like data. Scores from different extractors are on different scales: never compare them
with each other or with the paper's numbers, only rankings and ratios within one extractor.

Any object with a ``name`` and ``features(images) -> np.ndarray (n, d)``, ``images`` a float
tensor ``(n, C, H, W)`` in [0, 1], is an extractor (:class:`FeatureExtractor`). :func:`fid`
feeds it batches under ``torch.inference_mode()``; :func:`image_statistics` +
:func:`frechet_distance` let a notebook compute the reference statistics once and reuse them for
every model.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol, Union, runtime_checkable

import numpy as np
import scipy.linalg
import torch
from torch import nn

from dvae_core.data.files import DATA_DIR_ENV, FASHION_MNIST_DIR, default_data_path, load_mnist_like
from dvae_core.metrics.encode import as_codes
from dvae_core.infra import (atomic_torch_save, canonical_json, default_store, keep_freed_memory, load_torch_file,
                             resolve_device)

Images = Union[torch.Tensor, Iterable[torch.Tensor]]

#: Images per ``extractor.features`` call; an Inception batch of 200 at 299×299 needs ~2 GB.
DEFAULT_BATCH_SIZE = 200
#: Added to both covariance diagonals when Σ1Σ2 is singular (pytorch-fid's ``eps``).
DEFAULT_EPS = 1e-6
#: Largest imaginary part (relative to the real diagonal) of sqrtm(Σ1Σ2) blamed on round-off.
IMAGINARY_TOLERANCE = 1e-3

FEATURE_EXTRACTORS = ("domain", "inception")

INCEPTION_FILENAME = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


def inception_weights_path(path: str | os.PathLike | None = None) -> Path:
    """Where the Inception weights are read from: ``path``, or ``$DVAE_DATA_DIR/inception-2015-12-05.pt``."""
    return Path(path) if path is not None else default_data_path(INCEPTION_FILENAME)


# ------------------------------------------------------------------------------ Fréchet distance

def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = DEFAULT_EPS) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Computed as TTUR / pytorch-fid do: ``scipy.linalg.sqrtm(sigma1 @ sigma2)``, whose trace equals
    tr((Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}) since the two matrices are similar. Two numerical cases:

    * Singular product (e.g. a feature that is constant in one set, or fewer samples than
      features): scipy warns and the root may be inaccurate or non-finite, so ``eps`` is added
      to both diagonals and the root recomputed. The result is then off by O(√eps · tr Σ^{1/2}).
    * Round-off moves eigenvalues of Σ1Σ2 slightly off the real axis and the root comes back
      complex: a negligible imaginary part (≤ ``IMAGINARY_TOLERANCE`` × the largest real diagonal
      entry, at least 1; pytorch-fid uses an absolute 1e-3) is dropped; a larger one means the
      inputs are not covariance matrices and raises ``ValueError``.

    The result is not clipped at 0: identical statistics give 0 up to round-off (~1e-10).
    """
    mu1, mu2 = _as_mean(mu1, "mu1"), _as_mean(mu2, "mu2")
    sigma1, sigma2 = _as_covariance(sigma1, "sigma1"), _as_covariance(sigma2, "sigma2")
    dims = {mu1.shape[0], mu2.shape[0], sigma1.shape[0], sigma2.shape[0]}
    if len(dims) != 1:
        raise ValueError(f"dimensions differ: mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {sigma2.shape}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
            root = scipy.linalg.sqrtm(sigma1 @ sigma2)
        singular = not np.isfinite(root).all()
    except scipy.linalg.LinAlgWarning:
        singular = True
    if singular:
        offset = eps * np.eye(sigma1.shape[0])
        root = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.isfinite(root).all():
            raise FloatingPointError(f"sqrtm(sigma1 @ sigma2) is not finite even with eps={eps} added to "
                                     f"the diagonals; are the covariances finite and positive semi-definite?")

    if np.iscomplexobj(root):
        diagonal = np.diagonal(root)
        largest_imaginary = np.abs(diagonal.imag).max()
        if largest_imaginary > IMAGINARY_TOLERANCE * max(1.0, np.abs(diagonal.real).max()):
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has an imaginary component of {largest_imaginary:.3g}: "
                             f"sigma1 and sigma2 must be positive semi-definite covariance matrices")
        root = root.real

    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(root))


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of ``features`` (n, d), both float64 (as pytorch-fid)."""
    features = as_codes(features, name="features")
    if features.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 feature rows, got {features.shape[0]}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


# ------------------------------------------------------------------------------ FID on images

@runtime_checkable
class FeatureExtractor(Protocol):
    """What :func:`fid` needs: a ``name`` (for labels) and ``features`` of an image batch.

    ``features`` receives a float tensor (n, C, H, W) in [0, 1], on whatever device the caller's
    images are, is called under ``torch.inference_mode()``, and returns an (n, d) array; moving
    the batch to its own device is its job.
    """

    name: str

    def features(self, images: torch.Tensor) -> np.ndarray: ...


def extract_features(extractor: FeatureExtractor, images: Images,
                     batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Features (n, d) float64 of ``images``: one tensor (n, C, H, W), or an iterable of such batches.

    Batches are re-split to at most ``batch_size`` images, so a generator of samples can yield
    whatever size it likes. Pixels must lie in [0, 1] (clamp decoder means first).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batches = [images] if isinstance(images, torch.Tensor) else images
    parts = []
    with torch.inference_mode():
        for batch in batches:
            _check_images(batch)
            for start in range(0, batch.shape[0], batch_size):
                chunk = batch[start:start + batch_size]
                parts.append(as_codes(extractor.features(chunk), chunk.shape[0], f"{extractor.name} features"))
    if not parts:
        raise ValueError("no images given")
    return np.concatenate(parts, axis=0)


def image_statistics(extractor: FeatureExtractor, images: Images,
                     batch_size: int = DEFAULT_BATCH_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of the extractor's features of ``images``: one side of an FID."""
    return feature_statistics(extract_features(extractor, images, batch_size))


def fid(extractor: FeatureExtractor, images_a: Images, images_b: Images,
        batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """FID between two image sets (tensors (n, C, H, W) in [0, 1], or iterables of batches).

    Compare many sets against one reference by computing ``image_statistics`` of the reference
    once and calling :func:`frechet_distance` per set instead.
    """
    return frechet_distance(*image_statistics(extractor, images_a, batch_size),
                            *image_statistics(extractor, images_b, batch_size))


def make_feature_extractor(name: str = "domain", device: str = "auto", *,
                           config: DomainClassifierConfig | None = None,
                           data_root: str | os.PathLike = FASHION_MNIST_DIR,
                           cache_dir: str | os.PathLike | None = None,
                           inception_path: str | os.PathLike | None = None) -> FeatureExtractor:
    """The extractor called ``name``:

    * ``"domain"`` — a :class:`DomainClassifier` trained on the MNIST-format files in
      ``data_root`` (default Debian's Fashion-MNIST) with ``config``, or loaded from the run store
      (``cache_dir``) when it was trained before; see :func:`train_domain_classifier`.
    * ``"inception"`` — :class:`InceptionFeatures` from ``inception_path``.

    Arguments that do not concern the chosen extractor are ignored.
    """
    if name == "domain":
        train_images, train_labels = load_mnist_like(data_root, "train")
        test_images, test_labels = load_mnist_like(data_root, "test")
        return train_domain_classifier(train_images, train_labels, test_images, test_labels,
                                       config or DomainClassifierConfig(), device, cache_dir)["model"]
    if name == "inception":
        return InceptionFeatures(inception_path, device)
    raise ValueError(f"unknown feature extractor {name!r}: choose one of {', '.join(FEATURE_EXTRACTORS)}")


# ------------------------------------------------------------------------------ domain classifier

@dataclass(frozen=True)
class DomainClassifierConfig:
    """Recipe of a :class:`DomainClassifier`; its hash (with the data's) names the cached weights.

    The defaults train in ~35 s on one CPU thread to 89 % Fashion-MNIST test accuracy (a
    converged small CNN reaches ~91–92 %): features good enough to tell garment classes and
    textures apart, which is what an FID on this domain needs. With them, 10,000 test images
    against 10,000 training images score ≈ 0.6 (the real-vs-real floor; ≈ 4 at 2,000 a side)
    and against uniform noise ≈ 900.

    ``in_channels`` and ``size`` set the input, (n, in_channels, size, size); ``size`` must be a
    multiple of 4. At their defaults (1, 28: grey 28×28) they are left out of the recipe, so the
    Fashion-MNIST classifier's cache key is what it was before they existed. CIFAR-10 uses (3, 32).
    """

    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    width: int = 16          # channels of the first conv; the second has 2×
    feature_dim: int = 128   # penultimate layer: the FID features
    num_classes: int = 10
    seed: int = 0
    in_channels: int = 1     # 1 (grey) or 3 (RGB)
    size: int = 28           # image height = width

    def __post_init__(self):
        if self.in_channels < 1 or self.size < 4 or self.size % 4:
            raise ValueError(f"the domain classifier needs in_channels >= 1 and a size that is a multiple of 4, "
                             f"got in_channels={self.in_channels}, size={self.size}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.size, self.size)

    def recipe(self) -> str:
        """The canonical JSON the cache key and the cached file's check use; the input fields appear only
        when they differ from their defaults, so grey 28×28 recipes hash as they always did."""
        d = asdict(self)
        for key, default in _INPUT_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        return canonical_json(d)


_INPUT_DEFAULTS = {"in_channels": 1, "size": 28}


class DomainClassifier(nn.Module):
    """A small CNN classifier for (n, 1, 28, 28) grey images (or ``config.input_shape``) whose penultimate
    layer is a feature map.

    conv 4×4 stride 2 (``width``) → ReLU → conv 4×4 stride 2 (2·``width``) → ReLU → linear
    (``feature_dim``) → ReLU → linear (``num_classes``). Strided convolutions instead of
    conv + max-pool: 3× cheaper per epoch on a CPU, so more epochs fit the time budget. The
    features are the penultimate layer *before* its ReLU: a dead ReLU unit would be a constant
    feature and make the covariance singular, and the pre-activations are closer to Gaussian,
    which is what the Fréchet distance assumes.
    """

    name = "domain"

    def __init__(self, config: DomainClassifierConfig = DomainClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        width, side = config.width, config.size // 4
        self.body = nn.Sequential(
            nn.Conv2d(config.in_channels, width, 4, stride=2, padding=1), nn.ReLU(),  # 28 → 14 (32 → 16)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),           # 14 → 7 (16 → 8)
            nn.Flatten(), nn.Linear(2 * width * side * side, config.feature_dim),
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(config.feature_dim, config.num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (n, num_classes)."""
        return self.head(self.body(images))

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Penultimate-layer features (n, feature_dim) float64 of images (n, 1, 28, 28) — or
        (n, *config.input_shape) — in [0, 1]."""
        shape = self.config.input_shape
        if images.ndim != 4 or tuple(images.shape[1:]) != shape:
            raise ValueError(f"the domain classifier takes (n, {', '.join(map(str, shape))}) images, "
                             f"got {tuple(images.shape)}")
        device = next(self.parameters()).device
        with torch.inference_mode():
            return self.body(images.to(device, torch.float32)).double().cpu().numpy()


def train_domain_classifier(images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                            test_images: np.ndarray | torch.Tensor, test_labels: np.ndarray | torch.Tensor,
                            config: DomainClassifierConfig = DomainClassifierConfig(), device: str = "auto",
                            cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train a :class:`DomainClassifier` (Adam, cross-entropy), or load it if trained before.

    ``images`` are uint8 (n, 28, 28) as :func:`~dvae_core.data.files.load_mnist_like` returns
    them, or floats (n, 1, 28, 28) in [0, 1]; labels are ints in [0, num_classes). With another
    ``config.input_shape`` (e.g. (3, 32, 32) for CIFAR-10) they are uint8 or float (n, *input_shape).

    Deterministic: the initialisation and the minibatch order come from ``config.seed`` (the
    caller's global torch RNG is left untouched), so a rerun on the same device and number of
    threads gives the same weights bit for bit; other thread counts change the float summation
    order and hence the last digits (test accuracy 89.3 % on one thread, 89.4 % on two).

    The weights are cached atomically (temp file + rename) at
    ``cache_dir / fid-classifier-<hash>.pt``, ``cache_dir`` defaulting to the run store; the hash
    covers the config *and* the data (train and test), so a classifier is never reused for other
    data. A cached file is read with ``torch.load(weights_only=True)``.

    Training time on a shared CPU: use one thread (``torch.set_num_threads(1)``) when another
    process is busy on the cores; two threads competing with it were 5× slower than one.

    Why this is not a model kind of :func:`dvae_core.train.train`: that loop trains generative models on
    unlabelled batches drawn i.i.d. by ``dataset.sample`` (``model.loss(x)``), and names a run by the hash
    of its recipe alone. The FID's feature network is a measuring instrument, not a model the book studies:
    it needs the labels, passes over one fixed labelled set in epochs (the accuracy it reports is on the
    test split), and must be keyed by a hash of the data as well as of the recipe, so that it is never
    reused for other images. Carrying labels through the loop's model contract (:class:`~dvae_core.train.
    TrainableModel`) for this one classifier would also change the committed classifier's weights, and with
    them every FID in the RAE chapter. The loop's shared pieces (device, allocator, atomic saves) are
    :mod:`dvae_core.infra`'s, as here.

    Returns a dict: ``model`` (eval mode, on ``device``), ``test_accuracy``, ``train_seconds``
    (of the original training), ``path`` and ``from_cache``.
    """
    images = _as_input_images(images, "images", config.input_shape)
    test_images = _as_input_images(test_images, "test_images", config.input_shape)
    labels = _as_labels(labels, images.shape[0], config.num_classes, "labels")
    test_labels = _as_labels(test_labels, test_images.shape[0], config.num_classes, "test_labels")
    device = resolve_device(device)
    recipe = config.recipe()
    fingerprint = hashlib.sha256(recipe.encode())
    for array in (images, labels, test_images, test_labels):
        fingerprint.update(array.numpy())
    store = Path(cache_dir) if cache_dir is not None else default_store()
    path = store / f"fid-classifier-{fingerprint.hexdigest()[:16]}.pt"

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = DomainClassifier(config)
    if path.exists():
        state = _load_classifier_state(path, recipe)
        model.load_state_dict(state["model"])
        model.to(device).eval()
        return {"model": model, "test_accuracy": state["test_accuracy"], "train_seconds": state["train_seconds"],
                "path": path, "from_cache": True}

    keep_freed_memory()  # as the training loop does
    start = time.perf_counter()
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    order = torch.Generator().manual_seed(config.seed)
    train_x, train_y = images.to(device), labels.to(device)
    for _ in range(config.epochs):
        permutation = torch.randperm(train_x.shape[0], generator=order).to(device)
        for batch in permutation.split(config.batch_size):
            loss = nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    train_seconds = time.perf_counter() - start
    test_accuracy = _accuracy(model, test_images, test_labels, device)

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "config": recipe,
                       "test_accuracy": test_accuracy, "train_seconds": train_seconds}, path)
    return {"model": model, "test_accuracy": test_accuracy, "train_seconds": train_seconds,
            "path": path, "from_cache": False}


def _accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    correct = 0
    with torch.inference_mode():
        for x, y in zip(images.split(1000), labels.split(1000)):
            correct += int((model(x.to(device)).argmax(dim=1).cpu() == y).sum())
    return correct / images.shape[0]


def _load_classifier_state(path: Path, recipe: str) -> dict[str, Any]:
    state = load_torch_file(path, "delete it to retrain", what="FID classifier cache")
    if not isinstance(state, dict) or not {"model", "config", "test_accuracy", "train_seconds"} <= state.keys():
        raise RuntimeError(f"{path} is not a cached FID classifier: delete it to retrain")
    if state["config"] != recipe:
        raise RuntimeError(f"{path} was trained with {state['config']}, not {recipe}: delete it to retrain")
    return state


def _as_input_images(images: np.ndarray | torch.Tensor, name: str,
                     shape: tuple[int, int, int] = (1, 28, 28)) -> torch.Tensor:
    tensor = torch.as_tensor(images)
    if tensor.dtype == torch.uint8:
        tensor = tensor.float().div(255.0)
    if tensor.ndim == 3 and shape[0] == 1:
        tensor = tensor[:, None]
    if tensor.ndim != 4 or tuple(tensor.shape[1:]) != shape or not tensor.is_floating_point():
        c, h, w = shape
        expected = f"uint8 ({'n, ' if c == 1 else f'n, {c}, '}{h}, {w}) or float (n, {c}, {h}, {w})"
        raise ValueError(f"{name} must be {expected}, got {tensor.dtype} {tuple(tensor.shape)}")
    _check_images(tensor, name)
    return tensor.to(torch.float32).contiguous()


def _as_labels(labels: np.ndarray | torch.Tensor, num_images: int, num_classes: int, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(labels).to(torch.int64)
    if tensor.shape != (num_images,):
        raise ValueError(f"{name} must have shape ({num_images},), got {tuple(tensor.shape)}")
    if tensor.numel() and (tensor.min() < 0 or tensor.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got [{int(tensor.min())}, {int(tensor.max())}]")
    return tensor.contiguous()


# ------------------------------------------------------------------------------ Inception

class InceptionFeatures:
    """The standard FID network: pool3 features (n, 2048) of the 2015 TensorFlow Inception-v3.

    Loads NVIDIA's TorchScript export ``inception-2015-12-05.pt`` (a direct translation of
    ``inception-2015-12-05.tgz``, the graph of TTUR's reference FID code), as StyleGAN2-ADA does:
    ``NVlabs/stylegan2-ada-pytorch``, ``metrics/frechet_inception_distance.py`` and
    ``metrics/metric_utils.py`` load it with ``torch.jit.load`` and call
    ``detector(images, return_features=True)`` on uint8 NCHW batches in [0, 255] at the dataset's
    own resolution, repeating grey images to 3 channels first. The module resizes to 299×299 and
    normalises (x − 128)/128 itself — clean-fid's ``InceptionV3W`` (``cleanfid/
    inception_torchscript.py``) relies on that when called with ``resize_inside=True`` — so
    nothing is resized here. Images in [0, 1] are mapped to uint8 by rounding x·255, which for
    [−1, 1] generator outputs is exactly StyleGAN's ``(x·127.5 + 128).clamp(0, 255)`` truncation.

    The file is never downloaded: put it at ``$DVAE_DATA_DIR/inception-2015-12-05.pt``
    (``DVAE_DATA_DIR`` defaults to ./data) or pass ``path``.
    """

    name = "inception"

    def __init__(self, path: str | os.PathLike | None = None, device: str = "auto") -> None:
        self.path = inception_weights_path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"Inception weights {INCEPTION_FILENAME} not found at {str(self.path)!r}. Get NVIDIA's TorchScript "
                f"export from {INCEPTION_URL} (this code never downloads) and put it at "
                f"${DATA_DIR_ENV}/{INCEPTION_FILENAME} ({DATA_DIR_ENV} defaults to ./data), "
                f"or pass InceptionFeatures(path=...)."
            )
        self.device = resolve_device(device)
        self.network = torch.jit.load(str(self.path), map_location=self.device).eval()

    def features(self, images: torch.Tensor) -> np.ndarray:
        """pool3 features (n, 2048) float64 of images (n, 1 or 3, H, W) in [0, 1]."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"Inception takes (n, 1 or 3, H, W) images, got {tuple(images.shape)}")
        images = images.to(self.device)
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        pixels = (images * 255).round().clamp(0, 255).to(torch.uint8)
        with torch.inference_mode():
            return self.network(pixels, return_features=True).double().cpu().numpy()


# ------------------------------------------------------------------------------ checks

def _check_images(images: Any, name: str = "images") -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor (n, C, H, W) or an iterable of them, "
                        f"got {type(images).__name__}")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"{name} must be a float tensor (n, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1], got [{float(images.min()):.3g}, {float(images.max()):.3g}]; "
                         f"clamp decoder outputs first")


def _as_mean(mu: np.ndarray, name: str) -> np.ndarray:
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    if mu.ndim != 1:
        raise ValueError(f"{name} must be a vector (d,), got shape {mu.shape}")
    return mu


def _as_covariance(sigma: np.ndarray, name: str) -> np.ndarray:
    sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1]:
        raise ValueError(f"{name} must be a square matrix (d, d), got shape {sigma.shape}")
    return sigma
