"""Tests of the procedural 3dshapes renderer (dvae_core.data.shapes3d) and the 3D Chairs folder loader."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dvae_core.data import ChairsFolder, Shapes3D, Shapes3DH5, hsv_to_rgb, make_dataset, render_shapes3d
from dvae_core.data.shapes3d import SHAPES3D_ORIENTATIONS, SHAPES3D_SCALES

CUBE, CYLINDER, SPHERE, CAPSULE = 0, 1, 2, 3


@pytest.fixture(scope="module")
def shapes64() -> Shapes3D:
    return Shapes3D(64)


@pytest.fixture(scope="module")
def shapes32() -> Shapes3D:
    return Shapes3D(32)


def point(floor=0, wall=3, obj=6, scale=4, shape=CUBE, orientation=7) -> list[int]:
    return [floor, wall, obj, scale, shape, orientation]


def grid(*points: list[int]) -> np.ndarray:
    return np.array(points, dtype=np.int64)


def object_area(dataset: Shapes3D, **kwargs) -> int:
    """Pixels whose colour changes with the object hue (only the object's do)."""
    a, b = dataset.images(grid(point(obj=0, **kwargs), point(obj=5, **kwargs)))
    return int(((a - b).abs().amax(0) > 1e-3).sum())


# --- procedural 3dshapes -----------------------------------------------------------------------


def test_grid_matches_the_real_file(shapes64):
    assert shapes64.factor_names == Shapes3DH5.factor_names
    assert shapes64.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert shapes64.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert len(shapes64) == 480_000
    values = shapes64.factor_values
    for hues in values[:3]:
        np.testing.assert_allclose(hues, np.arange(10) / 10)
    np.testing.assert_allclose(values[3], np.linspace(0.75, 1.25, 8))
    np.testing.assert_array_equal(values[4], [0, 1, 2, 3])
    np.testing.assert_allclose(values[5], np.linspace(-30, 30, 15))
    assert make_dataset("shapes3d", resolution=32).image_shape == (3, 32, 32)


def test_index_round_trip_orientation_fastest(shapes64):
    index = np.random.default_rng(0).integers(0, len(shapes64), 1000)
    np.testing.assert_array_equal(shapes64.factors_to_index(shapes64.index_to_factors(index)), index)
    np.testing.assert_array_equal(shapes64.factors_to_index(grid([0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0])), [1, 15])
    np.testing.assert_array_equal(shapes64.index_to_factors(np.array([len(shapes64) - 1])), [[9, 9, 9, 7, 3, 14]])


def test_deterministic_and_cache_is_transparent(shapes64):
    images_a, factors_a = shapes64.sample(24, np.random.default_rng(7))
    images_b, factors_b = Shapes3D(64, cache=False).sample(24, np.random.default_rng(7))
    np.testing.assert_array_equal(factors_a, factors_b)
    torch.testing.assert_close(images_a, images_b, rtol=0, atol=1e-6)
    clone = pickle.loads(pickle.dumps(shapes64))  # the cache is not shipped, images are the same
    torch.testing.assert_close(clone.images(factors_a), images_a, rtol=0, atol=1e-6)


@pytest.mark.parametrize("resolution", [32, 64])
def test_shape_dtype_and_range(resolution, shapes32, shapes64):
    dataset = shapes64 if resolution == 64 else shapes32
    images, _ = dataset.sample(16, np.random.default_rng(resolution))
    assert images.shape == (16, 3, resolution, resolution) and images.dtype == torch.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert float(images.max()) > 0.5  # bright, saturated colours


def test_rejects_bad_factors(shapes64):
    with pytest.raises(ValueError):
        shapes64.images(grid([0, 0, 0, 8, 0, 0]))
    with pytest.raises(ValueError):
        shapes64.images(np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(ValueError):
        Shapes3D(64, antialias=0)


def test_continuous_renderer_matches_the_grid(shapes32):
    factors = grid(point(floor=2, wall=5, obj=9, scale=3, shape=CAPSULE, orientation=11))
    expected = shapes32.images(factors)
    images = render_shapes3d(0.2, 0.5, 0.9, SHAPES3D_SCALES[3], CAPSULE, SHAPES3D_ORIENTATIONS[11], resolution=32)
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-5)


def _colour(pixel: torch.Tensor) -> np.ndarray:
    """A pixel's RGB divided by its largest channel: the hue's full-value colour under white light."""
    pixel = pixel.double().numpy()
    return pixel / pixel.max()


@pytest.mark.parametrize("hue", [0, 3, 7])
def test_floor_wall_and_object_hues_colour_their_regions(shapes64, hue):
    base = point(floor=1, wall=4, obj=8, scale=4, shape=CUBE, orientation=7)
    reference = shapes64.images(grid(base))[0]
    full = hsv_to_rgb(np.array([hue / 10]), np.ones(1), np.ones(1))[0]
    for factor, region, elsewhere in (
        (0, (slice(-3, None), slice(None)), (slice(0, 3), slice(None))),  # floor: bottom rows
        (1, (slice(0, 3), slice(None)), (slice(-3, None), slice(None))),  # wall: top rows
        (2, (slice(29, 35), slice(29, 35)), (slice(0, 3), slice(None))),  # object: the centre
    ):
        changed = list(base)
        changed[factor] = hue
        image = shapes64.images(grid(changed))[0]
        for pixel in image[(slice(None),) + region].reshape(3, -1).T:
            np.testing.assert_allclose(_colour(pixel), full, atol=2e-3)
        # The rest of the scene is untouched (bottom rows for the wall, top rows otherwise).
        torch.testing.assert_close(image[(slice(None),) + elsewhere], reference[(slice(None),) + elsewhere])


def test_object_hue_changes_only_a_central_region(shapes64):
    a, b = shapes64.images(grid(point(obj=0), point(obj=5)))
    rows, cols = torch.nonzero((a - b).abs().amax(0) > 1e-3, as_tuple=True)
    assert rows.numel() > 50
    assert 16 < float(rows.float().mean()) < 48 and 20 < float(cols.float().mean()) < 44
    assert int(rows.min()) > 3 and int(rows.max()) < 60 and int(cols.min()) > 3 and int(cols.max()) < 60


@pytest.mark.parametrize("shape", [CUBE, CYLINDER, SPHERE, CAPSULE])
def test_bigger_scale_covers_more_pixels(shapes64, shape):
    areas = [object_area(shapes64, scale=s, shape=shape) for s in range(8)]
    assert all(b > a for a, b in zip(areas, areas[1:])), areas
    # Uniform scaling: area grows roughly like scale^2 ((1.25 / 0.75)^2 = 2.8).
    assert 2.0 < areas[-1] / areas[0] < 3.6, areas


def test_four_shapes_differ(shapes64):
    images = shapes64.images(grid(*(point(shape=s, orientation=3) for s in range(4))))
    for i in range(4):
        for j in range(i + 1, 4):
            assert float((images[i] - images[j]).abs().sum(0).gt(0.1).sum()) > 40, (i, j)


def test_orientation_turns_a_cube_but_not_a_sphere(shapes64):
    def turned(shape):
        return shapes64.images(grid(*(point(shape=shape, orientation=o) for o in range(15))))

    for shape in (CUBE, CAPSULE):
        images = turned(shape)
        changed = [float((images[o] - images[7]).abs().amax()) for o in range(15) if o != 7]
        assert min(changed) > 0.1, (shape, changed)
        # +-30 degrees: mirror-image silhouettes, not the same image.
        assert float((images[0] - images[14]).abs().amax()) > 0.1
    for shape in (SPHERE, CYLINDER):  # rotation-symmetric about the vertical axis
        images = turned(shape)
        assert float((images - images[7]).abs().amax()) < 1e-3


# --- 3D Chairs folder --------------------------------------------------------------------------

CHAIR_IDS = ("1b2c3d", "0a9f8e")  # written unsorted; the loader sorts them
PITCHES = (20, 30)
THETAS = (0, 11, 23)
SIDE = 16


def chair_pixels(chair: int, pitch: int, theta: int) -> np.ndarray:
    """A distinct RGB pattern (SIDE, SIDE, 3) for every view: a gradient plus a view code."""
    ramp = np.arange(SIDE, dtype=np.int64)
    image = np.empty((SIDE, SIDE, 3), dtype=np.int64)
    image[..., 0] = 10 * ramp[:, None] + 40 * chair
    image[..., 1] = 7 * ramp[None, :] + 3 * pitch
    image[..., 2] = 60 + 4 * theta + 50 * chair
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture()
def chairs_root(tmp_path) -> Path:
    root = tmp_path / "rendered_chairs"
    for chair_id in CHAIR_IDS:
        renders = root / chair_id / "renders"
        renders.mkdir(parents=True)
        for view, (pitch, theta) in enumerate((p, t) for p in PITCHES for t in THETAS):
            chair = sorted(CHAIR_IDS).index(chair_id)
            name = f"image_{view:03d}_p{pitch:03d}_t{theta:03d}_r096.png"
            Image.fromarray(chair_pixels(chair, pitch, theta)).save(renders / name)
        (renders / "notes.txt").write_text("not a render")
    (root / "all_chair_names.mat").write_bytes(b"")  # other files in the folder are ignored
    return root


def test_chairs_grid_from_file_names(chairs_root):
    chairs = ChairsFolder(chairs_root, resolution=SIDE, grayscale=False)
    assert chairs.factor_names == ("chair", "elevation", "azimuth")
    assert chairs.factor_sizes == (2, 2, 3) and len(chairs) == 12
    assert chairs.chair_ids == tuple(sorted(CHAIR_IDS))
    np.testing.assert_array_equal(chairs.factor_values[1], PITCHES)
    np.testing.assert_array_equal(chairs.factor_values[2], THETAS)
    assert chairs.image_shape == (3, SIDE, SIDE)
    # The parent folder works too, and so does the registry.
    assert len(make_dataset("chairs", root=chairs_root.parent, resolution=SIDE)) == 12


def test_chairs_images_match_the_files(chairs_root):
    rgb = ChairsFolder(chairs_root, resolution=SIDE, grayscale=False)
    gray = ChairsFolder(chairs_root, resolution=SIDE)
    factors = np.array([[c, p, t] for c in range(2) for p in range(2) for t in range(3)][::-1], dtype=np.int64)
    images = rgb.images(factors)
    assert images.shape == (12, 3, SIDE, SIDE) and images.dtype == torch.float32
    for image, (c, p, t) in zip(images, factors):
        expected = chair_pixels(c, PITCHES[p], THETAS[t]).transpose(2, 0, 1) / 255.0
        np.testing.assert_allclose(image.numpy(), expected, atol=1e-6)
        path = chairs_root / rgb.chair_ids[c] / "renders"
        assert rgb.files[rgb.factors_to_index(np.array([[c, p, t]]))[0]].parent == path
    gray_images = gray.images(factors)
    assert gray_images.shape == (12, 1, SIDE, SIDE)
    for image, (c, p, t) in zip(gray_images, factors):
        expected = np.asarray(Image.fromarray(chair_pixels(c, PITCHES[p], THETAS[t])).convert("L")) / 255.0
        np.testing.assert_allclose(image[0].numpy(), expected, atol=1e-6)
    # Served from the cache the second time: same result.
    torch.testing.assert_close(gray.images(factors), gray_images)


def test_chairs_crop_resize_and_transparency(tmp_path):
    renders = tmp_path / "rendered_chairs" / "c0" / "renders"
    renders.mkdir(parents=True)
    image = np.zeros((40, 40, 4), dtype=np.uint8)
    image[..., :3] = (200, 30, 30)  # red border
    image[10:30, 10:30, :3] = (30, 30, 200)  # blue centre
    image[..., 3] = 255
    image[0:2, :, 3] = 0  # transparent top rows -> white
    Image.fromarray(image).save(renders / "image_000_p020_t000_r096.png")
    cropped = ChairsFolder(tmp_path, resolution=8, grayscale=False, crop=0.5).images(np.zeros((1, 3), np.int64))[0]
    blue = np.broadcast_to(np.array([30, 30, 200])[:, None, None] / 255, (3, 8, 8))
    np.testing.assert_allclose(cropped.numpy(), blue, atol=2 / 255)
    whole = ChairsFolder(tmp_path, resolution=40, grayscale=False).images(np.zeros((1, 3), np.int64))[0]
    np.testing.assert_allclose(whole[:, 0].numpy(), 1.0)  # alpha 0 put on white
    assert whole.shape == (3, 40, 40)


def test_chairs_missing_folder_and_incomplete_grid(tmp_path, chairs_root):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="seeing3Dchairs") as error:
        ChairsFolder(missing)
    assert str(missing) in str(error.value) and "root=" in str(error.value)
    with pytest.raises(FileNotFoundError):
        make_dataset("chairs", root=missing)
    next((chairs_root / CHAIR_IDS[0] / "renders").glob("image_003_*.png")).unlink()
    with pytest.raises(ValueError, match="not a full grid"):
        ChairsFolder(chairs_root)
