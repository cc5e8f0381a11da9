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
from .files import FASHION_MNIST_DIR, _missing_file, default_data_path, load_mnist_like

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


# --------------------------------------------------------------------------- the standard files of other image sets
# Each loader reads one published file format into an ImageSet; a missing file says where it comes from. Nothing
# is downloaded. Default locations are under $DVAE_DATA_DIR (default ./data).

def _require(path: str | os.PathLike, what: str, where: str) -> str | os.PathLike:
    if not os.path.isfile(path):
        raise _missing_file(path, what, where, "put it there or pass its location")
    return path


BINARIZED_MNIST_SPLITS = {"train": "train", "valid": "valid", "test": "test"}


def binarized_mnist(split: str = "train", root: str | os.PathLike | None = None, limit: int | None = None) -> ImageSet:
    """Larochelle & Murray's (2011) statically binarised MNIST: ``binarized_mnist_{train,valid,test}.amat``, one
    image per line as 784 space-separated 0/1 values (50,000 / 10,000 / 10,000 images, no labels). The VLAE
    paper's Table 1 data set."""
    if split not in BINARIZED_MNIST_SPLITS:
        raise ValueError(f"split must be one of {sorted(BINARIZED_MNIST_SPLITS)}, got {split!r}")
    root = root if root is not None else default_data_path("binarized_mnist")
    path = _require(os.path.join(root, f"binarized_mnist_{split}.amat"), "binarised MNIST",
                    "Larochelle's binarized_mnist_{train,valid,test}.amat files (Larochelle & Murray 2011)")
    pixels = np.loadtxt(path, dtype=np.uint8, max_rows=limit, ndmin=2)
    if pixels.shape[1] != 784 or pixels.max(initial=0) > 1:
        raise ValueError(f"{path}: expected rows of 784 values in {{0, 1}}, got {pixels.shape[1]} columns")
    return ImageSet(pixels.reshape(-1, 28, 28) * 255, np.zeros(len(pixels), dtype=np.int64), f"binarized_mnist/{split}")


def omniglot(split: str = "train", path: str | os.PathLike | None = None, binarize: str | None = "static",
             limit: int | None = None) -> ImageSet:
    """Omniglot at 28×28 as Burda et al. (2016, IWAE) published it: ``chardata.mat`` with ``data`` / ``testdata``
    (784 × N grey levels in [0, 1], each column an image flattened in MATLAB's column-major order) and
    ``target`` / ``testtarget`` (50 × N one-hot alphabets, used as labels). 24,345 training and 8,070 test
    images; the VLAE paper binarises them (static here by default, ``binarize="dynamic"`` for training)."""
    from scipy.io import loadmat

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = _require(path or default_data_path("chardata.mat"), "Omniglot chardata.mat",
                    "the IWAE repository's datasets/OMNIGLOT/chardata.mat (Burda, Grosse & Salakhutdinov 2016)")
    mat = loadmat(path)
    data, target = (mat["data"], mat["target"]) if split == "train" else (mat["testdata"], mat["testtarget"])
    images = data.T.reshape(-1, 28, 28).transpose(0, 2, 1)  # column-major images → row-major
    labels = np.argmax(target, axis=0)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageSet(np.round(images * 255).astype(np.uint8), labels, f"omniglot/{split}", binarize=binarize)


def caltech_silhouettes(split: str = "train", path: str | os.PathLike | None = None,
                        limit: int | None = None) -> ImageSet:
    """Caltech-101 Silhouettes at 28×28 (Marlin et al. 2010): ``caltech101_silhouettes_28_split1.mat`` with
    ``{train,val,test}_data`` (N × 784 binary, rows flattened in MATLAB's column-major order) and
    ``{train,val,test}_labels`` (1-based classes of 101). 4,100 / 2,264 / 2,307 images."""
    from scipy.io import loadmat

    keys = {"train": "train", "valid": "val", "test": "test"}
    if split not in keys:
        raise ValueError(f"split must be one of {sorted(keys)}, got {split!r}")
    path = _require(path or default_data_path("caltech101_silhouettes_28_split1.mat"),
                    "Caltech-101 Silhouettes", "Benjamin Marlin's Caltech 101 Silhouettes page (28×28, split 1)")
    mat = loadmat(path)
    data, labels = mat[f"{keys[split]}_data"], np.asarray(mat[f"{keys[split]}_labels"]).reshape(-1) - 1
    images = data.reshape(-1, 28, 28).transpose(0, 2, 1)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageSet((images > 0).astype(np.uint8) * 255, labels, f"caltech_silhouettes/{split}")


CIFAR10_RECORD = 1 + 3 * 32 * 32


def cifar10(split: str = "train", root: str | os.PathLike | None = None, limit: int | None = None) -> ImageSet:
    """CIFAR-10 (Krizhevsky 2009) in its *binary* distribution, ``cifar-10-batches-bin/``: ``data_batch_1..5.bin``
    (train) and ``test_batch.bin``, each a sequence of 3,073-byte records: the label, then 1,024 red, 1,024 green
    and 1,024 blue bytes of a 32×32 image in row-major order. (The binary files need no unpickling.)"""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = root if root is not None else default_data_path("cifar-10-batches-bin")
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    records = []
    for name in names:
        path = _require(os.path.join(root, name), f"CIFAR-10 {name}", "the CIFAR-10 binary version (Krizhevsky 2009)")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size % CIFAR10_RECORD:
            raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {CIFAR10_RECORD}-byte records")
        records.append(raw.reshape(-1, CIFAR10_RECORD))
    table = np.concatenate(records)[:limit]
    return ImageSet(table[:, 1:].reshape(-1, 3, 32, 32), table[:, 0].astype(np.int64), f"cifar10/{split}")
