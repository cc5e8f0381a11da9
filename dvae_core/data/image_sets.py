"""Finite labelled image sets (Fashion-MNIST, MNIST, any MNIST-format files) for the RAE and VLAE chapters.

Unlike the factor datasets, these have no generative grid: a batch is a uniform draw of rows.
``ImageSet.sample(n, rng)`` has the factor datasets' signature, so the one training loop trains on
either, and the data stream stays a pure function of the run's seed.

Options the two chapters need:

* ``pad_to``: zero-pad 28×28 images to 32×32 (the RAE authors' MNIST loader does this so four
  stride-2 convolutions divide the image evenly);
* ``binarize``: ``"static"`` (one fixed Bernoulli draw per image, seeded, the binarised-MNIST
  protocol of the VLAE paper's Table 1) or ``"dynamic"`` (a fresh draw every batch, its Table 2),
  see :mod:`dvae_core.data.binarize`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .binarize import binarize_static
from .files import FASHION_MNIST_DIR, load_mnist_like

BINARIZE = (None, "static", "dynamic")
#: Seed of the static binarisation: fixed, so "statically binarised Fashion-MNIST" is one dataset.
STATIC_BINARIZATION_SEED = 0


class ImageSet:
    """One split of a labelled image set as float32 (n, C, H, W) in [0, 1] (or {0, 1}), kept in memory."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, name: str, pad_to: int | None = None,
                 binarize: str | None = None, binarize_seed: int = STATIC_BINARIZATION_SEED):
        if binarize not in BINARIZE:
            raise ValueError(f"binarize must be one of {BINARIZE}, got {binarize!r}")
        pixels = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
        if pixels.ndim == 3:
            pixels = pixels[:, None]
        if pad_to is not None:
            pixels = pad_images(pixels, pad_to)
        if binarize == "static":
            pixels = binarize_static(pixels, binarize_seed)
        self.data = pixels
        self.labels = np.asarray(labels, dtype=np.int64)
        self.name = name
        self.binarize = binarize
        self.image_shape = tuple(pixels.shape[1:])
        self.num_classes = int(self.labels.max()) + 1 if len(self.labels) else 0

    def __len__(self) -> int:
        return len(self.data)

    def images(self, index: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Rows ``index``; dynamic binarisation draws its bits from ``rng`` (a fixed stream if None)."""
        batch = self.data[torch.as_tensor(np.asarray(index, dtype=np.int64))]
        if self.binarize == "dynamic":
            rng = rng if rng is not None else np.random.default_rng(STATIC_BINARIZATION_SEED)
            batch = (torch.from_numpy(rng.random(batch.shape, dtype=np.float32)) < batch).float()
        return batch

    def sample(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
        """A uniform batch of ``n`` rows (with replacement): ``(images, labels)``."""
        index = rng.integers(0, len(self), n)
        return self.images(index, rng), self.labels[index]

    def __repr__(self) -> str:
        return f"ImageSet({self.name}: {len(self)} images {self.image_shape}, binarize={self.binarize})"


def pad_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad (n, C, H, W) images symmetrically to ``size``×``size``."""
    h, w = images.shape[-2:]
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}×{w} images to {size}×{size}")
    top, left = (size - h) // 2, (size - w) // 2
    return torch.nn.functional.pad(images, (left, size - w - left, top, size - h - top))


def mnist_files(root: str | os.PathLike = FASHION_MNIST_DIR, split: str = "train", pad_to: int | None = None,
                binarize: str | None = None, limit: int | None = None, name: str | None = None) -> ImageSet:
    """An MNIST-format split (idx files in ``root``) as an :class:`ImageSet`; ``limit`` keeps the first rows."""
    images, labels = load_mnist_like(root, split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageSet(images, labels, name or f"{os.path.basename(os.fspath(root).rstrip('/'))}/{split}", pad_to,
                    binarize)


def fashion_mnist(split: str = "train", pad_to: int | None = None, binarize: str | None = None,
                  limit: int | None = None, root: str | os.PathLike = FASHION_MNIST_DIR) -> ImageSet:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from Debian's ``dataset-fashion-mnist`` (or ``root``)."""
    return mnist_files(root, split, pad_to, binarize, limit, name=f"fashion_mnist/{split}")
