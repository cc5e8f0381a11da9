"""The CelebA loader on a tiny fake release: five 178×218 JPEGs and a partition file in the official layout."""

import os

import numpy as np
import pytest

from dvae_core.data import DATASETS, make_dataset
from dvae_core.data.image_sets import celeba, load_celeba_image

W, H = 178, 218
# The central 140×140 box of a 178×218 image: columns 19..158, rows 39..178.
LEFT, TOP, CROP = 19, 39, 140
PARTITION = [("000001.jpg", 0), ("000002.jpg", 1), ("000003.jpg", 0), ("000004.jpg", 2), ("000005.jpg", 0)]


def fake_face(i: int) -> np.ndarray:
    """(H, W, 3) uint8: green outside the central crop; inside it a red top half (blue level 40·i tells images
    apart), a blue bottom half, and a white square in the crop's top-left quarter."""
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[..., 1] = 255
    box = image[TOP:TOP + CROP, LEFT:LEFT + CROP]
    box[:] = (0, 0, 255)
    box[:CROP // 2] = (255, 0, 40 * i)
    box[:CROP // 4, :CROP // 4] = 255
    return image


def write_celeba(root, partition=PARTITION):
    from PIL import Image

    (root / "img_align_celeba").mkdir(parents=True)
    for i, (name, _) in enumerate(partition, 1):
        Image.fromarray(fake_face(i)).save(root / "img_align_celeba" / name, quality=95)
    (root / "list_eval_partition.txt").write_text("".join(f"{name} {part}\n" for name, part in partition))
    return root


@pytest.fixture
def root(tmp_path):
    return write_celeba(tmp_path / "celeba")


def test_splits_shape_order_and_orientation(root):
    train = celeba("train", root=root)
    assert len(train) == 3 and train.name == "celeba/train" and train.image_shape == (3, 64, 64)
    assert train.data.dtype.is_floating_point and str(train.data.dtype) == "torch.float32"
    assert 0.0 <= float(train.data.min()) and float(train.data.max()) <= 1.0
    assert len(celeba("valid", root=root)) == 1 and len(celeba("test", root=root)) == 1
    x = train.data.numpy()
    # Images 1, 3, 5 in the partition file's order: the top half's blue level is 40·i.
    np.testing.assert_allclose(x[:, 2, 20:28, 40:56].mean(axis=(1, 2)), np.array([40, 120, 200]) / 255, atol=0.03)
    np.testing.assert_allclose(celeba("test", root=root).data[0, 2, 20:28, 40:56].mean(), 160 / 255, atol=0.03)
    for image in x:
        red, green, blue = image
        # Centred crop: none of the green surround got in (the white square, top left, is green too).
        surround = green.copy()
        surround[:18, :18] = 0
        assert surround[2:-2, 2:-2].max() < 0.1 and surround.mean() < 0.03
        # Not flipped or transposed: red on top, blue below, the white square top left.
        assert red[36:62, 4:60].max() < 0.1 and blue[36:62, 4:60].min() > 0.9
        assert red[22:30, 36:60].min() > 0.9
        assert image[:, 2:14, 2:14].min() > 0.9 and green[2:14, 50:62].max() < 0.1


def test_crop_offsets_exact_on_a_lossless_image(tmp_path):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "000001.png")
    np.testing.assert_array_equal(load_celeba_image(tmp_path / "000001.png", 140, 140),
                                  pixels[39:179, 19:159].transpose(2, 0, 1))
    np.testing.assert_array_equal(load_celeba_image(tmp_path / "000001.png", 148, 148),
                                  pixels[35:183, 15:163].transpose(2, 0, 1))
    assert load_celeba_image(tmp_path / "000001.png", 32, 108).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="does not fit"):
        load_celeba_image(tmp_path / "000001.png", 64, 200)


def test_limit_and_cache(root, monkeypatch):
    import PIL.Image

    first = celeba("train", root=root, limit=2)
    assert len(first) == 2
    assert (root / "celeba_train_64px_crop140_2.npy").is_file()
    assert not [f for f in os.listdir(root) if f.endswith(".tmp")]

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a JPEG instead of reading the cache")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    again = celeba("train", root=root, limit=2)
    np.testing.assert_array_equal(again.data.numpy(), first.data.numpy())
    with pytest.raises(AssertionError, match="cache"):  # another crop is another cache key
        celeba("train", root=root, limit=2, crop=148)
    monkeypatch.undo()

    whole = celeba("train", root=root)
    np.testing.assert_array_equal(whole.data[:2].numpy(), first.data.numpy())
    monkeypatch.setattr(PIL.Image, "open", no_decoding)
    assert len(celeba("train", root=root, limit=1)) == 1  # served by the whole split's cache
    assert celeba("train", root=root, resolution=32, limit=0).image_shape == (3, 32, 32)  # nothing to decode


def test_registry_default_root_and_nested_root(root, monkeypatch):
    assert DATASETS["celeba"] is celeba
    monkeypatch.setenv("DVAE_DATA_DIR", str(root.parent))
    assert len(make_dataset("celeba", split="valid")) == 1
    assert len(celeba("test", root=root.parent)) == 1  # the folder holding celeba/


def test_clear_errors(tmp_path, root):
    with pytest.raises(ValueError, match=r"\['test', 'train', 'valid'\].*'val'"):
        celeba("val", root=root)
    with pytest.raises(FileNotFoundError, match="img_align_celeba.*CelebA.html.*img_align_celeba.zip"):
        celeba(root=tmp_path / "nowhere")
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt.*Eval/list_eval_partition.txt"):
        celeba(root=root)
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000009.jpg 0\n")
    with pytest.raises(FileNotFoundError, match="000009.jpg"):
        celeba(root=root)
    (root / "list_eval_partition.txt").write_text("000001.jpg train\n")
    with pytest.raises(ValueError, match="line 1"):
        celeba(root=root)
