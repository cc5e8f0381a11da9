"""Datasets with ground-truth factors, real-file loaders and binarisation.

``make_dataset(name, **kwargs)`` builds any registered :class:`FactorDataset`:

* ``"dsprites"`` -- :class:`DSprites`, procedural dSprites (kwargs: resolution, antialias, scale_values)
* ``"colored_sprites"`` -- :class:`ColoredSprites`, the Spatial Broadcast Decoder's coloured sprites
* ``"dsprites_npz"`` -- :class:`DSpritesNPZ`, the real dSprites file (kwarg: path)
* ``"shapes3d_h5"`` -- :class:`Shapes3DH5`, the real 3dshapes file (kwargs: path, in_memory)
* ``"shapes3d"`` -- :class:`Shapes3D`, procedural 3dshapes on the real grid (kwargs: resolution, antialias, cache)
* ``"chairs"`` -- :class:`ChairsFolder`, a local 3D Chairs folder (kwargs: root, resolution, grayscale, crop)
* ``"fashion_mnist"`` -- :class:`ImageSet`, Debian's Fashion-MNIST (kwargs: split, pad_to, binarize, limit, root)
* ``"mnist_files"`` -- :class:`ImageSet`, any MNIST-format idx files (kwargs: root, split, pad_to, binarize, limit)
* ``"binarized_mnist"``, ``"omniglot"``, ``"caltech_silhouettes"``, ``"cifar10"`` -- :class:`ImageSet` from those
  data sets' published files (the VLAE paper's binary benchmarks; CIFAR-10's binary version)
* ``"celeba"`` -- :class:`ImageSet`, CelebA's aligned JPEGs, centre-cropped and resized, decoded once into an .npy
  cache (kwargs: split, root, resolution, crop, limit; the RAE paper's CelebA 64×64)

The :class:`ImageSet` entries are labelled image sets without a factor grid (RAE and VLAE chapters); they share
``sample(n, rng)`` with the factor datasets, which is all the training loop needs.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import FactorDataset
from .binarize import binarize_dynamic, binarize_static
from .chairs import ChairsFolder
from .holdout import HeldOutRegion
from .image_sets import (
    ImageSet,
    binarized_mnist,
    caltech_silhouettes,
    celeba,
    cifar10,
    fashion_mnist,
    mnist_files,
    omniglot,
    pad_images,
)
from .files import (
    DSPRITES_FILENAME,
    FASHION_MNIST_DIR,
    SHAPES3D_FILENAME,
    DSpritesNPZ,
    Shapes3DH5,
    load_mnist_like,
    read_idx,
)
from .shapes3d import Shapes3D, render_shapes3d
from .sprites import (
    POSITION_MARGIN,
    SPRITE_EXTENT,
    ColoredSprites,
    DSprites,
    hsv_to_rgb,
    render_sprites,
)

DATASETS: dict[str, Callable[..., FactorDataset | ImageSet]] = {
    "dsprites": DSprites,
    "colored_sprites": ColoredSprites,
    "dsprites_npz": DSpritesNPZ,
    "shapes3d_h5": Shapes3DH5,
    "shapes3d": Shapes3D,
    "chairs": ChairsFolder,
    "fashion_mnist": fashion_mnist,
    "mnist_files": mnist_files,
    "binarized_mnist": binarized_mnist,
    "omniglot": omniglot,
    "caltech_silhouettes": caltech_silhouettes,
    "cifar10": cifar10,
    "celeba": celeba,
}


def make_dataset(name: str, holdout: dict | None = None, **kwargs) -> FactorDataset | ImageSet:
    """The registered dataset ``name`` built with ``kwargs``; ValueError naming the known ones otherwise.

    ``holdout`` (a factor-name → [lo, hi) box) wraps it in :class:`HeldOutRegion`, so training
    never sees that combination of factors.
    """
    try:
        factory = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}") from None
    try:
        dataset = factory(**kwargs)
    except TypeError as err:  # an unknown keyword: name the ones the dataset takes
        valid = dataset_parameters(name)
        raise ValueError(f"dataset {name!r}: {err}; valid parameters: {valid} (and holdout)") from None
    return HeldOutRegion(dataset, holdout) if holdout else dataset


def dataset_parameters(name: str) -> list[str]:
    """The keyword arguments the registered dataset ``name`` takes (besides ``holdout``, which all take)."""
    import inspect

    return [p for p in inspect.signature(DATASETS[name]).parameters if p != "self"]


__all__ = [
    "DATASETS",
    "HeldOutRegion",
    "DSPRITES_FILENAME",
    "FASHION_MNIST_DIR",
    "POSITION_MARGIN",
    "SHAPES3D_FILENAME",
    "SPRITE_EXTENT",
    "ChairsFolder",
    "ColoredSprites",
    "DSprites",
    "DSpritesNPZ",
    "FactorDataset",
    "ImageSet",
    "binarized_mnist",
    "caltech_silhouettes",
    "celeba",
    "cifar10",
    "omniglot",
    "fashion_mnist",
    "mnist_files",
    "pad_images",
    "Shapes3D",
    "Shapes3DH5",
    "binarize_dynamic",
    "binarize_static",
    "hsv_to_rgb",
    "load_mnist_like",
    "make_dataset",
    "dataset_parameters",
    "read_idx",
    "render_shapes3d",
    "render_sprites",
]
