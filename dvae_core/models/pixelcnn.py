r"""A PixelCNN for binary images with a receptive field you choose, optionally conditioned on a map.

It also takes colour images with intensities in [0, 1] (see "Colour" below).

PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, ICML 2016, arXiv:1601.06759, Sec. 3)
factorises an image in raster order,

.. math::  p(x \mid c) = \prod_{i} p(x_i \mid x_{<i}, c), \qquad
           p(x_i = 1 \mid x_{<i}, c) = \mathrm{sigmoid}(\mathrm{logit}_i),

and computes every logit in one pass with *masked* convolutions: a kernel sees only the pixels
above the one it writes and those to its left on the same row. The first layer is type A (it
must not see the pixel itself, which it predicts); later layers are type B (they may read the
features at the same pixel, which themselves only saw earlier pixels). All channels of a pixel
are predicted together from earlier pixels, i.e. conditionally independent given them.

**Why the receptive field is the knob** (Chen et al., ICLR 2017, "Variational Lossy Autoencoder",
Sec. 3.1). A decoder that can model a dependency from x_{<i} alone has no reason to pay KL for it,
so whatever falls inside its receptive field stays out of the latent code: a PixelCNN that sees
only a small neighbourhood leaves the global structure (the digit's identity, its shape) to z.
Two ways to set it:

* **stacked** (``window=()``): ``layers`` masked k×k convolutions, one type A then type B,
  the paper's MNIST decoder (6 masked layers, 12 3×3 filters, ResNet blocks: read as 6
  masked 3×3 layers of 12 channels). The field grows by ⌊k/2⌋ per layer and has
  PixelCNN's blind spot on the upper right.
* **window** (``window=(A, B)``): the first layer reads exactly an A×B window and every
  later layer is 1×1, so the receptive field is that window, whatever the depth. The
  paper's CIFAR experiments use 4×2, 5×3 and 7×4. We implement its convention as recorded
  in the project's paper notes (the primary text could not be fetched here): **A×B is the
  block A pixels wide and B rows tall directly above the pixel, plus the ⌈(A−1)/2⌉ pixels
  to its left on its own row.** The block spans columns j − ⌈(A−1)/2⌉ … j + ⌊(A−1)/2⌋ (centred;
  for even A one extra column on the left), so the window is exactly the causal part of an
  A-wide, (B+1)-tall kernel, and holds A·B + ⌈(A−1)/2⌉ pixels (10, 17 and 31 for the three;
  only the even 4×2 depends on the ceiling: ⌊(A−1)/2⌋ would give 9).

Every masked layer after the first is a residual block :math:`h \leftarrow h + W \ast
\mathrm{elu}(h) + V c` (the "ResNet blocks"); a residual adds no new reach because a type-B
kernel already includes its own pixel. ELU (nonzero gradient everywhere) keeps every connection
the masks allow alive, so the dependency set computed by :func:`receptive_field` is also the set
of pixels with nonzero gradient, exactly.

**Conditioning.** The context c is a spatial map (n, context_channels, H, W): in the VLAE, a
deconvolutional network of z (:mod:`dvae_core.models.vlae`). Each layer adds its own 1×1
projection of c, a per-pixel bias (the conditional PixelCNN of van den Oord et al. 2016 with a
spatial conditioning map). c is a function of z only, never of x, so it cannot leak future
pixels. Without a context the PixelCNN is an unconditional density model.

**Colour.** A C-channel image is read and predicted as C channels per pixel: the C channels of
pixel i are conditionally independent given x_{<i} (and c). There is no autoregression over the
channels *within* a pixel, unlike the original PixelCNN's R → G → B order; the likelihood is one
Bernoulli per channel, a cross-entropy on intensities in [0, 1] (the usual practice for grey or
colour images rescaled to [0, 1]; it is not a normalised density on the continuum, which the
continuous Bernoulli would be). With ``gray_input=True`` (Chen et al. 2017, Sec. 3, Fig. 3(d))
the network reads the previous pixels only through their luminance
:func:`luminance` (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B, one channel) and still predicts all
three channels of each pixel: it cannot copy colour from its neighbours, so colour must come from
the context c, i.e. from z. The masks, and so the receptive field, are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Offset = tuple[int, int]  # (rows down, columns right) from the pixel being written; rows ≤ 0

#: ITU-R BT.601 luma weights of (R, G, B): what a ``gray_input`` PixelCNN sees of a pixel's colour.
LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) RGB → (n, 1, H, W) luminance 0.299 R + 0.587 G + 0.114 B."""
    if x.shape[1] != 3:
        raise ValueError(f"luminance needs RGB images (n, 3, H, W), got {tuple(x.shape)}")
    weights = torch.tensor(LUMINANCE_WEIGHTS, dtype=x.dtype, device=x.device)
    return torch.einsum("nchw,c->nhw", x, weights).unsqueeze(1)


@dataclass(frozen=True)
class CausalWindow:
    """The pixels one masked convolution reads: ``above`` full rows over a span from ``left``
    columns left to ``right`` columns right of the pixel, plus on the pixel's own row the
    ``left`` pixels before it, and the pixel itself when ``include_centre`` (type B)."""

    above: int
    left: int
    right: int
    include_centre: bool

    def mask(self) -> torch.Tensor:
        """Bool (above + 1, left + 1 + right) kernel mask; the written pixel is at (above, left)."""
        mask = torch.ones(self.above + 1, self.left + 1 + self.right, dtype=torch.bool)
        mask[self.above, self.left + int(self.include_centre):] = False
        return mask

    def offsets(self) -> set[Offset]:
        return {(int(r) - self.above, int(c) - self.left) for r, c in self.mask().nonzero()}


@dataclass(frozen=True)
class PixelCNNConfig:
    layers: int = 6             # masked layers (the first is type A)
    channels: int = 12
    kernel: int = 3             # k of the stacked k×k layers; unused when ``window`` is set
    window: tuple = ()          # (A, B): an exact A-wide, B-tall window above (see the module doc)

    def __post_init__(self):
        if self.layers < 1:
            raise ValueError(f"a PixelCNN needs at least one masked layer, got layers={self.layers}")
        if self.window:
            if len(self.window) != 2 or min(self.window) < 1:
                raise ValueError(f"window must be (A, B) with A, B ≥ 1, got {self.window}")
        elif self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"stacked masked convolutions need an odd kernel, got {self.kernel}")

    def windows(self) -> list[CausalWindow]:
        """The window of every masked layer, from the input to the output."""
        if self.window:
            width, height = self.window
            first = CausalWindow(height, width // 2, width - 1 - width // 2, include_centre=False)
            return [first] + [CausalWindow(0, 0, 0, include_centre=True)] * (self.layers - 1)
        r = self.kernel // 2
        return [CausalWindow(r, r, r, include_centre=False)] + [CausalWindow(r, r, r, True)] * (self.layers - 1)


def _reach(config: PixelCNNConfig, pixel: tuple[int, int],
           inside: Callable[[int, int], bool]) -> set[tuple[int, int]]:
    # Walk from the output back to the input: a position depends on every position its layer's
    # window reads, as long as that one exists (zero padding outside is a constant); residual
    # layers also pass their input through unchanged.
    reach = {pixel}
    windows = config.windows()
    for depth in reversed(range(len(windows))):
        offsets = windows[depth].offsets()
        read = {(r + dr, c + dc) for r, c in reach for dr, dc in offsets if inside(r + dr, c + dc)}
        reach = read | reach if depth > 0 else read   # every layer after the first is residual
    return reach


def receptive_field(config: PixelCNNConfig, pixel: tuple[int, int], shape: tuple[int, int]) -> set[tuple[int, int]]:
    """The input pixels (row, column) that can influence the logit at ``pixel`` of an image of
    ``shape`` = (H, W): exact, including the image border."""
    height, width = shape
    return _reach(config, pixel, lambda r, c: 0 <= r < height and 0 <= c < width)


def receptive_field_offsets(config: PixelCNNConfig) -> set[Offset]:
    """The receptive field of a pixel far from every border, as offsets from it."""
    return _reach(config, (0, 0), lambda r, c: True)


def receptive_field_size(config: PixelCNNConfig) -> int:
    """How many earlier pixels an interior pixel's conditional sees."""
    return len(receptive_field_offsets(config))


class MaskedConv2d(nn.Conv2d):
    """A convolution that reads only a :class:`CausalWindow` and keeps the image size.

    The kernel covers just the rows above and the pixel's own row (no rows below: they would be
    masked entirely), padded on top, left and right only.
    """

    def __init__(self, in_channels: int, out_channels: int, window: CausalWindow):
        mask = window.mask()
        super().__init__(in_channels, out_channels, tuple(mask.shape))
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)
        self.pad = (window.left, window.right, window.above, 0)  # F.pad order: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, self.pad), self.weight * self.mask, self.bias)


class PixelCNN(nn.Module):
    """x (n, C, H, W) in {0, 1} (or [0, 1]) [and context (n, context_channels, H, W)] → logits (n, C, H, W).

    ``gray_input=True`` (RGB only): the masked layers read the luminance of x instead of its C
    channels; the output still has a logit per channel (see "Colour" in the module docstring).
    """

    def __init__(self, config: PixelCNNConfig, in_channels: int = 1, context_channels: int = 0,
                 gray_input: bool = False):
        super().__init__()
        if gray_input and in_channels != 3:
            raise ValueError(f"gray_input reads the luminance of RGB images: it needs in_channels=3, got {in_channels}")
        self.gray_input = gray_input
        first, *rest = config.windows()
        self.input_layer = MaskedConv2d(1 if gray_input else in_channels, config.channels, first)
        self.residual_layers = nn.ModuleList(MaskedConv2d(config.channels, config.channels, w) for w in rest)
        # One 1×1 convolution computes every layer's projection of the context at once.
        self.conditioning = nn.Conv2d(context_channels, config.layers * config.channels, 1,
                                      bias=False) if context_channels else None
        self.output = nn.Conv2d(config.channels, in_channels, 1)
        self.config = config

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if (context is None) != (self.conditioning is None):
            raise ValueError("pass a context exactly when the PixelCNN was built with context_channels > 0")
        if self.gray_input:
            x = luminance(x)
        if context is None:
            biases = [0.0] * self.config.layers
        else:
            biases = self.conditioning(context).chunk(self.config.layers, dim=1)
        h = self.input_layer(x) + biases[0]
        for conv, bias in zip(self.residual_layers, biases[1:]):
            h = h + conv(F.elu(h)) + bias
        return self.output(F.elu(h))

    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, int], context: torch.Tensor | None = None,
               generator: torch.Generator | None = None, mean: bool = False) -> torch.Tensor:
        """n binary images drawn pixel by pixel in raster order: H·W forward passes.

        ``mean=True`` sets each pixel to its predicted probability instead of a 0/1 draw and
        feeds that back (for intensities in [0, 1]: binary draws would be off the data the
        network was trained on); the image is then a deterministic function of the context.
        """
        height, width = shape
        device = self.output.weight.device
        x = torch.zeros(n, self.output.out_channels, height, width, device=device)
        for row in range(height):
            # Rows below never reach this row's logits (no kernel looks down): leave them out.
            rows = slice(0, row + 1)
            row_context = None if context is None else context[:, :, rows]
            for col in range(width):
                probs = torch.sigmoid(self(x[:, :, rows], row_context)[:, :, row, col])
                if mean:
                    x[:, :, row, col] = probs
                    continue
                # Uniforms are drawn on the CPU so a seed gives the same images on every device.
                uniforms = torch.rand(probs.shape, generator=generator).to(device)
                x[:, :, row, col] = (uniforms < probs).to(x.dtype)
        return x
