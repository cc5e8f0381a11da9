"""Finite labelled image sets (Fashion-MNIST, MNIST-format files, CelebA, ...) for the RAE and VLAE chapters.

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
from .files import FASHION_MNIST_DIR, _missing_file, default_data_path, load_mnist_like, reading_file

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

    def on(self, device: torch.device | str | None) -> torch.Tensor:
        """The whole split on ``device``, copied there once and kept (None or the CPU: :attr:`data` itself)."""
        device = torch.device("cpu") if device is None else torch.device(device)
        if device.type == "cpu":
            return self.data
        copies = self.__dict__.setdefault("_device_copies", {})
        if device not in copies:
            copies[device] = self.data.to(device)
        return copies[device]

    def images(self, index: np.ndarray, rng: np.random.Generator | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
        """Rows ``index``, on ``device`` (the split is kept there: :meth:`on`); dynamic binarisation draws its
        bits from ``rng`` (a fixed stream if None), on the CPU so that every device sees the same bits."""
        data = self.on(device)
        batch = data[torch.as_tensor(np.asarray(index, dtype=np.int64)).to(data.device, non_blocking=True)]
        if self.binarize == "dynamic":
            rng = rng if rng is not None else np.random.default_rng(STATIC_BINARIZATION_SEED)
            bits = torch.from_numpy(rng.random(batch.shape, dtype=np.float32)).to(data.device, non_blocking=True)
            batch = (bits < batch).float()
        return batch

    def sample(self, n: int, rng: np.random.Generator,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """A uniform batch of ``n`` rows (with replacement): ``(images, labels)``, the images on ``device``."""
        index = rng.integers(0, len(self), n)
        return self.images(index, rng, device), self.labels[index]

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
    with reading_file(path, ".amat", "the dataset's 'root' parameter (or $DVAE_DATA_DIR)"):
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
    with reading_file(path, "MATLAB .mat"):  # a .mat of other arrays: KeyError, also reported as the wrong file
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
    with reading_file(path, "MATLAB .mat"):
        mat = loadmat(path)
        data, labels = mat[f"{keys[split]}_data"], np.asarray(mat[f"{keys[split]}_labels"]).reshape(-1) - 1
    images = data.reshape(-1, 28, 28).transpose(0, 2, 1)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageSet((images > 0).astype(np.uint8) * 255, labels, f"caltech_silhouettes/{split}")


CIFAR10_RECORD = 1 + 3 * 32 * 32
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}


def cifar10(split: str = "train", root: str | os.PathLike | None = None, limit: int | None = None) -> ImageSet:
    """CIFAR-10 (Krizhevsky 2009) in its *binary* distribution, ``cifar-10-batches-bin/``: ``data_batch_1..5.bin``
    (train) and ``test_batch.bin``, each a sequence of 3,073-byte records: the label, then 1,024 red, 1,024 green
    and 1,024 blue bytes of a 32×32 image in row-major order. (The binary files need no unpickling.)"""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = root if root is not None else default_data_path("cifar-10-batches-bin")
    records = []
    for name in CIFAR10_FILES[split]:
        path = _require(os.path.join(root, name), f"CIFAR-10 {name}", "the CIFAR-10 binary version (Krizhevsky 2009)")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size % CIFAR10_RECORD:
            raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {CIFAR10_RECORD}-byte records")
        records.append(raw.reshape(-1, CIFAR10_RECORD))
    table = np.concatenate(records)[:limit]
    return ImageSet(table[:, 1:].reshape(-1, 3, 32, 32), table[:, 0].astype(np.int64), f"cifar10/{split}")


# --------------------------------------------------------------------------- CelebA (aligned and cropped, 178×218)
CELEBA_DIRNAME = "celeba"
CELEBA_IMAGES = "img_align_celeba"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_WHERE = (f"the official CelebA page {CELEBA_URL} (its Google Drive folder: 'Align&Cropped Images' → "
                f"Img/{CELEBA_IMAGES}.zip, and Eval/{CELEBA_PARTITION})")


def _celeba_root(root: str | os.PathLike | None) -> str:
    root = os.fspath(root if root is not None else default_data_path(CELEBA_DIRNAME))
    # Accept the folder that holds celeba/ (torchvision's layout) as well as the CelebA folder itself.
    nested = os.path.join(root, CELEBA_DIRNAME)
    if not os.path.isdir(os.path.join(root, CELEBA_IMAGES)) and os.path.isdir(os.path.join(nested, CELEBA_IMAGES)):
        return nested
    return root


def _celeba_missing(path: str, what: str, root: str) -> FileNotFoundError:
    return _missing_file(path, what, CELEBA_WHERE,
                         f"unzip {CELEBA_IMAGES}.zip so that {os.path.join(root, CELEBA_IMAGES, '000001.jpg')!r} "
                         f"exists, put {CELEBA_PARTITION} next to that folder, and pass the folder holding both as "
                         f"celeba(root=...) / make_dataset('celeba', root=...) or use $DVAE_DATA_DIR/celeba "
                         f"(default ./data/celeba)")


def read_celeba_partition(path: str | os.PathLike) -> list[tuple[str, int]]:
    """``(file name, partition)`` per line of ``list_eval_partition.txt`` ("000001.jpg 0"), in file order."""
    entries = []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}, line {number}: expected '<image>.jpg <0|1|2>', got {line.strip()!r}")
            entries.append((fields[0], int(fields[1])))
    return entries


def load_celeba_image(path: str | os.PathLike, resolution: int = 64, crop: int = 140) -> np.ndarray:
    """One CelebA JPEG as uint8 (3, R, R): the central ``crop``×``crop`` square (offsets ``(W - crop) // 2``,
    ``(H - crop) // 2``: 19 and 39 for 140 on 178×218), resized to ``resolution`` with Lanczos (PIL's old
    ``ANTIALIAS``)."""
    from PIL import Image  # pillow comes with matplotlib, pinned in requirements.txt

    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        if crop > min(width, height):
            raise ValueError(f"{path}: a {crop}×{crop} crop does not fit a {width}×{height} image")
        left, top = (width - crop) // 2, (height - crop) // 2
        image = image.crop((left, top, left + crop, top + crop))
        if crop != resolution:
            image = image.resize((resolution, resolution), Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def _save_atomic(path: str, array: np.ndarray) -> None:
    """``np.save`` to a temporary file in the same folder, then rename: readers never see half a file."""
    import tempfile
    import warnings

    try:
        handle, temp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".celeba-", suffix=".npy.tmp")
    except OSError as err:  # a read-only data folder: work without a cache
        warnings.warn(f"cannot write the CelebA cache {path!r} ({err}); every call will decode the JPEGs again")
        return
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, array)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def _read_cache(path: str, count: int, resolution: int) -> np.ndarray | None:
    """The first ``count`` rows of a cache file if it holds at least that many images of the right shape."""
    if not os.path.isfile(path):
        return None
    try:
        cached = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if cached.dtype != np.uint8 or cached.shape[1:] != (3, resolution, resolution) or len(cached) < count:
        return None
    return np.array(cached[:count])


def celeba(split: str = "train", root: str | os.PathLike | None = None, resolution: int = 64, crop: int = 140,
           limit: int | None = None) -> ImageSet:
    """CelebA (Liu, Luo, Wang & Tang 2015), the aligned-and-cropped release, as (n, 3, R, R) float32 in [0, 1].

    Reads the official layout in ``root`` (default ``$DVAE_DATA_DIR/celeba``; a folder holding ``celeba/`` also
    works): ``img_align_celeba/000001.jpg`` … ``202599.jpg`` (178×218 JPEGs) and ``list_eval_partition.txt``
    (lines ``000001.jpg 0``; 0 = train, 1 = valid, 2 = test: 162,770 / 19,867 / 19,962 images). A split is its
    images in the partition file's order; ``limit`` keeps the first ``limit`` of them. There are no labels
    (all zero).

    Preprocessing: the central ``crop``×``crop`` square, resized to ``resolution``×``resolution`` with PIL's
    Lanczos filter. The default 140 → 64 is the "closecrop" of the WAE code (Tolstikhin et al. 2018,
    ``datahandler.py``: a centred 140×140 box, ``resize((64, 64), ANTIALIAS)``), the 64×64 CelebA whose networks
    the RAE paper (Ghosh et al. 2020, same MPI group) builds on; the released RAE code itself reads an already-made
    64×64 copy and does not say how it was made, so the crop is a parameter. Other papers use ``crop=148``
    (e.g. two-stage VAE) or ``crop=108`` (DCGAN-style).

    Cache: decoding the 162,770 training JPEGs takes minutes on one core, so the decoded uint8 pixels are
    saved next to the data as ``celeba_{split}_{R}px_crop{crop}_{limit or 'all'}.npy`` (written to a temporary
    file and renamed, so a crash or a concurrent run never leaves half a file), and a later call with the same
    (split, resolution, crop, limit) reads that instead (a cache of the whole split also serves any ``limit``).
    Delete the file to decode again. A read-only data folder only loses the cache (a warning).

    Memory: the returned set holds float32, 48 kB per 64×64 image: 8 GB for the whole training split; the cache
    holds uint8 (2 GB).

    Raises ValueError for an unknown split, FileNotFoundError naming what is missing (the image folder, the
    partition file or one image) and where to get CelebA.
    """
    if split not in CELEBA_SPLITS:
        raise ValueError(f"split must be one of {sorted(CELEBA_SPLITS)}, got {split!r}")
    if resolution < 1 or crop < 1:
        raise ValueError(f"resolution and crop must be >= 1, got resolution={resolution}, crop={crop}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    root = _celeba_root(root)
    folder, partition = os.path.join(root, CELEBA_IMAGES), os.path.join(root, CELEBA_PARTITION)
    if not os.path.isdir(folder):
        raise _celeba_missing(folder, f"The CelebA image folder {CELEBA_IMAGES}/", root)
    if not os.path.isfile(partition):
        raise _celeba_missing(partition, f"The CelebA partition file {CELEBA_PARTITION}", root)
    names = [name for name, part in read_celeba_partition(partition) if part == CELEBA_SPLITS[split]][:limit]

    def cache_path(count: int | None) -> str:
        return os.path.join(root, f"celeba_{split}_{resolution}px_crop{crop}_{'all' if count is None else count}.npy")

    pixels = _read_cache(cache_path(limit), len(names), resolution)
    if pixels is None and limit is not None:
        pixels = _read_cache(cache_path(None), len(names), resolution)
    if pixels is None:
        pixels = np.empty((len(names), 3, resolution, resolution), dtype=np.uint8)
        for i, name in enumerate(names):
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise _celeba_missing(path, f"The CelebA image {name} (listed in {CELEBA_PARTITION})", root)
            pixels[i] = load_celeba_image(path, resolution, crop)
        _save_atomic(cache_path(limit), pixels)
    return ImageSet(pixels, np.zeros(len(pixels), dtype=np.int64), f"celeba/{split}")
