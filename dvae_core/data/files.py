"""Loaders for the real dataset files, in their published formats. Nothing is ever downloaded.

* dSprites (Matthey et al. 2017, https://github.com/deepmind/dsprites-dataset):
  ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` with ``imgs`` (737280, 64, 64) uint8 in {0, 1},
  ``latents_values`` and ``latents_classes`` (737280, 6) over (color, shape, scale, orientation,
  posX, posY); the single-valued ``color`` column is dropped. Rows are in ravel order (posY fastest).
* 3dshapes (Burgess & Kim 2018, https://github.com/deepmind/3d-shapes): ``3dshapes.h5`` with
  ``images`` (480000, 64, 64, 3) uint8 and ``labels`` (480000, 6) float over (floor_hue, wall_hue,
  object_hue, scale, shape, orientation), orientation fastest.
* IDX (LeCun et al., the MNIST file format, also used by Fashion-MNIST, Xiao, Rasul & Vollgraf 2017):
  two zero bytes, a dtype code, the number of dimensions, then each dimension as a big-endian uint32,
  then the data in big-endian order. Files may be gzip-compressed.

A file that is there but not in its format (truncated, damaged, another file under its name) fails with a
:class:`DataFileError` that names it and the fix, never with a reader's message that names no file (or
numpy's advice to load it with ``allow_pickle``).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from dvae_core.infra import short_cause

from .base import FactorDataset

DSPRITES_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
SHAPES3D_FILENAME = "3dshapes.h5"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
# Where default file paths are looked up: $DVAE_DATA_DIR, else ./data relative to the working dir.
DATA_DIR_ENV = "DVAE_DATA_DIR"

DSPRITES_FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
SHAPES3D_FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")


def default_data_path(filename: str) -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "data")) / filename


def _missing_file(path: Path, what: str, where: str, how: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} not found at {str(path)!r}. Get it from {where} (this code never downloads), then {how}."
    )


class DataFileError(OSError):
    """A data file that is there but cannot be read in its format: truncated, damaged, or another file under its
    name. An OSError, as a missing file is: the run cannot start until the file is replaced."""


#: Where a loader's file comes from, for the fix of a damaged one: most loaders take ``path`` and look in
#: ``$DVAE_DATA_DIR`` by default.
PATH_PARAMETER = f"the dataset's 'path' parameter (or ${DATA_DIR_ENV})"


def damaged_file(path: str | os.PathLike, kind: str, cause: str, where: str = PATH_PARAMETER) -> DataFileError:
    """The error for a data file ``path`` that is not a valid ``kind`` file (``cause``: why, in a few words);
    ``where``: what points the loader at its file."""
    return DataFileError(f"{path} is not a valid {kind} file ({cause}): download it again, or point {where} at "
                         f"the right file")


#: What the readers under :func:`reading_file` raise for bytes that are not their format (gzip's BadGzipFile and
#: h5py's "file signature not found" are OSErrors; numpy and scipy raise ValueError, zipfile BadZipFile).
_FORMAT_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, struct.error)


@contextlib.contextmanager
def reading_file(path: str | os.PathLike, kind: str, where: str = PATH_PARAMETER):
    """Read a data file inside this block: a reader's error for bytes that are not ``kind`` (which names no file,
    and from numpy advises ``allow_pickle``) becomes one :class:`DataFileError` naming ``path`` and the fix. A
    file that is missing or not readable (permissions) keeps its own error; checks of the file's contents that
    name the file themselves belong outside the block."""
    try:
        yield
    except (FileNotFoundError, PermissionError, DataFileError):
        raise
    except _FORMAT_ERRORS as err:
        raise damaged_file(path, kind, short_cause(err), where) from None


def _read_npz_member_header(archive: zipfile.ZipFile, member: str):
    """Open one .npy member of an .npz and return (open stream, shape, fortran_order, dtype)."""
    stream = archive.open(member)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    return stream, shape, fortran_order, dtype


class DSpritesNPZ(FactorDataset):
    """The real dSprites file as a :class:`FactorDataset` (factors shape, scale, orientation, pos_x, pos_y).

    The grid is read from ``latents_classes`` (so a smaller file in the same format works too) and
    checked to be in ravel order, i.e. ``factors_to_index`` is the row number. Images are served as
    (n, 1, H, W) float32 in {0, 1}.

    Memory: the published archive is compressed (3 GB of pixels in 26 MB), which rules out mmap, so
    ``imgs`` is streamed once and kept bit-packed (1/8 of the size: ~380 MB for the full file) and
    unpacked per batch. If the member is stored uncompressed (``np.savez``), it is memory-mapped.

    Args:
        path: the .npz file; default ``$DVAE_DATA_DIR/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``
            (``DVAE_DATA_DIR`` defaults to ``./data``).
    """

    name = "dsprites_npz"
    factor_names = DSPRITES_FACTOR_NAMES

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_data_path(DSPRITES_FILENAME)
        if not self.path.is_file():
            raise _missing_file(
                self.path,
                "The dSprites file",
                f"https://github.com/deepmind/dsprites-dataset ({DSPRITES_FILENAME})",
                f"pass its location as DSpritesNPZ(path=...) / make_dataset('dsprites_npz', path=...) "
                f"or put it in ${DATA_DIR_ENV} (default ./data)",
            )
        if not zipfile.is_zipfile(self.path):  # np.load would read any other bytes as a pickle, and refuse it
            raise damaged_file(self.path, ".npz", "not a zip archive")
        with reading_file(self.path, ".npz"), np.load(self.path) as archive:
            members = set(archive.files)
            latents = {key: archive[key] for key in ("latents_classes", "latents_values") if key in members}
        missing = {"imgs", "latents_classes", "latents_values"} - members
        if missing:
            raise ValueError(f"{self.path}: not a dSprites file, missing keys {sorted(missing)}")
        for key, array in latents.items():  # np.load returns a member that is not .npy as its raw bytes
            if not isinstance(array, np.ndarray) or array.ndim != 2:
                raise damaged_file(self.path, ".npz", f"{key} is not a 2-d .npy array")
        # Drop column 0 ('color', a single value in dSprites).
        classes = latents["latents_classes"][:, 1:].astype(np.int64)
        values = np.asarray(latents["latents_values"], dtype=np.float64)[:, 1:]
        self.factor_sizes = tuple(int(c) + 1 for c in classes.max(axis=0))
        self._verify_file_order(classes)
        # The value of every class, read from the file (the first row holding that class).
        self.factor_values = tuple(
            values[np.unique(classes[:, k], return_index=True)[1], k] for k in range(classes.shape[1])
        )
        self._packed: np.ndarray | None = None
        self._mapped: np.ndarray | None = None
        self._load_images()

    def _verify_file_order(self, classes: np.ndarray) -> None:
        n_rows = classes.shape[0]
        if n_rows != len(self):
            raise ValueError(
                f"{self.path}: {n_rows} rows but latents_classes spans a grid of {self.factor_sizes} "
                f"= {len(self)} points; not a full factor grid"
            )
        # A few rows spread over the file, both ends included, are enough to catch a reordering.
        probe = np.unique(np.linspace(0, n_rows - 1, 257).astype(np.int64))
        if not np.array_equal(self.factors_to_index(classes[probe]), probe):
            raise ValueError(f"{self.path}: rows are not in ravel order of latents_classes (posY fastest)")

    def _load_images(self) -> None:
        with zipfile.ZipFile(self.path) as archive:
            info = archive.getinfo("imgs.npy")
            with reading_file(self.path, ".npz"):
                stream, shape, fortran_order, dtype = _read_npz_member_header(archive, "imgs.npy")
            with stream:
                if len(shape) != 3 or shape[0] != len(self) or fortran_order or dtype.itemsize != 1:
                    raise ValueError(f"{self.path}: imgs must be (N, H, W) uint8 in C order, got {shape} {dtype}")
                self.image_shape = (1, int(shape[1]), int(shape[2]))
                if info.compress_type == zipfile.ZIP_STORED:
                    data_offset = self._stored_data_offset(info, stream)
                    self._mapped = np.memmap(self.path, dtype=dtype, mode="r", offset=data_offset, shape=shape)
                    return
                with reading_file(self.path, ".npz"):  # a cut or damaged member fails as it streams
                    self._packed = self._stream_packed(stream, shape)

    def _stored_data_offset(self, info: zipfile.ZipInfo, stream) -> int:
        # The local file header's name/extra lengths can differ from the central directory's.
        with open(self.path, "rb") as raw:
            raw.seek(info.header_offset)
            header = raw.read(30)
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
        return info.header_offset + 30 + name_length + extra_length + stream.tell()

    @staticmethod
    def _stream_packed(stream, shape: tuple[int, ...]) -> np.ndarray:
        n, height, width = shape
        row_bytes = height * width
        packed = np.empty((n, height, (width + 7) // 8), dtype=np.uint8)
        chunk = 8192
        for start in range(0, n, chunk):
            count = min(chunk, n - start)
            block = np.frombuffer(stream.read(count * row_bytes), dtype=np.uint8)
            if block.size != count * row_bytes:
                raise EOFError("imgs.npy is truncated")
            # dSprites pixels are 0/1; treat any non-zero as lit so a 0/255 copy also works.
            packed[start : start + count] = np.packbits(block.reshape(count, height, width) != 0, axis=-1)
        return packed

    def images(self, factors: np.ndarray) -> torch.Tensor:
        index = self.factors_to_index(factors)
        _, height, width = self.image_shape
        if self._mapped is not None:
            pixels = (np.asarray(self._mapped[index]) != 0).astype(np.float32)
        else:
            pixels = np.unpackbits(self._packed[index], axis=-1, count=width).astype(np.float32)
        return torch.from_numpy(pixels.reshape(-1, 1, height, width))


def read_h5_rows(dataset, index: np.ndarray) -> np.ndarray:
    """``dataset[index]`` for any integer index: h5py needs increasing unique indices (sort, read, unsort)."""
    index = np.asarray(index, dtype=np.int64)
    unique, inverse = np.unique(index, return_inverse=True)
    rows = dataset[unique] if unique.size else np.empty((0,) + dataset.shape[1:], dtype=dataset.dtype)
    return rows[inverse.reshape(-1)]


class Shapes3DH5(FactorDataset):
    """The real 3dshapes file as a :class:`FactorDataset`.

    Factors ``(floor_hue, wall_hue, object_hue, scale, shape, orientation)``; each factor's values are
    the sorted unique values of its ``labels`` column (10, 10, 10, 8, 4, 15 in the published file,
    but nothing here assumes them), and the rows are checked to be in ravel order of those classes
    (orientation fastest). Images are (n, 3, 64, 64) float32 in [0, 1].

    Args:
        path: the .h5 file; default ``$DVAE_DATA_DIR/3dshapes.h5`` (``DVAE_DATA_DIR`` defaults to ``./data``).
        in_memory: read all images into RAM once (5.9 GB for the published file) instead of per batch.
    """

    name = "shapes3d_h5"
    factor_names = SHAPES3D_FACTOR_NAMES

    # Labels are stored as floats; rounding before ``unique`` absorbs any representation noise.
    _LABEL_DECIMALS = 6

    def __init__(self, path: str | os.PathLike | None = None, in_memory: bool = False) -> None:
        import h5py  # only this loader needs it

        self.path = Path(path) if path is not None else default_data_path(SHAPES3D_FILENAME)
        if not self.path.is_file():
            raise _missing_file(
                self.path,
                "The 3dshapes file",
                "https://github.com/deepmind/3d-shapes (the Google Cloud bucket "
                "gs://3d-shapes/3dshapes.h5, https://storage.googleapis.com/3d-shapes/3dshapes.h5)",
                f"pass its location as Shapes3DH5(path=...) / make_dataset('shapes3d_h5', path=...) "
                f"or put it in ${DATA_DIR_ENV} (default ./data)",
            )
        with reading_file(self.path, ".h5"):
            self._file = h5py.File(self.path, "r")
        if "images" not in self._file or "labels" not in self._file:
            raise ValueError(f"{self.path}: not a 3dshapes file, needs datasets 'images' and 'labels'")
        with reading_file(self.path, ".h5"):
            labels = np.round(np.asarray(self._file["labels"], dtype=np.float64), self._LABEL_DECIMALS)
        if labels.ndim != 2 or labels.shape[1] != len(SHAPES3D_FACTOR_NAMES):
            raise ValueError(f"{self.path}: labels must be (N, 6), got {labels.shape}")
        self.factor_values = tuple(np.unique(labels[:, k]) for k in range(labels.shape[1]))
        self.factor_sizes = tuple(int(v.size) for v in self.factor_values)
        classes = np.stack([np.searchsorted(v, labels[:, k]) for k, v in enumerate(self.factor_values)], axis=1)
        if labels.shape[0] != len(self) or not np.array_equal(
            self.factors_to_index(classes), np.arange(labels.shape[0])
        ):
            raise ValueError(
                f"{self.path}: labels are not a full grid {self.factor_sizes} in ravel order (orientation fastest)"
            )
        images = self._file["images"]
        if images.ndim != 4 or images.shape[0] != len(self) or images.shape[3] != 3:
            raise ValueError(f"{self.path}: images must be (N, H, W, 3), got {images.shape}")
        self.image_shape = (3, int(images.shape[1]), int(images.shape[2]))
        self._in_memory = np.asarray(images) if in_memory else None

    def images(self, factors: np.ndarray) -> torch.Tensor:
        index = self.factors_to_index(factors)
        if self._in_memory is not None:
            pixels = self._in_memory[index]
        else:
            pixels = read_h5_rows(self._file["images"], index)
        return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)

    def close(self) -> None:
        self._file.close()

    # An open h5py handle cannot cross a process boundary (DataLoader workers): reopen on unpickle.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_file"]
        return state

    def __setstate__(self, state: dict) -> None:
        import h5py

        self.__dict__.update(state)
        self._file = h5py.File(self.path, "r")


# IDX dtype codes -> big-endian numpy dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected from its first bytes) into a native-endian array."""
    path = Path(path)
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    with reading_file(path, "gzip" if compressed else "IDX", "the dataset's 'root' parameter"), \
            opener(path, "rb") as stream:
        data = stream.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number {data[:4].hex() or '(empty file)'}")
    dtype = _IDX_DTYPES[data[2]]
    ndim = data[3]
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise ValueError(f"{path}: IDX header truncated")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header_end != expected:
        raise ValueError(f"{path}: IDX payload is {len(data) - header_end} bytes, header says {expected}")
    array = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


_IDX_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def _find_idx_file(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    return None


def load_mnist_like(
    root: str | os.PathLike = FASHION_MNIST_DIR, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) of an MNIST-format split (MNIST, Fashion-MNIST, ...).

    Looks for ``{train,t10k}-images-idx3-ubyte`` and ``{train,t10k}-labels-idx1-ubyte`` in ``root``,
    gzipped or not. The default root is where Debian's ``dataset-fashion-mnist`` package installs.
    """
    if split not in _IDX_SPLIT_PREFIX:
        raise ValueError(f"split must be one of {sorted(_IDX_SPLIT_PREFIX)}, got {split!r}")
    root = Path(root)
    prefix = _IDX_SPLIT_PREFIX[split]
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    found = [_find_idx_file(root, stem) for stem in stems]
    if None in found:
        missing = [stem for stem, path in zip(stems, found) if path is None]
        raise FileNotFoundError(
            f"MNIST-format files {missing} (optionally .gz) not found in {str(root)!r}. For Fashion-MNIST run "
            f"`apt-get install dataset-fashion-mnist` (installs into {FASHION_MNIST_DIR}), or put the four "
            f"files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            f"t10k-labels-idx1-ubyte (.gz or raw) in a directory and pass it as root=."
        )
    images, labels = read_idx(found[0]), read_idx(found[1])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{root}: images {images.shape} and labels {labels.shape} do not match")
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)
