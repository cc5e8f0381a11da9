"""An interactive latent-traversal explorer for the Spatial Broadcast chapter's Fig. 2 runs.

Two views of the same thing — decode one image's posterior mean with a single latent set to a
chosen value:

- :class:`TraversalExplorer`, an ipywidgets UI (model, seed image, latent, value) that decodes
  live in a Jupyter kernel;
- :func:`traversal_animation` + :func:`animation_html`, precomputed frames behind a slider that
  needs no kernel (matplotlib's JavaScript animation, made self-contained), for the rendered book.

The runs come from the run store (:func:`dvae_core.sweep.get_or_train_all`), so once the Fig. 2
notebook has trained them, opening the explorer costs only loading the checkpoints.
"""

from __future__ import annotations

import json
import re
from typing import Sequence

import numpy as np
import torch

from dvae_core.evaluate import traverse
from dvae_core.papers import sbd
from dvae_core.models import gaussian_kl
from dvae_core.plots import rgb_hwc as _hwc, strip_png
from dvae_core.runs import config_hash
from dvae_core.sweep import get_or_train_all

FIG2_NOTEBOOK = "sbd_fig2_deconv_vs_sb"


# --------------------------------------------------------------------------- runs


def load_fig2_runs(p: sbd.SBDProfile, device: str = "auto") -> list[dict]:
    """The Fig. 2 runs of profile ``p`` from the run store (training any that are missing)."""
    runs = get_or_train_all(sbd.fig2_configs(p), device=device)
    for run in runs:
        c = run["config"]
        print(f"{c.model.decoder:6s} seed {c.seed}: {'reused' if run['reused'] else 'trained'} "
              f"(runs/{config_hash(c)})")
    print(f"{sum(r['reused'] for r in runs)} of {len(runs)} runs reused from the run store")
    return runs


def fig2_migs(profile: str) -> dict[tuple[str, int], float]:
    """MIG per (decoder, seed) as the Fig. 2 notebook measured it, if it has run in this profile."""
    from dvae_core.claims import results_path

    path = results_path(profile, FIG2_NOTEBOOK)
    if not path.exists():
        return {}
    return {(r["decoder"], int(r["seed"])): float(r["mig"]) for r in json.loads(path.read_text()).get("runs", [])}


def run_label(run: dict, migs: dict[tuple[str, int], float]) -> str:
    c = run["config"]
    mig = migs.get((c.model.decoder, c.seed))
    return f"{sbd.DECODER_NAMES[c.model.decoder]}, seed {c.seed}" + (f" (MIG {mig:.3f})" if mig is not None else "")


def median_mig_run(runs: list[dict], decoder: str, migs: dict[tuple[str, int], float]) -> dict:
    """The run of ``decoder`` nearest the median MIG, as the Fig. 2 notebook picks it (:func:`sbd.median_index`:
    for an even number of seeds the lower middle MIG, which does not flatter the model); the first run
    when the Fig. 2 notebook's MIGs are missing."""
    mine = [r for r in runs if r["config"].model.decoder == decoder]
    scored = sorted((migs[(decoder, r["config"].seed)], i) for i, r in enumerate(mine)
                    if (decoder, r["config"].seed) in migs)
    if len(scored) != len(mine):
        return mine[0]
    return mine[scored[sbd.median_index(len(scored), higher_is_better=True)][1]]


# --------------------------------------------------------------------------- decoding


@torch.inference_mode()
def kl_per_dim(model, images: torch.Tensor) -> np.ndarray:
    """Mean KL(q(z_d|x) || N(0, 1)) per latent over ``images``: which latents carry information."""
    dev = next(model.parameters()).device
    mean, logvar = model.encode(images.to(dev))
    return gaussian_kl(mean, logvar).mean(0).cpu().double().numpy()


@torch.inference_mode()
def decode_at(model, image: torch.Tensor, dim: int, value: float) -> torch.Tensor:
    """Decode the posterior mean of ``image`` with latent ``dim`` set to ``value``."""
    dev = next(model.parameters()).device
    z = model.encode(image[None].to(dev))[0]
    z[0, dim] = value
    return model.decode(z)[0].cpu()


@torch.inference_mode()
def reconstruct_one(model, image: torch.Tensor) -> torch.Tensor:
    dev = next(model.parameters()).device
    return model.decode(model.encode(image[None].to(dev))[0])[0].cpu()


# --------------------------------------------------------------------------- the live explorer


class TraversalExplorer:
    """ipywidgets UI: choose a trained model, a seed image, a latent (ordered by KL) and its value;
    shows the seed image, its reconstruction and the decoded image with that latent set, live."""

    def __init__(self, runs: list[dict], images: torch.Tensor, migs: dict | None = None,
                 value_range: tuple[float, float] = (-3.0, 3.0), initial: dict | None = None):
        import ipywidgets as w

        self.runs, self.images, self.migs = runs, images, migs or {}
        self._kl: dict[int, np.ndarray] = {}
        start = runs.index(initial) if initial is not None else 0
        self.model = w.Dropdown(options=[(run_label(r, self.migs), i) for i, r in enumerate(runs)], value=start,
                                description="model", layout=w.Layout(width="370px"))
        self.image = w.IntSlider(value=0, min=0, max=len(images) - 1, description="seed image",
                                 continuous_update=True)
        self.dim = w.Dropdown(description="latent", layout=w.Layout(width="270px"))
        self.value = w.FloatSlider(value=1.5, min=value_range[0], max=value_range[1], step=0.1, description="value",
                                   continuous_update=True, readout_format="+.1f")
        self.view = w.Image(format="png")
        self.caption = w.HTML()
        self._set_dims()
        self.model.observe(lambda _: (self._set_dims(), self.redraw()), names="value")
        for control in (self.image, self.dim, self.value):
            control.observe(lambda _: self.redraw(), names="value")
        self.redraw()
        self.widget = w.VBox([w.HBox([self.model, self.dim]), w.HBox([self.image, self.value]), self.view,
                              self.caption])

    def kl(self, index: int) -> np.ndarray:
        if index not in self._kl:
            self._kl[index] = kl_per_dim(self.runs[index]["model"], self.images)
        return self._kl[index]

    def _set_dims(self) -> None:
        kl = self.kl(self.model.value)
        order = [int(d) for d in np.argsort(kl)[::-1]]
        self.dim.options = [(f"z{d}  (KL {kl[d]:.2f} nats)", d) for d in order]
        self.dim.value = order[0]

    def redraw(self) -> None:
        if self.dim.value is None:
            return
        model = self.runs[self.model.value]["model"]
        x = self.images[self.image.value]
        shown = decode_at(model, x, self.dim.value, self.value.value)
        png = strip_png([x, reconstruct_one(model, x), shown])
        self.view.value = png
        self.view.layout.width = f"{int.from_bytes(png[16:20], 'big')}px"  # natural size (PNG header), not stretched
        self.caption.value = (f"<b>seed image</b> · <b>reconstruction</b> · <b>decoded with z{self.dim.value} = "
                              f"{self.value.value:+.1f}</b> — {run_label(self.runs[self.model.value], self.migs)}, "
                              f"other latents at the image's posterior mean")

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------- the static fallback


def traversal_animation(models: dict[str, torch.nn.Module], image: torch.Tensor, n_dims: int = 5,
                        values: np.ndarray | None = None, kl_images: torch.Tensor | None = None):
    """A matplotlib animation: one row per model, its ``n_dims`` highest-KL latents as columns; frame t
    decodes ``image`` with that column's latent set to ``values[t]``."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    values = np.linspace(-2.5, 2.5, 21) if values is None else values
    rows = []
    for name, model in models.items():
        kl = kl_per_dim(model, image[None] if kl_images is None else kl_images)
        dims = [int(d) for d in np.argsort(kl)[::-1][:n_dims]]
        rows.append((name, dims, kl, traverse(model, image, dims, values)))  # (dims, values, C, H, W)
    fig, axes = plt.subplots(len(rows), n_dims, figsize=(1.25 * n_dims + 0.9, 1.35 * len(rows) + 0.5),
                             squeeze=False, dpi=80)
    artists = []
    for r, (name, dims, kl, frames) in enumerate(rows):
        for c, d in enumerate(dims):
            ax = axes[r, c]
            artists.append((ax.imshow(_hwc(frames[c, 0]), interpolation="nearest"), frames[c]))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"z{d} (KL {kl[d]:.1f})", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    title = fig.suptitle("", fontsize=9)
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.02, top=0.8, wspace=0.08, hspace=0.35)

    def draw(t):
        for artist, frames in artists:
            artist.set_data(_hwc(frames[t]))
        title.set_text(f"latent value {values[t]:+.2f} (other latents at the image's posterior mean)")
        return [a for a, _ in artists] + [title]

    draw(0)
    anim = FuncAnimation(fig, draw, frames=len(values), interval=150, blit=False)
    plt.close(fig)  # only the animation is shown, not a static copy of its last frame
    return anim


# --------------------------------------------------------------------------- the live decoder of the static page


def live_decoder_folder(profile: str):
    """Where :func:`export_live_decoders` writes: ``results/<profile>/sbd_explorer/`` (the book reads the
    preview's, ``book/_ext/live_decoder.py``)."""
    from dvae_core.infra import RESULTS_DIR

    return RESULTS_DIR / profile / "sbd_explorer"


def export_live_decoders(runs: list[dict], migs: dict[tuple[str, int], float], images: torch.Tensor, profile: str):
    """The median-MIG run of each decoder (the static explorer's) exported to ONNX for the book page's live
    decoder (:func:`dvae_core.browser.write_live_decoders`), starting from ``images``, with the latents' KL
    measured on them; a table of what was written, with each export's largest difference from torch."""
    import pandas as pd

    from dvae_core.browser import write_live_decoders

    models = {}
    for decoder in ("sb", "deconv"):
        run = median_mig_run(runs, decoder, migs)
        models[decoder] = (run_label(run, migs), run["model"])
    written = write_live_decoders(models, images, images, live_decoder_folder(profile))
    return pd.DataFrame([{"model": w.title, "ONNX file": w.file, "size (kB)": round(w.size_bytes / 1000),
                          "latents": w.latent_dim, "max |ONNX − torch| (pixel, 0–1)": f"{w.max_abs_diff:.1e}"}
                         for w in written]).set_index("model")


# matplotlib's controls use Font Awesome from a CDN; the book must read offline, so use plain glyphs.
# (Glyphs every common text font has: no media-control code points, which many fonts lack.)
_ICONS = {"fa-minus": "&minus;", "fa-fast-backward": "&#x21E4;", "fa-step-backward": "&#x25C2;",
          "fa-play fa-flip-horizontal": "&#x25C0;", "fa-pause": "&#x2016;", "fa-play": "&#x25B6;",
          "fa-step-forward": "&#x25B8;", "fa-fast-forward": "&#x21E5;", "fa-plus": "+"}


def animation_html(anim, default_mode: str = "reflect") -> str:
    """``anim.to_jshtml()`` made self-contained: no external stylesheet, no icon font."""
    html = anim.to_jshtml(default_mode=default_mode)
    html = re.sub(r"<link[^>]*href=\"https?://[^\"]*\"[^>]*>", "", html)
    html = re.sub(r'<i class="fa ([^"]+)"></i>', lambda m: _ICONS.get(m.group(1), ""), html)
    if re.search(r"(src|href)=\"(https?:)?//", html):
        raise ValueError("the animation HTML still refers to a remote resource")
    return html


__all__ = ["load_fig2_runs", "fig2_migs", "run_label", "median_mig_run", "kl_per_dim", "decode_at", "strip_png",
           "TraversalExplorer", "traversal_animation", "animation_html", "live_decoder_folder", "export_live_decoders"]
