"""Datasets with ground-truth factors, real-file loaders and binarisation.

``make_dataset(name, **kwargs)`` builds any registered :class:`FactorDataset`:

* ``"dsprites"`` -- :class:`DSprites`, procedural dSprites (kwargs: resolution, antialias, scale_values)
* ``"colored_sprites"`` -- :class:`ColoredSprites`, the Spatial Broadcast Decoder's coloured sprites
* ``"dsprites_npz"`` -- :class:`DSpritesNPZ`, the real dSprites file (kwarg: path)
* ``"shapes3d_h5"`` -- :class:`Shapes3DH5`, the real 3dshapes file (kwargs: path, in_memory)
"""

from __future__ import annotations

from collections.abc import Callable

from .base import FactorDataset
from .binarize import binarize_dynamic, binarize_static
from .files import (
    DSPRITES_FILENAME,
    FASHION_MNIST_DIR,
    SHAPES3D_FILENAME,
    DSpritesNPZ,
    Shapes3DH5,
    load_mnist_like,
    read_idx,
)
from .sprites import (
    POSITION_MARGIN,
    SPRITE_EXTENT,
    ColoredSprites,
    DSprites,
    hsv_to_rgb,
    render_sprites,
)

DATASETS: dict[str, Callable[..., FactorDataset]] = {
    "dsprites": DSprites,
    "colored_sprites": ColoredSprites,
    "dsprites_npz": DSpritesNPZ,
    "shapes3d_h5": Shapes3DH5,
}


def make_dataset(name: str, **kwargs) -> FactorDataset:
    """The registered dataset ``name`` built with ``kwargs``; ValueError naming the known ones otherwise."""
    try:
        factory = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}") from None
    return factory(**kwargs)


__all__ = [
    "DATASETS",
    "DSPRITES_FILENAME",
    "FASHION_MNIST_DIR",
    "POSITION_MARGIN",
    "SHAPES3D_FILENAME",
    "SPRITE_EXTENT",
    "ColoredSprites",
    "DSprites",
    "DSpritesNPZ",
    "FactorDataset",
    "Shapes3DH5",
    "binarize_dynamic",
    "binarize_static",
    "hsv_to_rgb",
    "load_mnist_like",
    "make_dataset",
    "read_idx",
    "render_sprites",
]
