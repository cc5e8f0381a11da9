"""Decoders for the browser: the explorer's live traversal on the static book page, with no kernel.

A decoder is exported to ONNX (:func:`export_decoder`) and run in the reader's browser by onnxruntime-web,
vendored from npm (``scripts/vendor_js.sh``; ``book/_ext/live_decoder.py`` puts it on the page). What the
browser decodes is what :meth:`dvae_core.models.vae.VAE.decode` returns: the mean image of p(x | z) in
[0, 1], for one latent vector of shape (1, k).

:func:`write_live_decoders` writes, for each model, its ONNX file and one entry of ``decoders.json``: the
latents' KL on the seed images (informative latents first on the page), the posterior means of the seed
images (where each traversal starts), the seed images themselves, and a reference decoding by torch, which
the page decodes again and compares (``data-max-abs-diff``), so a page whose runtime disagrees with torch
says so. Before writing, each export is checked here against torch with onnxruntime (CPU): the largest
absolute difference of any pixel is recorded, and an export above :data:`EXPORT_TOLERANCE` is refused.
"""

from __future__ import annotations

import base64
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from dvae_core.infra import atomic_write_bytes, atomic_write_text
from dvae_core.models import gaussian_kl
from dvae_core.plots import strip_png

#: The ONNX opset of the exports: supported by onnxruntime-web's wasm backend and by onnxruntime.
OPSET = 17
#: Largest |ONNX − torch| of a decoded pixel (float32; both in [0, 1]) an export may have. Float32 kernels
#: sum in different orders, so a few ulps of the pixels' scale are expected; anything near 1e-3 is a bug.
EXPORT_TOLERANCE = 1e-4
#: The traversal range of every slider (the static explorer's, ``explorer.traversal_animation``).
SLIDER_RANGE = (-3.0, 3.0)
FORMAT = "dvae-live-decoders/1"


class MeanImage(nn.Module):
    """``z ↦ model.decode(z)``: decoder and likelihood mean as one module, the graph the browser runs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


def export_decoder(model: nn.Module, latent_dim: int) -> bytes:
    """The ONNX bytes of ``model.decode`` for one latent vector (input ``z``: (1, k), output ``image``:
    (1, C, H, W)). Uses torch's TorchScript-based exporter, which needs only the ``onnx`` package (the newer
    torch.export-based one also needs onnxscript); its deprecation notice is silenced here."""
    module = MeanImage(model).eval().cpu()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, latent_dim),), buffer, dynamo=False, input_names=["z"],
                          output_names=["image"], opset_version=OPSET)
    return buffer.getvalue()


def onnx_decode(onnx_bytes: bytes, z: np.ndarray) -> np.ndarray:
    """Decode one latent vector ``z`` (k,) with onnxruntime on the CPU: the image (C, H, W)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {"z": np.asarray(z, np.float32)[None]})[0][0]


def _png_data_uri(image: torch.Tensor) -> str:
    return "data:image/png;base64," + base64.b64encode(strip_png([image], height=image.shape[-2])).decode()


@dataclass(frozen=True)
class LiveDecoder:
    """One model on the page: its key (file name), title, ONNX file and how well the export matches torch."""
    key: str
    title: str
    file: str
    size_bytes: int
    latent_dim: int
    max_abs_diff: float


def write_live_decoders(models: Mapping[str, tuple[str, nn.Module]], images: torch.Tensor, kl_images: torch.Tensor,
                        out_dir: Path) -> list[LiveDecoder]:
    """Export every model of ``models`` (key → (title, VAE)) to ``out_dir/<key>.onnx`` and describe them in
    ``out_dir/decoders.json``; ``images`` are the seed images the page offers, ``kl_images`` the images the
    latents' KL is measured on. Each file is written atomically, the description last."""
    out_dir = Path(out_dir)
    entries, written = [], []
    for key, (title, model) in models.items():
        model = model.eval()
        device = next(model.parameters()).device
        with torch.inference_mode():
            means = model.encode(images.to(device))[0].float().cpu()
            kl = gaussian_kl(*model.encode(kl_images.to(device))).mean(0).double().cpu().numpy()
            reference = model.decode(means[:1].to(device))[0].float().cpu()
        latent_dim = means.shape[1]
        onnx_bytes = export_decoder(model, latent_dim)
        diff = float(np.abs(onnx_decode(onnx_bytes, means[0].numpy()) - reference.numpy()).max())
        if not diff <= EXPORT_TOLERANCE:
            raise RuntimeError(f"{key}: the ONNX export decodes up to {diff:.2g} away from torch "
                               f"(tolerance {EXPORT_TOLERANCE:g}); it is not written")
        atomic_write_bytes(out_dir / f"{key}.onnx", onnx_bytes)
        channels, height, width = reference.shape
        entries.append({
            "key": key, "title": title, "file": f"{key}.onnx", "latent_dim": latent_dim,
            "image_shape": [channels, height, width],
            "kl": [round(float(v), 4) for v in kl],
            "order": [int(d) for d in np.argsort(-kl, kind="stable")],
            "posterior_means": [[round(float(v), 6) for v in row] for row in means],
            "reference": {"image": 0, "pixels": [round(float(v), 7) for v in reference.flatten()]},
            "export_max_abs_diff": diff,
        })
        written.append(LiveDecoder(key, title, f"{key}.onnx", len(onnx_bytes), latent_dim, diff))
    description = {"format": FORMAT, "opset": OPSET, "slider_range": list(SLIDER_RANGE),
                   "tolerance": EXPORT_TOLERANCE, "images": [_png_data_uri(im) for im in images], "models": entries}
    atomic_write_text(out_dir / "decoders.json", json.dumps(description, indent=1) + "\n")
    return written


def read_live_decoders(folder: Path) -> dict:
    """``decoders.json`` of ``folder`` with every model's ONNX bytes added as base64 (``onnx_base64``): what the
    page's script receives."""
    folder = Path(folder)
    description = json.loads((folder / "decoders.json").read_text())
    if description.get("format") != FORMAT:
        raise ValueError(f"{folder / 'decoders.json'}: format {description.get('format')!r}, expected {FORMAT!r}")
    for entry in description["models"]:
        entry["onnx_base64"] = base64.b64encode((folder / entry["file"]).read_bytes()).decode()
    return description


__all__ = ["OPSET", "EXPORT_TOLERANCE", "SLIDER_RANGE", "MeanImage", "export_decoder", "onnx_decode", "LiveDecoder",
           "write_live_decoders", "read_live_decoders"]
