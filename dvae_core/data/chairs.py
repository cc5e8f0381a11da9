"""A loader for a local copy of the 3D Chairs renders (Aubry et al. 2014) as a factor grid.

"Seeing 3D chairs" (Aubry, Maturana, Efros, Russell & Sivic, CVPR 2014;
https://www.di.ens.fr/willow/research/seeing3Dchairs/) renders 1393 chair CAD models from 62
viewpoints each: 31 azimuths (``theta``, about 11.6 degrees apart over the full turn) at 2
elevations (``pitch`` 20 and 30 degrees), camera distance fixed. The archive ``rendered_chairs.tar``
unpacks to::

    rendered_chairs/<chair_id>/renders/image_XXX_p{pitch}_t{theta}_r{radius}.png

e.g. ``rendered_chairs/1a6f615e8b1b5ae4dbbc9440457e303e/renders/image_001_p020_t011_r096.png``
(600x600 RGB renders on white). It is a full grid of three factors, ``("chair", "elevation",
"azimuth")`` with sizes ``(num_chairs, 2, 31)``, which we parse from the file names: chairs in
sorted folder order, elevations and azimuths as the sorted distinct ``pitch`` and ``theta`` values
(kept in ``factor_values``, in degrees; the chair ids are in ``chair_ids``). Used e.g. by beta-VAE
(Higgins et al. 2017) and FactorVAE (Kim & Mnih 2018) at 64x64.

Nothing is downloaded; a missing folder is an error that says where to get it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from .base import FactorDataset
from .files import DATA_DIR_ENV, default_data_path

CHAIRS_DIRNAME = "rendered_chairs"
CHAIRS_URL = "https://www.di.ens.fr/willow/research/seeing3Dchairs/"
CHAIRS_ARCHIVE_URL = "https://www.di.ens.fr/willow/research/seeing3Dchairs/data/rendered_chairs.tar"
CHAIRS_FACTOR_NAMES = ("chair", "elevation", "azimuth")
_RENDER_NAME = re.compile(r"^image_(\d+)_p(\d+)_t(\d+)_r(\d+)\.png$")


def parse_render_name(name: str) -> tuple[int, int, int, int] | None:
    """``(image, pitch, theta, radius)`` of a render file name, None if it is not one."""
    match = _RENDER_NAME.match(name)
    return None if match is None else tuple(int(g) for g in match.groups())  # type: ignore[return-value]


class ChairsFolder(FactorDataset):
    """3D Chairs from a local ``rendered_chairs`` folder, as a grid (chair, elevation, azimuth).

    Images are read with PIL the first time they are asked for, converted to grayscale (``L``,
    1 channel; default, as beta-VAE used them) or RGB (3 channels), centre-cropped to a square of
    ``crop`` times the shorter side, resized to ``resolution`` (Lanczos), and kept in memory as uint8
    (64x64 grayscale: 4 kB per image, 354 MB for all 86,366). Transparent pixels, if any, are put
    on white, the renders' background. Images are (n, C, R, R) float32 in [0, 1].

    Args:
        root: the ``rendered_chairs`` folder (or a folder that contains it); default
            ``$DVAE_DATA_DIR/rendered_chairs`` (``DVAE_DATA_DIR`` defaults to ``./data``).
        resolution: output side R in pixels.
        grayscale: 1-channel luminance if true, else RGB.
        crop: side of the central square crop as a fraction of the shorter image side (1 keeps the
            whole square; e.g. 2/3 keeps the central 400x400 of the 600x600 renders, where the chairs are).

    Raises FileNotFoundError if the folder or its renders are missing, ValueError if the renders do
    not form a full grid (every chair needs every (pitch, theta) view exactly once).
    """

    name = "chairs"
    factor_names = CHAIRS_FACTOR_NAMES

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        resolution: int = 64,
        grayscale: bool = True,
        crop: float = 1.0,
    ) -> None:
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        if not 0.0 < crop <= 1.0:
            raise ValueError(f"crop must be in (0, 1], got {crop}")
        self.root = self._find_root(root)
        self.resolution = int(resolution)
        self.grayscale = bool(grayscale)
        self.crop = float(crop)
        channels = 1 if self.grayscale else 3
        self.image_shape = (channels, self.resolution, self.resolution)
        self._index_files()
        self._pixels: np.ndarray | None = None  # (N, C, R, R) uint8, filled lazily
        self._loaded = np.zeros(len(self), dtype=bool)

    @staticmethod
    def _find_root(root: str | os.PathLike | None) -> Path:
        path = Path(root) if root is not None else default_data_path(CHAIRS_DIRNAME)
        # Accept the folder that holds rendered_chairs/ as well as rendered_chairs/ itself.
        if (path / CHAIRS_DIRNAME).is_dir():
            path = path / CHAIRS_DIRNAME
        if not path.is_dir() or not any(path.glob("*/renders/image_*.png")):
            raise FileNotFoundError(
                f"The 3D Chairs renders were not found at {str(path)!r} (expected "
                f"<root>/<chair_id>/renders/image_XXX_pPP_tTTT_rRRR.png). Get rendered_chairs.tar from the "
                f"'Seeing 3D chairs' project page {CHAIRS_URL} ({CHAIRS_ARCHIVE_URL}; this code never "
                f"downloads), unpack it, and pass the rendered_chairs folder as ChairsFolder(root=...) / "
                f"make_dataset('chairs', root=...), or put it in ${DATA_DIR_ENV} (default ./data)."
            )
        return path

    def _index_files(self) -> None:
        views: dict[str, dict[tuple[int, int], Path]] = {}
        for chair_dir in sorted(p for p in self.root.iterdir() if (p / "renders").is_dir()):
            chair_views: dict[tuple[int, int], Path] = {}
            for file in (chair_dir / "renders").iterdir():
                parsed = parse_render_name(file.name)
                if parsed is None:
                    continue
                _, pitch, theta, _ = parsed
                if (pitch, theta) in chair_views:
                    raise ValueError(
                        f"{chair_dir.name}: two renders for pitch {pitch}, theta {theta}: "
                        f"{chair_views[(pitch, theta)].name} and {file.name}"
                    )
                chair_views[(pitch, theta)] = file
            if chair_views:
                views[chair_dir.name] = chair_views
        self.chair_ids = tuple(views)
        pitches = sorted({p for v in views.values() for p, _ in v})
        thetas = sorted({t for v in views.values() for _, t in v})
        self.factor_values = (
            np.arange(len(self.chair_ids), dtype=np.float64),
            np.asarray(pitches, dtype=np.float64),
            np.asarray(thetas, dtype=np.float64),
        )
        self.factor_sizes = (len(self.chair_ids), len(pitches), len(thetas))
        files: list[Path] = []
        for chair in self.chair_ids:
            for pitch in pitches:
                for theta in thetas:
                    file = views[chair].get((pitch, theta))
                    if file is None:
                        raise ValueError(
                            f"{self.root}: not a full grid: chair {chair} has no render for pitch {pitch}, "
                            f"theta {theta} ({len(views[chair])} of {len(pitches) * len(thetas)} views)"
                        )
                    files.append(file)
        self.files = tuple(files)  # in flat-index order (azimuth fastest)

    def load_image(self, path: str | os.PathLike) -> np.ndarray:
        """One render as uint8 (C, R, R): alpha onto white, to L/RGB, centre crop, resize."""
        from PIL import Image  # pillow comes with matplotlib

        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                image = image.convert("RGBA")
                white = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(white, image)
            image = image.convert("L" if self.grayscale else "RGB")
            width, height = image.size
            side = max(1, round(min(width, height) * self.crop))
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
            if side != self.resolution:
                image = image.resize((self.resolution, self.resolution), Image.Resampling.LANCZOS)
            pixels = np.asarray(image, dtype=np.uint8)
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)

    def images(self, factors: np.ndarray) -> torch.Tensor:
        index = self.factors_to_index(factors)
        if self._pixels is None:
            # np.zeros maps fresh pages lazily: memory is only used for images actually loaded.
            self._pixels = np.zeros((len(self),) + self.image_shape, dtype=np.uint8)
        for i in np.unique(index[~self._loaded[index]]):
            self._pixels[i] = self.load_image(self.files[i])
            self._loaded[i] = True
        return torch.from_numpy(self._pixels[index]).float().div_(255.0)

    # Do not ship the in-memory cache to DataLoader workers; each process fills its own.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pixels"] = None
        state["_loaded"] = np.zeros_like(self._loaded)
        return state
