"""Batched rendering + encoding shared by the metrics.

Every metric sees a trained model only through an ``encode`` callable: a torch float32 image
batch ``(n, C, H, W)`` in, codes ``(n, d)`` out, as a numpy array or a torch tensor (any device).
It should be deterministic, e.g. the posterior mean, which is the representation
disentanglement_lib scores (``representation_function`` = mean of q(z|x)). Calls are made under
``torch.no_grad()``; putting the model in ``eval()`` mode and moving images to its device is the
callable's job.

The metrics render and encode many small groups (64-image votes) at once, in calls of at most
``max_images_per_call`` images. The chunking never touches the random stream (all factors are
sampled first), so results do not depend on ``max_images_per_call``.
"""

from __future__ import annotations

from typing import Callable, Union

import numpy as np
import torch

from dvae_core.data.base import FactorDataset

Codes = Union[np.ndarray, torch.Tensor]
Encoder = Callable[[torch.Tensor], Codes]

#: Images rendered and encoded per ``encode`` call (64 FactorVAE votes of 32 images, or 16 of 64
#: ×2 for the beta-VAE pairs). Small enough for a 64×64×3 batch plus a conv encoder on CPU.
DEFAULT_MAX_IMAGES_PER_CALL = 2048


def to_numpy(x: Codes, name: str = "array") -> np.ndarray:
    """A numpy view/copy of a numpy array or a (possibly CUDA, possibly grad-tracking) tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_codes(codes: Codes, num_rows: int | None = None, name: str = "codes") -> np.ndarray:
    """``codes`` as a finite float64 (n, d) array, with a clear error for anything else."""
    arr = to_numpy(codes, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {arr.shape}"
                         + (" (use .reshape(-1, 1) for a single dimension)" if arr.ndim == 1 else ""))
    if num_rows is not None and arr.shape[0] != num_rows:
        raise ValueError(f"{name}: encode returned {arr.shape[0]} rows for {num_rows} images")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one dimension, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contain NaN or inf")
    return arr


def encode_images(encode: Encoder, images: torch.Tensor,
                  max_images_per_call: int = DEFAULT_MAX_IMAGES_PER_CALL) -> np.ndarray:
    """Codes (n, d) float64 for an image batch, encoded ``max_images_per_call`` at a time."""
    _check_positive_int(max_images_per_call, "max_images_per_call")
    out = []
    with torch.no_grad():
        for start in range(0, images.shape[0], max_images_per_call):
            chunk = images[start:start + max_images_per_call]
            out.append(as_codes(encode(chunk), chunk.shape[0], "encode(images)"))
    return _concat(out)


def encode_factors(dataset: FactorDataset, encode: Encoder, factors: np.ndarray,
                   max_images_per_call: int = DEFAULT_MAX_IMAGES_PER_CALL) -> np.ndarray:
    """Render ``factors`` (n, K) with ``dataset.images`` and encode them, chunk by chunk.

    Never holds more than ``max_images_per_call`` images at once. Returns float64 (n, d).
    """
    _check_positive_int(max_images_per_call, "max_images_per_call")
    factors = np.asarray(factors, dtype=np.int64)
    out = []
    with torch.no_grad():
        for start in range(0, factors.shape[0], max_images_per_call):
            chunk = factors[start:start + max_images_per_call]
            images = dataset.images(chunk)
            out.append(as_codes(encode(images), chunk.shape[0], "encode(images)"))
    return _concat(out)


def sample_codes(dataset: FactorDataset, encode: Encoder, num_points: int, rng: np.random.Generator,
                 max_images_per_call: int = DEFAULT_MAX_IMAGES_PER_CALL) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` uniform grid points and their codes: ``(codes (n, d), factors (n, K))``.

    The input MIG wants; disentanglement_lib scores MIG on ``num_train = 10000`` such points.
    """
    _check_positive_int(num_points, "num_points")
    factors = dataset.sample_factors(num_points, rng)
    return encode_factors(dataset, encode, factors, max_images_per_call), factors


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        raise ValueError("nothing to encode (0 points)")
    dims = {p.shape[1] for p in parts}
    if len(dims) != 1:
        raise ValueError(f"encode returned codes of varying width {sorted(dims)}")
    return np.concatenate(parts, axis=0)


def _check_positive_int(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
