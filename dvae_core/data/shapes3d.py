"""Procedural 3dshapes: a ray-cast room with one object, on the real 3dshapes factor grid.

3dshapes (Burgess & Kim 2018, https://github.com/deepmind/3d-shapes; introduced with FactorVAE,
Kim & Mnih 2018, "Disentangling by Factorising") shows one object standing on the floor of a room
in front of a wall, rendered from a fixed camera. It is the full grid of six factors

===========  ======  ===============================================================
factor       size    values (as stored in ``labels`` of the real ``3dshapes.h5``)
===========  ======  ===============================================================
floor_hue    10      ``linspace(0, 1, 10, endpoint=False)`` = 0.0, 0.1, ..., 0.9
wall_hue     10      same
object_hue   10      same
scale        8       ``linspace(0.75, 1.25, 8)``
shape        4       0 cube, 1 cylinder, 2 sphere, 3 capsule
orientation  15      ``linspace(-30, 30, 15)`` degrees about the vertical axis
===========  ======  ===============================================================

480,000 images, flat index in the file's order (orientation fastest). The factor names and order
are those of :class:`~dvae_core.data.files.Shapes3DH5`, so the two are interchangeable. Colours are
HSV with full saturation and value (``hsv_to_rgb(hue, 1, 1)``), like the real dataset.

The real generator was never released; this is our reconstruction of the *scene*, not a copy of
the pixels. Geometry (world frame: x right, y up, z away from the camera; lengths in object units):

* The floor is the plane ``y = 0``, the back wall the plane ``z = WALL_Z`` (both infinite). The
  pinhole camera sits at :data:`CAMERA_POSITION`, looks at :data:`CAMERA_TARGET` (slightly down)
  with a vertical field of view :data:`CAMERA_FOV_DEG`: the wall fills the upper part of the frame,
  the floor, seen in perspective, the lower part, and the object stands at the centre.
* Objects at scale 1: a cube of side 1; an upright cylinder of radius 0.5 and height 1; a sphere of
  radius 0.5; a capsule (a cylinder with hemispherical ends) *lying* along the object's x axis,
  radius :data:`CAPSULE_RADIUS`, total length ``2 * (CAPSULE_HALF_LENGTH + CAPSULE_RADIUS)``, so
  that, like the cube, its orientation shows. ``scale`` multiplies all lengths; the object always
  rests on the floor (its lowest point at ``y = 0``) centred on the vertical axis through the origin.
* ``orientation`` rotates the object about the vertical axis; positive angles turn its front face
  (the face towards the camera at 0) to the viewer's left. At 0 the cube faces the camera squarely.
  The upright cylinder and the sphere are rotation-symmetric, so orientation does not change their
  image (as in the real dataset, where it is a nuisance factor for them).
* Shading is Lambertian under a white directional light from the upper left front
  (:data:`LIGHT_DIRECTION`, pointing *towards* the light) plus an ambient term:
  ``ambient + diffuse * max(0, n . l)``, with ``ambient + diffuse = 1`` so colours stay in [0, 1].
  The object casts a hard shadow onto the floor (and the wall, when it reaches it): shadowed points
  keep the ambient term and :data:`SHADOW_TRANSMISSION` of the diffuse term.
* A pixel is the mean of ``k x k`` sample rays through its area (antialiasing). The default
  ``k = ceil(128 / resolution)`` samples every image on the same 128x128 grid: k = 2 at 64x64,
  4 at 32x32.

Rendering (vectorised in torch): every pixel sample casts one camera ray; its intersections with
the floor and wall are fixed and computed once per resolution. The object is intersected
analytically in its own frame (ray transformed by the inverse rotation and scale): the cube by the
slab test, the cylinder as infinite cylinder intersected with a slab, the sphere and the capsule
(cylinder body plus end spheres) by their quadratics. A floor/wall point is in shadow when its ray
towards the light hits the object. Only rays that pass near the object (within a bounding sphere,
for the camera ray or the shadow ray) are intersected at all. All of it is one set of broadcast ops
over (geometries in a batch, sample rays).

Because colour enters linearly and the light is white, an image is
``floor_rgb * F + wall_rgb * W + object_rgb * O`` where the coverage-weighted shading maps
``F, W, O`` depend only on the 8 x 4 x 15 = 480 *geometries* (scale, shape, orientation).
:class:`Shapes3D` renders the maps of each geometry the first time a batch needs it and keeps them
(23.6 MB at 64x64 for all 480); images are then a gather and a 3x3 colour matrix product.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .base import FactorDataset
from .files import SHAPES3D_FACTOR_NAMES
from .sprites import hsv_to_rgb

SHAPES3D_FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
SHAPES3D_HUES = np.linspace(0.0, 1.0, 10, endpoint=False)
SHAPES3D_SCALES = np.linspace(0.75, 1.25, 8)
SHAPES3D_SHAPES = ("cube", "cylinder", "sphere", "capsule")
SHAPES3D_ORIENTATIONS = np.linspace(-30.0, 30.0, 15)

# Scene (world frame: x right, y up, z away from the camera).
CAMERA_POSITION = (0.0, 2.2, -4.6)
CAMERA_TARGET = (0.0, 0.6, 0.0)
CAMERA_FOV_DEG = 42.0
WALL_Z = 2.2
LIGHT_DIRECTION = (-0.45, 0.8, -0.4)  # towards the light; normalised below
AMBIENT = 0.35
DIFFUSE = 1.0 - AMBIENT
SHADOW_TRANSMISSION = 0.3
# Object dimensions at scale 1 (object frame, centred on the object's centre).
CUBE_HALF_SIDE = 0.5
CYLINDER_RADIUS = 0.5
CYLINDER_HALF_HEIGHT = 0.5
SPHERE_RADIUS = 0.5
CAPSULE_RADIUS = 0.32
CAPSULE_HALF_LENGTH = 0.42
# Height of the object's centre above the floor at scale 1 (it rests on the floor), and the radius
# of a sphere about that centre that encloses it (for culling rays that cannot hit it).
_CENTRE_HEIGHT = (CUBE_HALF_SIDE, CYLINDER_HALF_HEIGHT, SPHERE_RADIUS, CAPSULE_RADIUS)
_BOUNDING_RADIUS = (
    CUBE_HALF_SIDE * math.sqrt(3.0),
    math.hypot(CYLINDER_RADIUS, CYLINDER_HALF_HEIGHT),
    SPHERE_RADIUS,
    CAPSULE_HALF_LENGTH + CAPSULE_RADIUS,
)
# The fixed sample grid side that the default antialiasing aims for.
_SAMPLE_GRID = 128
_EPS = 1e-4
# Surfaces, in the order of the shading maps' channel axis.
SURFACES = ("floor", "wall", "object")


def default_supersampling(resolution: int) -> int:
    """``k`` such that ``k x k`` samples per pixel put every resolution on a >= 128x128 sample grid."""
    return max(1, math.ceil(_SAMPLE_GRID / resolution))


def _normalise(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


_LIGHT = _normalise(LIGHT_DIRECTION)


class _Background:
    """Camera rays of a (resolution, k) sample grid and the floor/wall they hit (no object).

    Samples are stored pixel-major: sample ``p * k^2 + a * k + b`` is sub-sample (a, b) of pixel
    ``p`` (row-major), so a pixel's samples are contiguous and pooling is a mean over a last axis.
    """

    def __init__(self, resolution: int, supersampling: int) -> None:
        r, k = resolution, supersampling
        self.resolution, self.supersampling, self.samples_per_pixel = r, k, k * k
        eye = np.asarray(CAMERA_POSITION, dtype=np.float64)
        forward = _normalise(np.asarray(CAMERA_TARGET) - eye)
        right = _normalise(np.cross([0.0, 1.0, 0.0], forward))
        up = np.cross(forward, right)
        half = math.tan(math.radians(CAMERA_FOV_DEG) / 2.0)
        # Screen coordinate in [-1, 1] of sub-sample a of pixel i: ((i k + a + 0.5) / (r k)) * 2 - 1.
        centres = ((np.arange(r)[:, None] * k + np.arange(k)[None, :] + 0.5) / (r * k)) * 2.0 - 1.0  # (r, k)
        sx = np.broadcast_to(centres[None, :, None, :] * half, (r, r, k, k)).ravel()  # columns: right
        sy = np.broadcast_to(-centres[:, None, :, None] * half, (r, r, k, k)).ravel()  # rows: down
        rays = forward[None, :] + sx[:, None] * right[None, :] + sy[:, None] * up[None, :]
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        self.eye = eye
        self.rays = rays  # (P, 3) float64, unit

        # First hit of the empty room: the floor y = 0 (rays going down) or the wall z = WALL_Z.
        with np.errstate(divide="ignore"):
            t_floor = np.where(rays[:, 1] < 0, -eye[1] / rays[:, 1], np.inf)
            t_wall = np.where(rays[:, 2] > 0, (WALL_Z - eye[2]) / rays[:, 2], np.inf)
        on_floor = t_floor < t_wall
        t_bg = np.minimum(t_floor, t_wall)
        self.points = eye[None, :] + t_bg[:, None] * rays  # (P, 3) where each ray meets the room
        normal_dot_light = np.where(on_floor, _LIGHT[1], -_LIGHT[2])
        self.lit = DIFFUSE * np.clip(normal_dot_light, 0.0, None)  # diffuse part of the room shading
        self.on_floor = on_floor
        # Pixel maps (3, R * R) of the empty room: floor and wall shading, no object.
        shade = AMBIENT + self.lit
        room = np.stack([on_floor * shade, ~on_floor * shade, np.zeros_like(shade)])
        self.room = torch.from_numpy(room.reshape(3, r * r, k * k).mean(-1).astype(np.float32))


@functools.lru_cache(maxsize=8)
def _background(resolution: int, supersampling: int) -> _Background:
    return _Background(resolution, supersampling)


def _safe(d: torch.Tensor) -> torch.Tensor:
    """Direction components nudged off exact zero so slab divisions never see 0/0."""
    return torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)


def _slab(o: torch.Tensor, d: torch.Tensor, half: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit parameters of the ray o + t d through the slab |x| <= half."""
    inv = 1.0 / _safe(d)
    t1 = (-half - o) * inv
    t2 = (half - o) * inv
    return torch.minimum(t1, t2), torch.maximum(t1, t2)


def _quadratic(a, b, c):
    """Roots of a t^2 + 2 b t + c = 0 as (near, far, real)."""
    disc = b * b - a * c
    real = disc > 0
    root = disc.clamp_min(0.0).sqrt_()
    inv_a = 1.0 / a
    return (-b - root) * inv_a, (-b + root) * inv_a, real


def intersect(shape: int, o, d, normals: bool = True):
    """Ray hits with one primitive in its own frame (scale 1, centred at the origin).

    ``o`` and ``d`` are (x, y, z) triples of broadcastable tensors; ``d`` must be a unit vector (the
    sphere quadratics assume ``|d| = 1``; rotations keep the callers' unit rays unit). Returns
    ``(t, hit, n)``: the entry parameter, a bool mask of rays that enter the object ahead of their
    origin, and the outward unit normal at the entry point (a triple, ``None`` when ``normals`` is
    false). ``t`` is meaningless where ``hit`` is false.
    """
    ox, oy, oz = o
    dx, dy, dz = d
    if shape == 0:  # cube: three slabs
        nx, fx = _slab(ox, dx, CUBE_HALF_SIDE)
        ny, fy = _slab(oy, dy, CUBE_HALF_SIDE)
        nz, fz = _slab(oz, dz, CUBE_HALF_SIDE)
        t = torch.maximum(torch.maximum(nx, ny), nz)
        t_out = torch.minimum(torch.minimum(fx, fy), fz)
        hit = (t <= t_out) & (t > _EPS)
        if not normals:
            return t, hit, None
        # The entry face is the slab whose entry is the latest; its normal opposes the ray.
        faces = ((nx, dx), (ny, dy), (nz, dz))
        n = tuple(torch.where(near == t, -torch.sign(dc), 0.0) for near, dc in faces)
        return t, hit, n
    if shape == 1:  # upright cylinder: infinite cylinder x^2 + z^2 <= r^2 and slab |y| <= h
        r = CYLINDER_RADIUS
        t_in, t_out, real = _quadratic(dx * dx + dz * dz, ox * dx + oz * dz, ox * ox + oz * oz - r * r)
        ny, fy = _slab(oy, dy, CYLINDER_HALF_HEIGHT)
        t = torch.maximum(t_in, ny)
        hit = real & (t <= torch.minimum(t_out, fy)) & (t > _EPS)
        if not normals:
            return t, hit, None
        side = t_in >= ny
        px, pz = ox + t * dx, oz + t * dz
        zero = torch.zeros((), dtype=t.dtype)
        n = (
            torch.where(side, px / r, zero),
            torch.where(side, zero, -torch.sign(dy)),
            torch.where(side, pz / r, zero),
        )
        return t, hit, n
    if shape == 2:  # sphere
        r = SPHERE_RADIUS
        b = ox * dx + oy * dy + oz * dz
        c = ox * ox + oy * oy + oz * oz - r * r
        t, _, real = _quadratic(torch.ones((), dtype=b.dtype), b, c)
        hit = real & (t > _EPS)
        if not normals:
            return t, hit, None
        return t, hit, ((ox + t * dx) / r, (oy + t * dy) / r, (oz + t * dz) / r)
    if shape == 3:  # capsule along x: body |x| <= L of the cylinder y^2 + z^2 <= r^2, plus end spheres
        r, half = CAPSULE_RADIUS, CAPSULE_HALF_LENGTH
        t_body, _, real = _quadratic(dy * dy + dz * dz, oy * dy + oz * dz, oy * oy + oz * oz - r * r)
        x_body = ox + t_body * dx
        on_body = x_body.abs() <= half
        # Outside the body's extent the entry, if any, is on the end sphere on that side
        # (the capsule is convex; Quilez's capsule intersection).
        cx = torch.where(x_body > 0, half, -half)
        qx = ox - cx
        b = qx * dx + oy * dy + oz * dz
        c = qx * qx + oy * oy + oz * oz - r * r
        t_cap, _, real_cap = _quadratic(torch.ones((), dtype=b.dtype), b, c)
        t = torch.where(on_body, t_body, t_cap)
        hit = real & (on_body | real_cap) & (t > _EPS)
        if not normals:
            return t, hit, None
        zero = torch.zeros((), dtype=t.dtype)
        n = (
            torch.where(on_body, zero, (qx + t * dx) / r),
            (oy + t * dy) / r,
            (oz + t * dz) / r,
        )
        return t, hit, n
    raise ValueError(f"unknown shape {shape}; known: {dict(enumerate(SHAPES3D_SHAPES))}")


def render_geometry_maps(
    shape: np.ndarray,
    scale: np.ndarray,
    orientation: np.ndarray,
    resolution: int = 64,
    supersampling: int | None = None,
) -> torch.Tensor:
    """Shading maps (n, 3, R, R) of the floor, wall and object for each object geometry.

    ``shape`` holds indices into :data:`SHAPES3D_SHAPES`, ``scale`` multiplies all object lengths,
    ``orientation`` is in degrees about the vertical axis (any real values, not only the grid's).
    Map ``s`` at a pixel is the fraction of the pixel's samples that see surface ``s`` times their
    Lambertian shading, so ``sum_s rgb_s * map_s`` is the image (see :func:`compose`).
    """
    shape = np.asarray(shape, dtype=np.int64).ravel()
    scale = np.asarray(scale, dtype=np.float64).ravel()
    theta = np.radians(np.asarray(orientation, dtype=np.float64).ravel())
    if not (shape.shape == scale.shape == theta.shape):
        raise ValueError("shape, scale and orientation must have the same length")
    if ((shape < 0) | (shape >= len(SHAPES3D_SHAPES))).any():
        raise ValueError(f"shape indices must be in [0, {len(SHAPES3D_SHAPES)})")
    if (scale <= 0).any():
        raise ValueError("scale must be positive")
    k = default_supersampling(resolution) if supersampling is None else int(supersampling)
    if k < 1:
        raise ValueError(f"supersampling must be >= 1, got {k}")
    bg = _background(int(resolution), k)
    r = bg.resolution
    maps = bg.room[None].repeat(shape.size, 1, 1)  # (n, 3, R * R), the empty room everywhere
    for s in range(len(SHAPES3D_SHAPES)):
        members = np.flatnonzero(shape == s)
        if members.size:
            pixels, values = _render_group(s, scale[members], theta[members], bg)
            rows = torch.from_numpy(members)[:, None, None]
            maps[rows, torch.arange(3)[None, :, None], torch.from_numpy(pixels)[None, None, :]] = values
    return maps.reshape(shape.size, 3, r, r)


def _render_group(
    shape: int, scale: np.ndarray, theta: np.ndarray, bg: _Background
) -> tuple[np.ndarray, torch.Tensor]:
    """For G geometries of one shape: the pixels that may differ from the empty room, (N,), and the
    three maps there, (G, 3, N)."""
    g = scale.size

    # Cull: only rays whose camera ray or shadow ray passes within a sphere enclosing every object
    # of the group can differ from the empty room.
    heights = _CENTRE_HEIGHT[shape] * scale
    mid = 0.5 * (heights.min() + heights.max())
    radius = float(np.max(np.abs(heights - mid) + _BOUNDING_RADIUS[shape] * scale)) + 1e-3
    centre = np.array([0.0, mid, 0.0])
    to_centre = centre - bg.eye
    along = bg.rays @ to_centre
    cam_near = (to_centre @ to_centre - np.where(along > 0, along, 0.0) ** 2) < radius**2
    from_points = centre[None, :] - bg.points
    along = from_points @ _LIGHT
    shadow_near = ((from_points**2).sum(1) - np.where(along > 0, along, 0.0) ** 2) < radius**2
    per_pixel = bg.samples_per_pixel
    pixels = np.flatnonzero((cam_near | shadow_near).reshape(-1, per_pixel).any(axis=1))
    if pixels.size == 0:
        return pixels, torch.empty(g, 3, 0)
    idx = (pixels[:, None] * per_pixel + np.arange(per_pixel)[None, :]).ravel()  # their samples

    # Per-geometry constants, (G, 1): inverse rotation about y and the object's centre.
    cos = torch.from_numpy(np.cos(theta).astype(np.float32))[:, None]
    sin = torch.from_numpy(np.sin(theta).astype(np.float32))[:, None]
    inv_s = torch.from_numpy((1.0 / scale).astype(np.float32))[:, None]
    cy = torch.from_numpy(heights.astype(np.float32))[:, None]

    def to_object(px, py, pz, dx, dy, dz):
        """World point and direction -> object frame (inverse rotation, then point / scale)."""
        o = ((cos * px - sin * pz) * inv_s, (py - cy) * inv_s, (sin * px + cos * pz) * inv_s)
        d = (cos * dx - sin * dz, dy, sin * dx + cos * dz)
        return o, d

    rays = torch.from_numpy(bg.rays[idx].T.astype(np.float32).copy())  # (3, M)
    eye = [float(v) for v in bg.eye]
    o, d = to_object(eye[0], eye[1], eye[2], rays[0][None], rays[1][None], rays[2][None])
    _, hit, n_obj = intersect(shape, o, d, normals=True)
    # Object-frame normal back to the world (rotation only: scale is uniform); then n . l.
    nx, ny, nz = n_obj
    lx, ly, lz = (float(v) for v in _LIGHT)
    n_dot_l = (cos * nx + sin * nz) * lx + ny * ly + (-sin * nx + cos * nz) * lz
    object_shade = AMBIENT + DIFFUSE * n_dot_l.clamp_min(0.0)

    pts = torch.from_numpy(bg.points[idx].T.astype(np.float32).copy())
    o, d = to_object(pts[0][None], pts[1][None], pts[2][None], lx, ly, lz)
    d = tuple(torch.as_tensor(c, dtype=torch.float32).expand_as(cos) for c in d)
    _, shadowed, _ = intersect(shape, o, d, normals=False)
    lit = torch.from_numpy(bg.lit[idx].astype(np.float32))[None]
    room_shade = AMBIENT + lit * torch.where(shadowed, SHADOW_TRANSMISSION, 1.0)
    room_shade = torch.where(hit, 0.0, room_shade)

    on_floor = torch.from_numpy(bg.on_floor[idx])[None]
    samples = torch.stack(
        [
            torch.where(on_floor, room_shade, 0.0),
            torch.where(on_floor, 0.0, room_shade),
            torch.where(hit, object_shade, 0.0),
        ],
        dim=1,
    )  # (G, 3, M)
    return pixels, samples.reshape(g, 3, pixels.size, per_pixel).mean(-1)


def compose(maps: torch.Tensor, floor_rgb, wall_rgb, object_rgb) -> torch.Tensor:
    """Images (n, 3, R, R) from shading maps (n, 3, R, R) and per-image RGB colours (n, 3) each."""
    colours = np.stack([floor_rgb, wall_rgb, object_rgb], axis=-1).astype(np.float32)  # (n, rgb, surface)
    n, _, h, w = maps.shape
    images = torch.bmm(torch.from_numpy(colours), maps.reshape(n, 3, h * w)).reshape(n, 3, h, w)
    return images.clamp_(0.0, 1.0)


def render_shapes3d(
    floor_hue,
    wall_hue,
    object_hue,
    scale,
    shape,
    orientation,
    resolution: int = 64,
    supersampling: int | None = None,
) -> torch.Tensor:
    """3dshapes-like scenes (n, 3, R, R) for continuous factor *values* (hues in [0, 1], scale as a
    multiplier, shape index, orientation in degrees); no caching. See the module docstring."""
    maps = render_geometry_maps(shape, scale, orientation, resolution, supersampling)
    ones = np.ones(maps.shape[0])

    def rgb(hue):
        return hsv_to_rgb(np.broadcast_to(np.asarray(hue, dtype=np.float64), ones.shape), ones, ones)

    return compose(maps, rgb(floor_hue), rgb(wall_hue), rgb(object_hue))


class Shapes3D(FactorDataset):
    """Procedural 3dshapes on the real grid, any resolution (see the module docstring).

    Factors ``("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")`` with sizes
    ``(10, 10, 10, 8, 4, 15)`` (480,000 points), flat index in the real file's order (orientation
    fastest), the same names and order as :class:`~dvae_core.data.files.Shapes3DH5`. Images are
    (n, 3, R, R) float32 in [0, 1]; deterministic (the grid point alone fixes the image).

    Args:
        resolution: image side R in pixels (64 as in the real file; 32 works too).
        antialias: ``None`` for the default ``k = ceil(128 / R)`` samples per pixel side, a bool
            (False: 1 sample per pixel; True: the default), or an explicit ``k >= 1``.
        cache: keep each geometry's shading maps once rendered (default); if false every batch
            re-renders its geometries (same images, for timing the renderer itself).
    """

    name = "shapes3d"
    factor_names = SHAPES3D_FACTOR_NAMES
    factor_sizes = SHAPES3D_FACTOR_SIZES

    def __init__(self, resolution: int = 64, antialias: bool | int | None = None, cache: bool = True) -> None:
        if resolution < 8:
            raise ValueError(f"resolution must be >= 8, got {resolution}")
        self.resolution = int(resolution)
        if antialias is None or antialias is True:
            self.supersampling = default_supersampling(self.resolution)
        elif antialias is False:
            self.supersampling = 1
        elif int(antialias) >= 1:
            self.supersampling = int(antialias)
        else:
            raise ValueError(f"antialias must be a bool, None or a supersampling factor >= 1, got {antialias}")
        self.image_shape = (3, self.resolution, self.resolution)
        self.factor_values: tuple[np.ndarray, ...] = (
            SHAPES3D_HUES.copy(),
            SHAPES3D_HUES.copy(),
            SHAPES3D_HUES.copy(),
            SHAPES3D_SCALES.copy(),
            np.arange(4.0),
            SHAPES3D_ORIENTATIONS.copy(),
        )
        # RGB of every hue class, (10, 3).
        self._hue_rgb = hsv_to_rgb(SHAPES3D_HUES, np.ones(10), np.ones(10))
        self.cache = bool(cache)
        self._geometry_sizes = SHAPES3D_FACTOR_SIZES[3:]
        self._maps: torch.Tensor | None = None
        self._cached = np.zeros(int(np.prod(self._geometry_sizes)), dtype=bool)

    def geometry_maps(self, factors: np.ndarray) -> torch.Tensor:
        """Floor/wall/object shading maps (n, 3, R, R) of the (scale, shape, orientation) classes."""
        factors = self._check_factors(factors)
        geometry = np.ravel_multi_index(tuple(factors[:, 3:].T), self._geometry_sizes)
        if not self.cache:
            unique, inverse = np.unique(geometry, return_inverse=True)
            return self._render(unique)[torch.from_numpy(inverse.reshape(-1))]
        if self._maps is None:
            r = self.resolution
            self._maps = torch.zeros(self._cached.size, 3, r, r, dtype=torch.float32)
        missing = np.unique(geometry[~self._cached[geometry]])
        if missing.size:
            self._maps[torch.from_numpy(missing)] = self._render(missing)
            self._cached[missing] = True
        return self._maps[torch.from_numpy(geometry)]

    def _render(self, geometry: np.ndarray) -> torch.Tensor:
        scale, shape, orientation = np.unravel_index(geometry, self._geometry_sizes)
        return render_geometry_maps(
            shape, SHAPES3D_SCALES[scale], SHAPES3D_ORIENTATIONS[orientation], self.resolution, self.supersampling
        )

    def images(self, factors: np.ndarray) -> torch.Tensor:
        factors = self._check_factors(factors)
        maps = self.geometry_maps(factors)
        return compose(maps, *(self._hue_rgb[factors[:, i]] for i in range(3)))

    # The map cache is rebuilt lazily in each process rather than pickled (DataLoader workers).
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"] = None
        state["_cached"] = np.zeros_like(self._cached)
        return state
