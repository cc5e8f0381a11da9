"""Tests of dvae_core.data: the procedural sprites, the real-format loaders and binarisation."""

from __future__ import annotations

import colorsys
import gzip
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dvae_core.data import (
    FASHION_MNIST_DIR,
    POSITION_MARGIN,
    SPRITE_EXTENT,
    ColoredSprites,
    DSprites,
    DSpritesNPZ,
    Shapes3DH5,
    binarize_dynamic,
    binarize_static,
    hsv_to_rgb,
    load_mnist_like,
    make_dataset,
    read_idx,
)
from dvae_core.data.sprites import DSPRITES_ORIENTATIONS, DSPRITES_POSITIONS, DSPRITES_SCALES

SQUARE, ELLIPSE, HEART = 0, 1, 2


def dsprites_factors(shape=SQUARE, scale=5, orientation=0, pos_x=16, pos_y=16) -> np.ndarray:
    return np.array([[shape, scale, orientation, pos_x, pos_y]], dtype=np.int64)


def lit_area(image: torch.Tensor) -> float:
    return float(image.sum())


def centroid(image: torch.Tensor) -> tuple[float, float]:
    """(x, y) intensity centroid in pixels of a (1, H, W) or (H, W) image; y grows downwards."""
    image = image.reshape(image.shape[-2:]).double()
    rows = torch.arange(image.shape[0], dtype=torch.float64)
    cols = torch.arange(image.shape[1], dtype=torch.float64)
    total = image.sum()
    return float((image.sum(0) * cols).sum() / total), float((image.sum(1) * rows).sum() / total)


# ---------------------------------------------------------------------------------------------
# Grid, index order, determinism


def test_dsprites_grid_matches_the_real_file():
    ds = DSprites(64)
    assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert ds.factor_sizes == (3, 6, 40, 32, 32)
    assert len(ds) == 737_280
    assert ds.image_shape == (1, 64, 64)
    np.testing.assert_allclose(ds.factor_values[1], np.linspace(0.5, 1, 6))
    np.testing.assert_allclose(ds.factor_values[2], np.linspace(0, 2 * np.pi, 40))
    np.testing.assert_allclose(ds.factor_values[3], np.linspace(0, 1, 32))


def test_colored_sprites_grid_extends_dsprites():
    ds = ColoredSprites(32)
    assert ds.factor_names[:5] == DSprites.factor_names
    assert ds.factor_names[5:] == ("hue", "saturation", "value")
    assert ds.factor_sizes == (3, 6, 40, 32, 32, 10, 5, 5)
    assert len(ds) == 737_280 * 250
    assert ds.image_shape == (3, 32, 32)
    assert ds.factor_values[5].min() >= 0 and ds.factor_values[5].max() < 1
    assert ds.factor_values[6].min() == 0.5 and ds.factor_values[7].max() == 1.0


def test_index_round_trip_and_file_order():
    ds = DSprites(32)
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(ds), 1000)
    np.testing.assert_array_equal(ds.factors_to_index(ds.index_to_factors(index)), index)
    # dSprites file order: posY fastest, then posX, orientation, scale, shape.
    assert ds.factors_to_index(dsprites_factors(0, 0, 0, 0, 1))[0] == 1
    assert ds.factors_to_index(dsprites_factors(0, 0, 0, 1, 0))[0] == 32
    assert ds.factors_to_index(dsprites_factors(0, 0, 1, 0, 0))[0] == 32 * 32
    assert ds.factors_to_index(dsprites_factors(0, 1, 0, 0, 0))[0] == 40 * 32 * 32
    assert ds.factors_to_index(dsprites_factors(1, 0, 0, 0, 0))[0] == 6 * 40 * 32 * 32
    np.testing.assert_array_equal(ds.index_to_factors(np.array([len(ds) - 1]))[0], [2, 5, 39, 31, 31])


@pytest.mark.parametrize("cls", [DSprites, ColoredSprites])
def test_same_seed_same_batch(cls):
    ds = cls(32)
    images_a, factors_a = ds.sample(32, np.random.default_rng(7))
    images_b, factors_b = ds.sample(32, np.random.default_rng(7))
    np.testing.assert_array_equal(factors_a, factors_b)
    assert torch.equal(images_a, images_b)
    images_c, _ = ds.sample(32, np.random.default_rng(8))
    assert not torch.equal(images_a, images_c)


@pytest.mark.parametrize("cls, channels", [(DSprites, 1), (ColoredSprites, 3)])
@pytest.mark.parametrize("resolution", [32, 64])
def test_image_shape_dtype_and_range(cls, channels, resolution):
    ds = cls(resolution)
    images, factors = ds.sample(16, np.random.default_rng(1))
    assert images.shape == (16, channels, resolution, resolution)
    assert images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert (images.flatten(1).amax(1) > 0).all(), "every image shows a sprite"
    assert factors.shape == (16, ds.num_factors) and factors.dtype == np.int64


def test_binary_at_64_antialiased_at_32():
    binary = DSprites(64).images(dsprites_factors(HEART, orientation=7))
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    smooth = DSprites(32).images(dsprites_factors(HEART, orientation=7))
    assert ((smooth > 0) & (smooth < 1)).any()
    forced_binary = DSprites(32, antialias=False).images(dsprites_factors(HEART, orientation=7))
    assert set(forced_binary.unique().tolist()) <= {0.0, 1.0}
    # Supersampling averages the same shape: the covered area agrees with the binary 64 render.
    assert lit_area(smooth) * 4 == pytest.approx(lit_area(binary), rel=0.05)


def test_rejects_bad_factors_and_arguments():
    ds = DSprites(32)
    with pytest.raises(ValueError):
        ds.images(np.array([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError):
        ds.images(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError):
        DSprites(32, scale_values=[0.5, 1.0])


# ---------------------------------------------------------------------------------------------
# Rendering geometry


def reference_render(factors: np.ndarray, resolution: int) -> np.ndarray:
    """Slow per-pixel float64 rendering written from the documented geometry, for comparison."""
    coords = (np.arange(resolution) + 0.5) / resolution
    x, y = np.meshgrid(coords, coords)
    out = np.zeros((len(factors), resolution, resolution))
    span = 1 - 2 * POSITION_MARGIN
    for i, (shape, scale, orientation, pos_x, pos_y) in enumerate(factors):
        half = DSPRITES_SCALES[scale] * SPRITE_EXTENT / 2
        theta = DSPRITES_ORIENTATIONS[orientation]
        dx = x - (POSITION_MARGIN + span * DSPRITES_POSITIONS[pos_x])
        dy_up = (POSITION_MARGIN + span * DSPRITES_POSITIONS[pos_y]) - y
        u = (np.cos(theta) * dx + np.sin(theta) * dy_up) / half
        v = (-np.sin(theta) * dx + np.cos(theta) * dy_up) / half
        if shape == SQUARE:
            inside = np.maximum(abs(u), abs(v)) <= 1
        elif shape == ELLIPSE:
            inside = u**2 + (v / 0.5) ** 2 <= 1
        else:
            hx, hy = u * 1.139, v * 1.11825 + 0.11825
            inside = (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0
        out[i] = inside
    return out


def test_vectorised_renderer_matches_reference():
    ds = DSprites(64)
    factors = ds.sample_factors(48, np.random.default_rng(3))
    factors[:3] = [[0, 5, 5, 0, 0], [1, 5, 3, 31, 0], [2, 5, 11, 31, 31]]  # corners, big, rotated
    fast = ds.images(factors)[:, 0].numpy()
    slow = reference_render(factors, 64)
    # float32 vs float64 can flip a pixel whose centre lies on the boundary to ~1e-7.
    mismatched = (fast != slow).sum(axis=(1, 2))
    assert mismatched.max() <= 2, mismatched


def test_three_shapes_differ():
    ds = DSprites(64)
    images = ds.images(np.array([[s, 5, 0, 16, 16] for s in range(3)]))
    for a in range(3):
        for b in range(a + 1, 3):
            assert (images[a] != images[b]).sum() > 20
    areas = [lit_area(im) for im in images]
    assert areas[ELLIPSE] < areas[HEART] < areas[SQUARE]


def test_scale_one_spans_about_a_third_of_the_image():
    square = DSprites(64).images(dsprites_factors(SQUARE, scale=5))[0, 0]
    columns = torch.nonzero(square.sum(0)).flatten()
    assert columns.max() - columns.min() + 1 == pytest.approx(64 / 3, abs=1.5)


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_bigger_scale_lights_more_pixels(shape):
    ds = DSprites(64)
    areas = [lit_area(im) for im in ds.images(np.array([[shape, s, 4, 16, 16] for s in range(6)]))]
    assert all(a < b for a, b in zip(areas, areas[1:])), areas


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_pos_x_moves_right_and_pos_y_moves_down(shape):
    ds = DSprites(64)
    along_x = ds.images(np.array([[shape, 3, 6, px, 10] for px in (0, 10, 20, 31)]))
    xs = [centroid(im)[0] for im in along_x]
    assert all(a < b for a, b in zip(xs, xs[1:])), xs
    along_y = ds.images(np.array([[shape, 3, 6, 10, py] for py in (0, 10, 20, 31)]))
    ys = [centroid(im)[1] for im in along_y]
    assert all(a < b for a, b in zip(ys, ys[1:])), ys
    # The horizontal position does not move the sprite vertically and vice versa.
    assert np.ptp([centroid(im)[1] for im in along_x]) < 0.5
    assert np.ptp([centroid(im)[0] for im in along_y]) < 0.5


def test_positions_keep_every_sprite_inside_the_frame():
    # Unclipped sprites have the same area wherever they are; check the worst case (largest,
    # 45 degrees) in every corner against the centre, at a resolution where pixelation is small.
    ds = DSprites(128)
    rotated_45 = int(np.argmin(abs(DSPRITES_ORIENTATIONS - np.pi / 4)))
    places = [(16, 16), (0, 0), (31, 0), (0, 31), (31, 31)]
    corners = np.array([[s, 5, rotated_45, px, py] for s in range(3) for px, py in places])
    areas = np.array([lit_area(im) for im in ds.images(corners)]).reshape(3, 5)
    np.testing.assert_allclose(areas[:, 1:], areas[:, :1].repeat(4, axis=1), rtol=0.02)


def test_rotation_changes_a_square_but_keeps_its_area():
    ds = DSprites(64)
    rotated = int(np.argmin(abs(DSPRITES_ORIENTATIONS - np.pi / 6)))
    upright, turned = ds.images(np.array([[SQUARE, 5, 0, 16, 16], [SQUARE, 5, rotated, 16, 16]]))
    assert (upright != turned).sum() > 30
    assert lit_area(turned) == pytest.approx(lit_area(upright), rel=0.05)
    # Orientation 0 and 2*pi are both on the dSprites grid and give the same picture.
    first, last = ds.images(np.array([[HEART, 5, 0, 16, 16], [HEART, 5, 39, 16, 16]]))
    assert torch.equal(first, last)


def test_heart_points_down_and_rotates_counter_clockwise():
    ds = DSprites(64)
    centre = centroid(ds.images(dsprites_factors(SQUARE, orientation=0))[0])
    quarter_turn = int(np.argmin(abs(DSPRITES_ORIENTATIONS - np.pi / 2)))
    upright, turned = ds.images(np.array([[HEART, 5, 0, 16, 16], [HEART, 5, quarter_turn, 16, 16]]))
    # The two lobes carry more mass than the tip: upright, the mass sits above the centre; a quarter
    # turn counter-clockwise brings the lobes to the left.
    assert centroid(upright)[1] < centre[1] - 0.5
    assert centroid(turned)[0] < centre[0] - 0.5


def test_scale_override_gives_small_objects():
    small_scales = np.linspace(0.25, 0.5, 6)
    small, default = DSprites(64, scale_values=small_scales), DSprites(64)
    assert small.factor_sizes == default.factor_sizes
    factors = np.array([[s, 5, 0, 16, 16] for s in range(3)])
    assert (small.images(factors).flatten(1).sum(1) < 0.5 * default.images(factors).flatten(1).sum(1)).all()
    colored_small = ColoredSprites(64, scale_values=small_scales)
    colored_factors = np.array([[0, 5, 0, 16, 16, 0, 0, 0]])
    assert lit_area(colored_small.images(colored_factors)) < lit_area(ColoredSprites(64).images(colored_factors))


# ---------------------------------------------------------------------------------------------
# Coloured sprites


def test_hsv_to_rgb_matches_colorsys():
    rng = np.random.default_rng(0)
    hsv = rng.uniform(0, 1, (50, 3))
    expected = np.array([colorsys.hsv_to_rgb(*row) for row in hsv])
    np.testing.assert_allclose(hsv_to_rgb(hsv[:, 0], hsv[:, 1], hsv[:, 2]), expected, atol=1e-12)


@pytest.mark.parametrize("resolution", [32, 64])
def test_colored_sprite_pixels_have_the_factor_colour(resolution):
    ds = ColoredSprites(resolution)
    factors = ds.sample_factors(20, np.random.default_rng(5))
    factors[:, 1] = 5  # large, so the centre pixel is fully covered at 32x32 too
    factors[:, 0] = SQUARE
    images = ds.images(factors)
    for image, f in zip(images, factors):
        h, s, v = (ds.factor_values[k][f[k]] for k in (5, 6, 7))
        expected = torch.tensor(colorsys.hsv_to_rgb(h, s, v), dtype=torch.float32)
        mask = DSprites(resolution).images(f[None, :5])[0, 0]
        full = mask == 1
        assert full.sum() > 10
        # Every fully covered pixel shows exactly the colour, everything else is a dimmer copy.
        torch.testing.assert_close(image[:, full], expected[:, None].expand(3, int(full.sum())))
        torch.testing.assert_close(image, mask[None] * expected[:, None, None])
        assert image[:, mask == 0].abs().max() == 0, "black background"


# ---------------------------------------------------------------------------------------------
# Real-format files, written small into tmp_path


def write_tiny_dsprites(
    path: Path, sizes=(3, 2, 4, 3, 5), image_side=8, compressed=True, shuffle=False
) -> np.ndarray:
    """An npz with the real keys: color column first, the rest a full grid in ravel order."""
    grids = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    classes = np.concatenate([np.zeros((len(grids), 1), dtype=np.int64), grids], axis=1)
    value_tables = [
        np.ones(1),
        np.arange(1.0, sizes[0] + 1),
        np.linspace(0.5, 1, sizes[1]),
        np.linspace(0, 2 * np.pi, sizes[2]),
        np.linspace(0, 1, sizes[3]),
        np.linspace(0, 1, sizes[4]),
    ]
    values = np.stack([table[classes[:, k]] for k, table in enumerate(value_tables)], axis=1)
    imgs = np.random.default_rng(0).integers(0, 2, (len(grids), image_side, image_side), dtype=np.uint8)
    if shuffle:
        order = np.random.default_rng(1).permutation(len(grids))
        classes, values = classes[order], values[order]
    save = np.savez_compressed if compressed else np.savez
    save(path, imgs=imgs, latents_classes=classes, latents_values=values, metadata=np.array(["tiny"]))
    return imgs


@pytest.mark.parametrize("compressed", [True, False])
def test_dsprites_npz_loader(tmp_path, compressed):
    path = tmp_path / "dsprites_tiny.npz"
    imgs = write_tiny_dsprites(path, image_side=10, compressed=compressed)  # 10: packing pads bits
    ds = make_dataset("dsprites_npz", path=path)
    assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert ds.factor_sizes == (3, 2, 4, 3, 5)
    assert ds.image_shape == (1, 10, 10)
    assert (ds._mapped is None) == compressed, "uncompressed members are memory-mapped"
    np.testing.assert_allclose(ds.factor_values[2], np.linspace(0, 2 * np.pi, 4))
    index = np.array([0, 5, 1, len(ds) - 1, 5, 77])
    images = ds.images(ds.index_to_factors(index))
    assert images.dtype == torch.float32 and images.shape == (6, 1, 10, 10)
    np.testing.assert_array_equal(images[:, 0].numpy(), imgs[index])


def test_dsprites_npz_rejects_wrong_order(tmp_path):
    path = tmp_path / "shuffled.npz"
    write_tiny_dsprites(path, shuffle=True)
    with pytest.raises(ValueError, match="ravel order"):
        DSpritesNPZ(path)


def write_tiny_shapes3d(path: Path, shuffle=False) -> tuple[np.ndarray, list[np.ndarray]]:
    value_tables = [
        np.linspace(0, 0.9, 3),  # floor hue
        np.linspace(0, 0.9, 2),  # wall hue
        np.linspace(0, 0.9, 2),  # object hue
        np.linspace(0.75, 1.25, 3),  # scale
        np.arange(4.0),  # shape
        np.linspace(-30, 30, 5),  # orientation
    ]
    sizes = [len(t) for t in value_tables]
    grids = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    labels = np.stack([table[grids[:, k]] for k, table in enumerate(value_tables)], axis=1)
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 6, 6, 3), dtype=np.uint8)
    if shuffle:
        labels = labels[np.random.default_rng(1).permutation(len(labels))]
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
    return images, value_tables


def test_shapes3d_h5_loader(tmp_path):
    path = tmp_path / "3dshapes_tiny.h5"
    images, value_tables = write_tiny_shapes3d(path)
    ds = make_dataset("shapes3d_h5", path=path)
    assert ds.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert ds.factor_sizes == (3, 2, 2, 3, 4, 5)
    assert ds.image_shape == (3, 6, 6)
    for values, table in zip(ds.factor_values, value_tables):
        np.testing.assert_allclose(values, table)
    index = np.array([17, 3, 3, 0, len(ds) - 1, 100])  # unsorted, with a repeat: h5py needs help
    batch = ds.images(ds.index_to_factors(index))
    assert batch.dtype == torch.float32 and batch.shape == (6, 3, 6, 6)
    np.testing.assert_allclose(batch.numpy(), images[index].transpose(0, 3, 1, 2) / 255.0, atol=1e-7)
    # Survives pickling (DataLoader workers) by reopening the file.
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone.images(ds.index_to_factors(index)), batch)
    in_memory = Shapes3DH5(path, in_memory=True)
    assert torch.equal(in_memory.images(ds.index_to_factors(index)), batch)
    for d in (ds, clone, in_memory):
        d.close()


def test_shapes3d_h5_rejects_wrong_order(tmp_path):
    path = tmp_path / "shuffled.h5"
    write_tiny_shapes3d(path, shuffle=True)
    with pytest.raises(ValueError, match="ravel order"):
        Shapes3DH5(path)


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="deepmind/dsprites-dataset") as error:
        make_dataset("dsprites_npz", path=tmp_path / "nope.npz")
    assert "path=" in str(error.value) and "nope.npz" in str(error.value)
    with pytest.raises(FileNotFoundError, match="deepmind/3d-shapes") as error:
        make_dataset("shapes3d_h5", path=tmp_path / "nope.h5")
    assert "path=" in str(error.value) and "storage.googleapis.com" in str(error.value)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_mnist_like(tmp_path)


def write_idx(path: Path, array: np.ndarray, dtype_code: int, compress: bool) -> None:
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, dtype_code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + big_endian.tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize(
    "dtype_code, array",
    [
        (0x08, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)),
        (0x0C, np.array([-70000, 1, 2**30], dtype=np.int32)),
        (0x0D, np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)),
    ],
)
def test_read_idx_round_trip(tmp_path, compress, dtype_code, array):
    path = tmp_path / ("data.idx.gz" if compress else "data.idx")
    write_idx(path, array, dtype_code, compress)
    loaded = read_idx(path)
    assert loaded.shape == array.shape and loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x01\x02\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc")
    with pytest.raises(ValueError):
        read_idx(truncated)


def test_load_mnist_like_from_gz_and_raw(tmp_path):
    rng = np.random.default_rng(0)
    splits = {"train": ("train", 7, True), "test": ("t10k", 3, False)}  # train gzipped, test raw
    expected = {}
    for split, (prefix, n, compress) in splits.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, 0x08, compress)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, 0x08, compress)
        expected[split] = images, labels
    for split, (images, labels) in expected.items():
        got_images, got_labels = load_mnist_like(tmp_path, split)
        assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)
    with pytest.raises(ValueError):
        load_mnist_like(tmp_path, "validation")


@pytest.mark.skipif(not Path(FASHION_MNIST_DIR).is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_default_loads():
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = load_mnist_like(split=split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert set(np.unique(labels).tolist()) == set(range(10))


# ---------------------------------------------------------------------------------------------
# Binarisation and the registry


def test_binarize_static_is_a_fixed_draw():
    probabilities = torch.rand(64, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    first, again = binarize_static(probabilities, seed=3), binarize_static(probabilities, seed=3)
    assert torch.equal(first, again)
    assert set(first.unique().tolist()) <= {0.0, 1.0} and first.dtype == probabilities.dtype
    assert not torch.equal(first, binarize_static(probabilities, seed=4))
    assert first.mean().item() == pytest.approx(probabilities.mean().item(), abs=0.02)
    # Certain pixels stay certain.
    extremes = torch.tensor([0.0, 1.0]).repeat(100)
    assert torch.equal(binarize_static(extremes, seed=0), extremes)


def test_binarize_dynamic_draws_afresh():
    probabilities = torch.full((4096,), 0.5)
    generator = torch.Generator().manual_seed(0)
    a, b = binarize_dynamic(probabilities, generator), binarize_dynamic(probabilities, generator)
    assert not torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    replay = torch.Generator().manual_seed(0)
    assert torch.equal(binarize_dynamic(probabilities, replay), a)
    with pytest.raises(ValueError):
        binarize_dynamic(torch.tensor([1.5]))


def test_registry_builds_procedural_datasets_and_names_the_known_ones():
    ds = make_dataset("dsprites", resolution=32)
    assert isinstance(ds, DSprites) and ds.image_shape == (1, 32, 32)
    colored = make_dataset("colored_sprites", resolution=64, antialias=True)
    assert isinstance(colored, ColoredSprites) and colored.supersampling == 4
    with pytest.raises(ValueError, match="dsprites_npz") as error:
        make_dataset("mnist")
    for known in ("dsprites", "colored_sprites", "dsprites_npz", "shapes3d_h5"):
        assert known in str(error.value)


# ---------------------------------------------------------------------------------------------
# Batches drawn on the training device


@pytest.mark.parametrize("name,kwargs", [("dsprites", {}), ("colored_sprites", {}),
                                         ("colored_sprites", {"scale_values": [0.2, 0.24, 0.28, 0.32, 0.36, 0.4]}),
                                         ("colored_sprites", {"holdout": {"shape": (0, 1), "pos_x": (16, 32)}})])
def test_a_batch_drawn_on_a_device_is_the_cpu_batch(name, kwargs):
    """The factors come from the same numpy stream whatever the device, and on the CPU the device path is
    the same computation bit for bit. On the "meta" device (shapes only, no data) every per-pixel tensor
    must live on the device: one left on the CPU would raise when mixed with it."""
    dataset = make_dataset(name, resolution=32, **kwargs)
    plain, plain_factors = dataset.sample(64, np.random.default_rng(5))
    on_cpu, cpu_factors = dataset.sample(64, np.random.default_rng(5), device="cpu")
    assert torch.equal(plain, on_cpu) and np.array_equal(plain_factors, cpu_factors)
    on_meta, meta_factors = dataset.sample(64, np.random.default_rng(5), device="meta")
    assert on_meta.device.type == "meta" and on_meta.shape == plain.shape and on_meta.dtype == plain.dtype
    assert np.array_equal(meta_factors, plain_factors)


@pytest.mark.parametrize("binarize", [None, "static", "dynamic"])
def test_an_image_set_is_copied_to_the_device_once_and_draws_the_same_batches(binarize):
    from dvae_core.data.image_sets import ImageSet

    pixels = np.random.default_rng(0).integers(0, 256, (50, 8, 8), dtype=np.uint8)
    images = ImageSet(pixels, np.arange(50) % 10, "toy", binarize=binarize)
    plain, labels = images.sample(16, np.random.default_rng(1))
    on_cpu, cpu_labels = images.sample(16, np.random.default_rng(1), device="cpu")
    assert torch.equal(plain, on_cpu) and np.array_equal(labels, cpu_labels)
    assert images.on("cpu") is images.data
    on_meta, _ = images.sample(16, np.random.default_rng(1), device="meta")
    assert on_meta.device.type == "meta" and on_meta.shape == plain.shape
    assert images.on("meta") is images.on("meta")  # kept on the device, not copied per batch
