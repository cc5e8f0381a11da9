r"""MADE: Masked Autoencoder for Distribution Estimation (Germain, Gregor, Murray & Larochelle,
ICML 2015, arXiv:1502.03509).

An MLP becomes autoregressive by multiplying each weight matrix by a fixed 0/1 mask. Every unit
gets a *degree*: input i (1-based) has degree i, hidden units get degrees in 1 … d−1, and output
unit i again degree i. A hidden unit may read a unit below it when its degree is ≥ that unit's
(the paper's mask rule), an output only units of strictly smaller degree, so output i is a
function of :math:`x_{<i}` alone:

.. math::  \frac{\partial\, \mathrm{MADE}(x)_i}{\partial x_j} = 0 \quad \text{for } j \ge i .

The Jacobian is strictly lower-triangular: one pass computes every conditional
:math:`\mu_i(x_{<i})` at once, which is what makes the flows of :mod:`dvae_core.models.flows`
parallel in one direction. Hidden degrees cycle through 1 … d−1 (deterministic, so a model
rebuilds identically from its configuration; the paper also samples them at random). An optional
context (the encoder's features h for an IAF posterior) enters the first hidden layer unmasked,
and then hidden degrees start at 0: a degree-0 unit reads no input but the context, and feeds
every output, so even the first output (which may read no input) depends on the context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 ``mask`` of shape (out, in)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        # Not persistent: the mask is rebuilt from the degrees, so checkpoints hold only weights.
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """x (n, dim) [and context (n, context_features)] → (n, outputs_per_dim, dim).

    ``out[:, k, i]`` depends on ``x[:, :i]`` (and the context) only; ``outputs_per_dim`` parameters
    per dimension, e.g. 2 for an IAF step's (m, s).
    """

    def __init__(self, dim: int, hidden_sizes: tuple[int, ...], outputs_per_dim: int = 1,
                 context_features: int = 0):
        super().__init__()
        if not hidden_sizes:
            raise ValueError("MADE needs at least one hidden layer")
        input_degrees = torch.arange(1, dim + 1)
        lowest = 0 if context_features else 1
        degrees = input_degrees
        hidden: list[nn.Module] = []
        for width in hidden_sizes:
            unit_degrees = torch.arange(width) % max(dim - lowest, 1) + lowest
            hidden.append(MaskedLinear(len(degrees), width, unit_degrees[:, None] >= degrees[None, :]))
            degrees = unit_degrees
        self.hidden = nn.ModuleList(hidden)
        output_degrees = input_degrees.repeat(outputs_per_dim)  # unit k·dim + i has degree i + 1
        self.output = MaskedLinear(len(degrees), outputs_per_dim * dim, output_degrees[:, None] > degrees[None, :])
        self.context = nn.Linear(context_features, hidden_sizes[0], bias=False) if context_features else None
        self.dim, self.outputs_per_dim = dim, outputs_per_dim

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if (context is None) != (self.context is None):
            raise ValueError("pass a context exactly when the MADE was built with context_features > 0")
        h = self.hidden[0](x)
        if self.context is not None:
            h = h + self.context(context)
        h = F.elu(h)
        for layer in self.hidden[1:]:
            h = F.elu(layer(h))
        return self.output(h).view(-1, self.outputs_per_dim, self.dim)
