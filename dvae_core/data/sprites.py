"""Procedural dSprites and the Spatial Broadcast Decoder's coloured sprites, rendered in torch.

dSprites (Matthey, Higgins, Hassabis & Lerchner 2017, https://github.com/deepmind/dsprites-dataset;
introduced with beta-VAE, Higgins et al. 2017) is the full grid of five factors

=============  ======  ==========================================================
factor         size    values (as stored in ``latents_values`` of the real file)
=============  ======  ==========================================================
shape          3       square, ellipse, heart (stored as 1, 2, 3)
scale          6       ``linspace(0.5, 1, 6)``
orientation    40      ``linspace(0, 2*pi, 40)`` (both ends present, as in the file)
pos_x          32      ``linspace(0, 1, 32)``
pos_y          32      ``linspace(0, 1, 32)``
=============  ======  ==========================================================

737,280 images, flat index in the file's order (last factor, pos_y, fastest). Instead of loading
the 3 GB file we draw any grid point on demand with an implicit-shape rasteriser (a whole batch is
one set of broadcast tensor ops), so any resolution is available.

Coloured sprites (Watters, Matthey, Burgess & Lerchner 2019, "Spatial Broadcast Decoder", the
"colored sprites" dataset) are dSprites shapes on a black background whose colour is drawn
uniformly in HSV space from a restricted range. To keep the finite-grid interface of
:class:`~dvae_core.data.base.FactorDataset` (metrics need it) the colour is three extra discrete
factors on fine grids; see :class:`ColoredSprites`.

Geometry (our reconstruction of dSprites; the generator itself was never released):

* Image coordinates are in units of the image width: pixel ``j`` has its centre at
  ``(j + 0.5) / resolution``; x points right, y points *down* (row index), so increasing ``pos_y``
  moves the sprite down, as in the file.
* A sprite at scale 1 fills a reference box of side ``SPRITE_EXTENT = 1/3`` of the image (21.3 px
  at 64x64): the square *is* that box, the ellipse has semi-axes 1/2 and 1/4 of it (long axis
  horizontal at orientation 0), the heart, ``(x^2 + y^2 - 1)^3 - x^2 y^3 <= 0`` with its point
  down, is scaled so its bounding box is the reference box. Scale multiplies the box side.
* Orientation rotates the sprite counter-clockwise on screen about the box centre.
* The centre moves over ``margin + (1 - 2 margin) * pos`` with ``margin = POSITION_MARGIN``, the
  circumradius of the scale-1 box (``SPRITE_EXTENT / sqrt(2)`` ~ 0.236): every default sprite stays
  fully inside the frame at every orientation, and one ``pos`` step is ~1.1 px at 64x64. The
  mapping does not change with ``scale_values`` so positions mean the same in every variant.
* Pixels are lit when their centre lies inside the shape (binary, like dSprites). Antialiasing
  supersamples ``k x k`` centres per pixel and averages them; the default is binary at
  resolution >= 64 (dSprites proper) and 4x4 supersampling below, where a binary sprite would
  alias badly (a 32x32 pixel is bigger than a ``pos`` step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .base import FactorDataset

DSPRITES_SHAPES = ("square", "ellipse", "heart")
DSPRITES_SCALES = np.linspace(0.5, 1.0, 6)
DSPRITES_ORIENTATIONS = np.linspace(0.0, 2.0 * np.pi, 40)
DSPRITES_POSITIONS = np.linspace(0.0, 1.0, 32)
DSPRITES_FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
DSPRITES_FACTOR_SIZES = (3, 6, 40, 32, 32)

SPRITE_EXTENT = 1.0 / 3.0
POSITION_MARGIN = SPRITE_EXTENT / math.sqrt(2.0)

# The heart curve (x^2+y^2-1)^3 = x^2 y^3 spans x in [-1.139, 1.139], y in [-1, 1.2365] (measured
# on a fine grid); these map the reference box [-1, 1]^2 onto that bounding box.
_HEART_HALF_WIDTH = 1.139
_HEART_HALF_HEIGHT = 1.11825
_HEART_Y_CENTRE = 0.11825
# Ellipse semi-axes in units of the reference box's half side.
_ELLIPSE_SEMI_AXES = (1.0, 0.5)

# Default colour grid for ColoredSprites (see its docstring).
COLOR_HUES = np.linspace(0.0, 1.0, 10, endpoint=False)
COLOR_SATURATIONS = np.linspace(0.5, 1.0, 5)
COLOR_VALUES = np.linspace(0.5, 1.0, 5)


def default_supersampling(resolution: int) -> int:
    """Binary at dSprites' own 64x64 and above; 4x4 supersampling below, where pixels are coarse."""
    return 1 if resolution >= 64 else 4


def _resolve_supersampling(antialias: bool | int | None, resolution: int) -> int:
    if antialias is None:
        return default_supersampling(resolution)
    if isinstance(antialias, bool):
        return 4 if antialias else 1
    if int(antialias) < 1:
        raise ValueError(f"antialias must be a bool, None or a supersampling factor >= 1, got {antialias}")
    return int(antialias)


def render_sprites(
    shape: np.ndarray,
    scale: np.ndarray,
    orientation: np.ndarray,
    centre_x: np.ndarray,
    centre_y: np.ndarray,
    resolution: int,
    supersampling: int = 1,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Coverage masks of a batch of sprites, float32 of shape (n, resolution, resolution) in [0, 1].

    ``device``: where the masks are drawn (None: the CPU). The per-sprite coefficients are computed in
    float64 on the CPU either way (a few numbers per sprite) and copied over; the per-pixel work runs on
    ``device``. On the CPU the result is the same bit for bit; on a GPU a pixel centre that lies within
    float32 rounding of a shape's edge can fall the other way (see ``tests/test_data.py``).

    ``shape`` holds indices into :data:`DSPRITES_SHAPES`; ``scale`` multiplies the reference box side
    :data:`SPRITE_EXTENT`; ``orientation`` is in radians (counter-clockwise on screen); the centres
    are in image-width units with y pointing down. Each sprite is evaluated only on a square window
    around it (a few times fewer points than the full frame), one broadcast op per step for the
    whole batch, and the windows are then scattered into a blank canvas.
    """
    shape = np.asarray(shape, dtype=np.int64)
    n = shape.shape[0]
    k = int(supersampling)
    fine = resolution * k
    device = torch.device("cpu") if device is None else torch.device(device)
    canvas = torch.zeros(n, resolution, resolution, dtype=torch.float32, device=device)
    if n == 0:
        return canvas

    half_side = np.asarray(scale, dtype=np.float64) * (SPRITE_EXTENT / 2.0)
    theta = np.asarray(orientation, dtype=np.float64)
    cx = np.asarray(centre_x, dtype=np.float64)
    cy = np.asarray(centre_y, dtype=np.float64)
    cos, sin = np.cos(theta), np.sin(theta)

    # Local frame (u right, v up, both in half-sides of the box) as an affine map of the pixel
    # coordinates: u = ux*x + uy*y + u0, v = vx*x + vy*y + v0, i.e. translate, flip y, rotate by
    # -theta and divide by the half side.
    ux, uy, u0 = cos / half_side, -sin / half_side, (-cos * cx + sin * cy) / half_side
    vx, vy, v0 = -sin / half_side, -cos / half_side, (sin * cx + cos * cy) / half_side

    # Window side (fine pixels) covering every sprite's circumscribed circle, a multiple of k so
    # pooling never straddles windows; +2k absorbs the floor of the origin and rounding.
    radius_fine = float(half_side.max()) * math.sqrt(2.0) * fine
    window = min(fine, k * (math.ceil(2.0 * radius_fine / k) + 2))
    origin_x = np.clip(np.floor((cx * fine - window / 2.0) / k) * k, 0, fine - window).astype(np.int64)
    origin_y = np.clip(np.floor((cy * fine - window / 2.0) / k) * k, 0, fine - window).astype(np.int64)
    offsets = np.arange(window, dtype=np.float64) + 0.5
    # (n, window) pixel-centre coordinates of every sprite's window, in image-width units.
    xs = (origin_x[:, None] + offsets[None, :]) / fine
    ys = (origin_y[:, None] + offsets[None, :]) / fine

    # Separable parts: column terms (n, 1, W) plus row terms (n, H, 1) -> one full-size add each.
    # Computed in float64 on the small arrays, then float32 for the big broadcast ops.
    def affine(ax: np.ndarray, ay: np.ndarray, a0: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        col = torch.from_numpy((ax[:, None] * xs).astype(np.float32))[:, None, :]
        row = torch.from_numpy((ay[:, None] * ys + a0[:, None]).astype(np.float32))[:, :, None]
        return col.to(device, non_blocking=True), row.to(device, non_blocking=True)

    u_col, u_row = affine(ux, uy, u0)
    v_col, v_row = affine(vx, vy, v0)

    masks = torch.empty(n, window, window, dtype=torch.bool, device=device)
    for shape_index, shape_name in enumerate(DSPRITES_SHAPES):
        members = np.flatnonzero(shape == shape_index)
        if members.size == 0:
            continue
        sel = torch.from_numpy(members).to(device, non_blocking=True)
        u = u_col[sel] + u_row[sel]
        v = v_col[sel] + v_row[sel]
        masks[sel] = _inside(shape_name, u, v)

    coverage = masks.to(torch.float32)
    if k > 1:
        coverage = F.avg_pool2d(coverage[:, None], k)[:, 0]
    w = window // k
    # Scatter every window into its place on the canvas with one advanced-indexing write.
    rows = (torch.from_numpy(origin_y // k)[:, None] + torch.arange(w)[None, :]).to(device, non_blocking=True)
    cols = (torch.from_numpy(origin_x // k)[:, None] + torch.arange(w)[None, :]).to(device, non_blocking=True)
    batch = torch.arange(n, device=device)[:, None, None]
    canvas[batch, rows[:, :, None], cols[:, None, :]] = coverage
    return canvas


def _inside(shape_name: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Implicit inside test in the local frame (u, v in half-sides of the box); consumes u and v."""
    if shape_name == "square":
        return torch.maximum(u.abs_(), v.abs_()) <= 1.0
    if shape_name == "ellipse":
        a, b = _ELLIPSE_SEMI_AXES
        u.mul_(1.0 / a).square_()
        v.mul_(1.0 / b).square_()
        return u.add_(v) <= 1.0
    if shape_name == "heart":
        u.mul_(_HEART_HALF_WIDTH)
        v.mul_(_HEART_HALF_HEIGHT).add_(_HEART_Y_CENTRE)
        u2 = u.square_()
        v3 = v * v
        q = v3 + u2
        q.sub_(1.0)
        v3.mul_(v)
        q_cubed = q * q
        q_cubed.mul_(q)
        return q_cubed <= u2.mul_(v3)
    raise ValueError(f"unknown shape {shape_name!r}; known: {DSPRITES_SHAPES}")


def _check_scale_values(scale_values: Sequence[float] | None) -> np.ndarray:
    if scale_values is None:
        return DSPRITES_SCALES.copy()
    values = np.asarray(scale_values, dtype=np.float64)
    if values.shape != DSPRITES_SCALES.shape:
        # The grid sizes are the dataset's identity (metrics, file order); only the values move.
        raise ValueError(f"scale_values must hold {DSPRITES_SCALES.size} values, got shape {values.shape}")
    if (values <= 0).any():
        raise ValueError("scale_values must be positive")
    return values


class DSprites(FactorDataset):
    """Procedural dSprites: the exact dSprites grid, rendered on demand at any resolution.

    Factors ``("shape", "scale", "orientation", "pos_x", "pos_y")`` with sizes ``(3, 6, 40, 32, 32)``
    (737,280 points), flat index in the real file's order (pos_y fastest). Images are (n, 1, R, R)
    float32 in [0, 1]. Geometry and antialiasing are documented in this module's docstring.

    Args:
        resolution: image side R in pixels.
        antialias: ``None`` for the default (binary at R >= 64, 4x4 supersampling below), a bool, or
            an explicit supersampling factor (1 = binary).
        scale_values: six scale multipliers replacing ``linspace(0.5, 1, 6)`` (e.g. a small-objects
            variant); the grid size stays 6 and positions keep their default mapping.
    """

    name = "dsprites"
    factor_names = DSPRITES_FACTOR_NAMES
    factor_sizes = DSPRITES_FACTOR_SIZES

    def __init__(
        self,
        resolution: int = 64,
        antialias: bool | int | None = None,
        scale_values: Sequence[float] | None = None,
    ) -> None:
        if resolution < 4:
            raise ValueError(f"resolution must be >= 4, got {resolution}")
        self.resolution = int(resolution)
        self.supersampling = _resolve_supersampling(antialias, self.resolution)
        self.scale_values = _check_scale_values(scale_values)
        self.image_shape = (1, self.resolution, self.resolution)
        # Continuous value of every class, as the real file's latents_values stores them.
        self.factor_values: tuple[np.ndarray, ...] = (
            np.arange(1.0, 4.0),
            self.scale_values,
            DSPRITES_ORIENTATIONS.copy(),
            DSPRITES_POSITIONS.copy(),
            DSPRITES_POSITIONS.copy(),
        )

    def sprite_masks(self, factors: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
        """Coverage (n, R, R) of the five dSprites factor classes in the first five columns, drawn on
        ``device`` (:func:`render_sprites`)."""
        shape, scale, orientation, pos_x, pos_y = (factors[:, i] for i in range(5))
        span = 1.0 - 2.0 * POSITION_MARGIN
        return render_sprites(
            shape=shape,
            scale=self.scale_values[scale],
            orientation=DSPRITES_ORIENTATIONS[orientation],
            centre_x=POSITION_MARGIN + span * DSPRITES_POSITIONS[pos_x],
            centre_y=POSITION_MARGIN + span * DSPRITES_POSITIONS[pos_y],
            resolution=self.resolution,
            supersampling=self.supersampling,
            device=device,
        )

    def images(self, factors: np.ndarray) -> torch.Tensor:
        return self.images_on(factors)

    def images_on(self, factors: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
        factors = self._check_factors(factors)
        return self.sprite_masks(factors, device)[:, None]


def hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """HSV in [0, 1] (hue wraps) to RGB in [0, 1], shape (n, 3); the standard hexcone formula."""
    hue = np.asarray(hue, dtype=np.float64) % 1.0
    saturation = np.asarray(saturation, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    # f(k) = V - V S max(0, min(k, 4 - k, 1)), k = (n + 6H) mod 6 for n = 5, 3, 1 -> R, G, B.
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + 6.0 * hue) % 6.0
        channels.append(value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.stack(channels, axis=-1)


class ColoredSprites(DSprites):
    """The Spatial Broadcast Decoder paper's coloured sprites: recoloured dSprites on black.

    Watters et al. (2019) recolour dSprites shapes with a colour sampled uniformly in HSV space from
    a predefined range. Here the colour is three extra factors on fine discrete grids so the dataset
    stays a finite grid: ``hue`` 10 values ``linspace(0, 1, 10, endpoint=False)``, ``saturation`` and
    ``value`` 5 values each in ``linspace(0.5, 1, 5)`` (our choice of range: it keeps every sprite
    clearly coloured and clearly brighter than the background). Factors are the five dSprites ones
    followed by ``("hue", "saturation", "value")``, last fastest. Images are (n, 3, R, R): the sprite's
    coverage times its RGB colour, so antialiased edges blend into the black background.

    Args:
        resolution, antialias, scale_values: as for :class:`DSprites` (``scale_values`` smaller than
            the default gives the paper's small-objects variant).
        hues, saturations, values: override the colour grids (values in [0, 1]).
    """

    name = "colored_sprites"

    def __init__(
        self,
        resolution: int = 64,
        antialias: bool | int | None = None,
        scale_values: Sequence[float] | None = None,
        hues: Sequence[float] | None = None,
        saturations: Sequence[float] | None = None,
        values: Sequence[float] | None = None,
    ) -> None:
        super().__init__(resolution=resolution, antialias=antialias, scale_values=scale_values)
        color_grids = []
        for label, grid, default in (
            ("hues", hues, COLOR_HUES),
            ("saturations", saturations, COLOR_SATURATIONS),
            ("values", values, COLOR_VALUES),
        ):
            grid = default.copy() if grid is None else np.asarray(grid, dtype=np.float64).ravel()
            if grid.size == 0 or (grid < 0).any() or (grid > 1).any():
                raise ValueError(f"{label} must be a non-empty sequence in [0, 1]")
            color_grids.append(grid)
        self.factor_names = DSPRITES_FACTOR_NAMES + ("hue", "saturation", "value")
        self.factor_sizes = DSPRITES_FACTOR_SIZES + tuple(grid.size for grid in color_grids)
        self.factor_values = self.factor_values + tuple(color_grids)
        self.image_shape = (3, self.resolution, self.resolution)

    def colors(self, factors: np.ndarray) -> np.ndarray:
        """RGB colour (n, 3) of each sprite, from its hue/saturation/value classes."""
        factors = self._check_factors(factors)
        hue, saturation, value = (self.factor_values[i][factors[:, i]] for i in (5, 6, 7))
        return hsv_to_rgb(hue, saturation, value)

    def images_on(self, factors: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
        factors = self._check_factors(factors)
        rgb = torch.from_numpy(self.colors(factors).astype(np.float32))
        if device is not None:
            rgb = rgb.to(device, non_blocking=True)
        return self.sprite_masks(factors, device)[:, None] * rgb[:, :, None, None]
