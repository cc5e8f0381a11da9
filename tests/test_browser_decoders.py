"""The explorer's live decoder: ONNX exports of both decoders decode what torch decodes, and the page's files
(decoders.json, the ONNX files, the inline bundle) are what book/_ext/live_decoder.py and live_decoder.js read."""

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dvae_core import browser
from dvae_core.models.vae import VAE, VAEConfig

ROOT = Path(__file__).resolve().parents[1]


def small_vae(decoder: str, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(VAEConfig(decoder=decoder, latent_dim=5, in_channels=3, resolution=16, encoder_channels=8,
                         decoder_channels=8, hidden=16)).eval()


@pytest.mark.parametrize("decoder", ["sb", "deconv"])
def test_the_onnx_export_decodes_what_torch_decodes(decoder):
    model = small_vae(decoder)
    onnx_bytes = browser.export_decoder(model, 5)
    for z in np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32) * 2:
        expected = model.decode(torch.from_numpy(z)[None])[0].detach().numpy()
        got = browser.onnx_decode(onnx_bytes, z)
        assert got.shape == expected.shape == (3, 16, 16)
        assert np.abs(got - expected).max() <= browser.EXPORT_TOLERANCE
        assert 0 <= got.min() and got.max() <= 1  # the likelihood's mean image, not logits


def test_an_export_that_disagrees_with_torch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(browser, "onnx_decode", lambda onnx_bytes, z: np.full((3, 16, 16), 2.0, np.float32))
    images = torch.rand(2, 3, 16, 16)
    with pytest.raises(RuntimeError, match="away from torch"):
        browser.write_live_decoders({"sb": ("SB", small_vae("sb"))}, images, images, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_the_page_gets_each_model_its_latents_start_points_and_a_reference(tmp_path):
    images = torch.rand(4, 3, 16, 16)
    models = {"sb": ("Spatial Broadcast", small_vae("sb")), "deconv": ("DeConv", small_vae("deconv", 1))}
    written = browser.write_live_decoders(models, images, images, tmp_path)
    assert [w.key for w in written] == ["sb", "deconv"]
    description = browser.read_live_decoders(tmp_path)
    assert description["format"] == browser.FORMAT and len(description["images"]) == 4
    assert all(src.startswith("data:image/png;base64,") for src in description["images"])
    for entry, (key, (title, model)) in zip(description["models"], models.items()):
        assert entry["key"] == key and entry["title"] == title and entry["image_shape"] == [3, 16, 16]
        kl = np.array(entry["kl"])
        assert sorted(entry["order"]) == list(range(5)) and np.all(np.diff(kl[entry["order"]]) <= 0)
        means = np.array(entry["posterior_means"], np.float32)
        assert means.shape == (4, 5)
        # the reference is torch's decoding of seed image 0's posterior mean, which the page decodes again
        onnx_bytes = base64.b64decode(entry["onnx_base64"])
        again = browser.onnx_decode(onnx_bytes, means[entry["reference"]["image"]]).flatten()
        assert np.abs(again - np.array(entry["reference"]["pixels"])).max() <= browser.EXPORT_TOLERANCE


def test_the_bundle_becomes_an_inline_module_that_publishes_ort():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import live_decoder
    finally:
        sys.path.pop(0)
    bundle = "var a=1,b=function(){};export{a as InferenceSession,b as Tensor,c as env,d};\n//# sourceMappingURL=x.map"
    script = live_decoder.module_script(bundle)
    assert "export" not in script and "sourceMappingURL" not in script
    assert 'globalThis.ort = {"InferenceSession": a, "Tensor": b, "env": c, "d": d};' in script
    assert script.rstrip().endswith('window.dispatchEvent(new Event("dvae-ort-ready"));')
    vendored = ROOT / live_decoder.BUNDLE
    if vendored.exists():  # the real one (scripts/setup.sh vendors it)
        real = live_decoder.module_script(vendored.read_text(encoding="utf8"))
        assert "globalThis.ort = {" in real and '"InferenceSession"' in real and '"Tensor"' in real


def test_the_committed_decoders_are_the_preview_explorers():
    folder = ROOT / "results" / "preview" / "sbd_explorer"
    description = json.loads((folder / "decoders.json").read_text())
    assert [m["key"] for m in description["models"]] == ["sb", "deconv"]
    for entry in description["models"]:
        assert (folder / entry["file"]).is_file()
        assert entry["export_max_abs_diff"] <= browser.EXPORT_TOLERANCE
