"""Figures shared by the chapters: metric strips, image grids and latent traversals."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    array = image.detach().cpu().clamp(0, 1).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def rgb_hwc(image: torch.Tensor) -> np.ndarray:
    """An image (C, H, W) in [0, 1] as an RGB array (H, W, 3): grey images repeated over the channels."""
    array = image.detach().cpu().clamp(0, 1).numpy()
    return np.repeat(array, 3, 0).transpose(1, 2, 0) if array.shape[0] == 1 else array.transpose(1, 2, 0)


def strip_png(images: Sequence[torch.Tensor], height: int = 128, gap: int = 6) -> bytes:
    """Images side by side, upscaled (nearest) to ``height`` pixels, on white, as PNG bytes."""
    from io import BytesIO

    from PIL import Image

    scale = max(1, height // images[0].shape[-2])
    tiles = [np.kron(rgb_hwc(im), np.ones((scale, scale, 1))) for im in images]
    h = max(t.shape[0] for t in tiles)
    canvas = np.ones((h, sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1), 3))
    left = 0
    for t in tiles:
        canvas[:t.shape[0], left:left + t.shape[1]] = t
        left += t.shape[1] + gap
    out = BytesIO()
    Image.fromarray((canvas * 255).round().astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def metric_strip(frame: pd.DataFrame, x: str, y: str, ylabel: str, title: str, order: Sequence[str] | None = None,
                 ax=None):
    """Box plot with every seed shown as a point: the spread is part of the result."""
    ax = ax or plt.subplots(figsize=(4.2, 3.4))[1]
    sns.boxplot(data=frame, x=x, y=y, order=order, color="0.9", width=0.5, showfliers=False, ax=ax)
    sns.stripplot(data=frame, x=x, y=y, order=order, hue=x, hue_order=order, size=7, jitter=0.12, ax=ax,
                  legend=False)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("decoder")
    ax.set_title(title)
    return ax


def image_grid(rows: Sequence[torch.Tensor], row_labels: Sequence[str], col_labels: Sequence[str] | None = None,
               title: str | None = None, cell: float = 0.9):
    """A grid of images: ``rows`` is a list of (n, C, H, W) tensors of equal n."""
    n_rows, n_cols = len(rows), len(rows[0])
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + 1.2, cell * n_rows + 0.4), squeeze=False)
    cmap = "gray" if rows[0].shape[1] == 1 else None
    for r, images in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(_to_hwc(images[c]), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and col_labels is not None:
                ax.set_title(col_labels[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


def traversal_grid(traversals: torch.Tensor, dims: Sequence[int], kl_per_dim: np.ndarray, values: np.ndarray,
                   title: str, dim_names: Sequence[str] | None = None):
    """Rows: latent dims (ordered by KL, labelled with it, and with ``dim_names[d]`` when given, e.g. the
    factor a dim carries); columns: the value the dim is set to."""
    labels = [f"z{d}  KL {kl_per_dim[d]:.2f}" + (f"\n{dim_names[d]}" if dim_names is not None else "") for d in dims]
    return image_grid(list(traversals), labels, [f"{v:+.1f}" for v in values], title=title)


DECODER_ORDER = ["deconv", "sb"]


def decoder_comparison(table: pd.DataFrame, panels: Sequence[tuple[str, str, str]]):
    """One strip/box panel per (column, y label, title): DeConv vs SB, every seed a point."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (column, ylabel, title) in zip(axes[0], panels):
        metric_strip(table, "decoder", column, ylabel, title, DECODER_ORDER, ax)
    fig.tight_layout()
    return fig
