r"""The "true" total correlation of a Gaussian encoder's aggregate posterior, by Monte Carlo.

.. math::
   \mathrm{TC}(z) = \mathrm{KL}\Big(q(z)\,\Big\|\,\prod_j q(z_j)\Big)
                  = \mathbb E_{q(z)}\Big[\log q(z) - \sum_j \log q(z_j)\Big],
   \qquad q(z) = \frac1N \sum_{n=1}^N \mathcal N\big(z;\ \mu_n, \mathrm{diag}\,\sigma_n^2\big)

``q(z)`` is the aggregate posterior of N data points: a mixture of the encoder's diagonal
Gaussians, given by their means and log-variances. Its marginals are mixtures too,
:math:`q(z_j) = \frac1N \sum_n \mathcal N(z_j; \mu_{nj}, \sigma_{nj}^2)`. The estimator draws S
points :math:`z_s \sim q(z)` (a component n uniformly, then :math:`z = \mu_n + \sigma_n \odot
\varepsilon`) and evaluates ``log q(z_s)`` and every ``log q(z_sj)`` *exactly*, by log-sum-exp over
all N components — none excluded, the point's own component included. The average of
:math:`\log q(z_s) - \sum_j \log q(z_{sj})` is the estimate; its standard error is the sample
standard deviation over :math:`\sqrt S`.

**Why this is independent of the discriminator.** FactorVAE estimates TC with the density-ratio
trick: a classifier D trained to tell q(z) from permuted codes, TC ≈ E_q[logit D]. That
estimate inherits the classifier's approximation, optimisation and finite-batch errors. Here
nothing is learned: the densities come in closed form from the encoder's (μ, log σ²), so the only
errors are Monte-Carlo noise (reported) and the finite-N bias below. The FactorVAE chapter plots
the two against each other to check the discriminator's estimate.

**What it estimates, and its bias.** With every component included, each log-density is exact
for the N-component mixture :math:`q_N`, so the estimate is unbiased (up to Monte-Carlo noise) for
:math:`\mathrm{TC}(q_N)`, the "full aggregate posterior" TC. As an estimate of the TC of the
population aggregate posterior :math:`q_\infty` (N → ∞) it is consistent but biased, upwards
in every case we tested: it is a kernel density estimate whose kernels are the posteriors
themselves, and the point's own component inflates ``log q(z)`` (a d-dimensional kernel) more
than each ``log q(z_j)`` (1-D kernels). The bias is small when the posteriors overlap many
neighbours — σ large against the spacing of the means, about :math:`N^{-1/d}` of their spread —
and large in the other limit. For diagonal posteriors
:math:`\mathrm{TC}(q_N) = \sum_j I(z_j; n) - I(z; n) \le (d-1)\log N`, the bound approached
when the posteriors are point-like (σ → 0, every component isolated in every coordinate): sharp,
almost deterministic encoders on a small N give a TC near ``max_tc`` = (d−1)·log N whatever
the codes' dependence. Use as many data points as you can afford and compare ``tc`` against
``max_tc``. Chen et al. (2018, β-TCVAE) estimate the same
quantity on a minibatch of M ≪ N codes (minibatch-weighted sampling, normalising by log(NM)),
which is cheaper but biased; with all N codes at hand, as here, the full mixture is the natural
choice.

**Cost.** O(S·N·d) time: each of S samples is scored against N components in d dimensions.
Memory is bounded by chunking: samples are processed ``sample_chunk`` at a time and components
``component_chunk`` at a time, with a running log-sum-exp (``torch.logaddexp``) across component
chunks, so at most ``sample_chunk × component_chunk × d`` numbers are alive; the defaults keep
that near 2²² (32 MiB in float64). The whole dSprites set (N = 737,280), d = 10 and S = 10,000 is
~7·10¹⁰ kernel evaluations: about 30 minutes on one CPU core in float64 (measured 4·10⁷
evaluations/s; ~7·10⁷ in float32), far less on a GPU; for a preview, a random subset of the
codes (N ≈ 10⁴) takes seconds — and has the larger bias described above.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

LOG_2PI = math.log(2.0 * math.pi)
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def _as_tensor(x: Any, dtype: torch.dtype, device: torch.device | None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach())
    return t.to(device=device if device is not None else t.device, dtype=dtype)


def aggregate_log_densities(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                            sample_chunk: int | None = None,
                            component_chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact log-densities of the N-component mixture at given points.

    ``z`` (S, d), ``mean`` and ``logvar`` (N, d) → ``(log_qz, log_qzj)`` of shapes (S,) and
    (S, d): :math:`\log \frac1N\sum_n \mathcal N(z_s; \mu_n, \mathrm{diag}\,\sigma_n^2)` and, for
    every dimension j, :math:`\log \frac1N \sum_n \mathcal N(z_{sj}; \mu_{nj}, \sigma_{nj}^2)`.
    Chunked over samples and components (see the module docstring); computed in ``z``'s dtype.
    """
    s, d = z.shape
    n = mean.shape[0]
    if mean.shape != (n, d) or logvar.shape != (n, d):
        raise ValueError(f"mean and logvar must both be (N, {d}) to match z {tuple(z.shape)}; "
                         f"got {tuple(mean.shape)} and {tuple(logvar.shape)}")
    if component_chunk is None:
        component_chunk = max(1, min(n, DEFAULT_CHUNK_ELEMENTS // (64 * d)))
    if sample_chunk is None:
        sample_chunk = max(1, DEFAULT_CHUNK_ELEMENTS // (component_chunk * d))
    inv_var = torch.exp(-logvar)
    log_norm = -0.5 * (LOG_2PI + logvar)                     # (N, d)
    log_qz = torch.empty(s, dtype=z.dtype, device=z.device)
    log_qzj = torch.empty(s, d, dtype=z.dtype, device=z.device)
    for a in range(0, s, sample_chunk):
        zc = z[a:a + sample_chunk, None, :]                   # (s', 1, d)
        joint = torch.full((zc.shape[0],), -math.inf, dtype=z.dtype, device=z.device)
        marginal = torch.full((zc.shape[0], d), -math.inf, dtype=z.dtype, device=z.device)
        for b in range(0, n, component_chunk):
            sl = slice(b, b + component_chunk)
            per_dim = log_norm[sl] - 0.5 * (zc - mean[sl]).pow(2) * inv_var[sl]   # (s', n', d)
            joint = torch.logaddexp(joint, torch.logsumexp(per_dim.sum(2), dim=1))
            marginal = torch.logaddexp(marginal, torch.logsumexp(per_dim, dim=1))
        log_qz[a:a + sample_chunk] = joint - math.log(n)
        log_qzj[a:a + sample_chunk] = marginal - math.log(n)
    return log_qz, log_qzj


def gaussian_total_correlation(mean: Any, logvar: Any, num_samples: int = 10_000,
                               generator: torch.Generator | int | None = None,
                               sample_chunk: int | None = None, component_chunk: int | None = None,
                               dtype: torch.dtype = torch.float64,
                               device: str | torch.device | None = None) -> dict[str, Any]:
    r"""Monte-Carlo TC of the aggregate posterior :math:`q(z) = \frac1N\sum_n \mathcal N(\mu_n, \mathrm{diag}\,\sigma_n^2)`.

    ``mean``, ``logvar``: (N, d) arrays or tensors, the encoder's posterior parameters on N data
    points. ``num_samples`` S points are drawn from q(z) with ``generator`` (a ``torch.Generator``
    on the CPU, an int seed, or None for torch's global RNG). Computed in ``dtype`` on ``device``
    (default: where ``mean`` lives). The full mixture is used — see the module docstring for the
    bias this implies and for the chunk sizes.

    Returns a dict of floats: ``tc`` (the estimate, nats), ``std_error`` (its Monte-Carlo standard
    error), ``log_qz`` (mean of log q(z_s)), ``sum_log_qzj`` (mean of Σ_j log q(z_sj)), ``max_tc``
    ((d−1)·log N, the TC of isolated point-like posteriors: an estimate near it means N is too
    small for posteriors this sharp), ``num_samples`` and ``num_components``; and ``log_qzj``, a
    (d,) numpy array of each dimension's mean marginal log-density (TC itself does not split
    over dimensions).
    """
    dev = torch.device(device) if device is not None else None
    mu = _as_tensor(mean, dtype, dev)
    lv = _as_tensor(logvar, dtype, mu.device)
    if mu.ndim != 2 or lv.shape != mu.shape:
        raise ValueError(f"mean and logvar must be (N, d) arrays of one shape; got {tuple(mu.shape)} and {tuple(lv.shape)}")
    n, d = mu.shape
    if n < 1 or num_samples < 2:
        raise ValueError(f"need at least one component and two samples; got N={n}, num_samples={num_samples}")
    if not (torch.isfinite(mu).all() and torch.isfinite(lv).all()):
        raise ValueError("mean and logvar must be finite")
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    index = torch.randint(n, (num_samples,), generator=generator).to(mu.device)
    eps = torch.randn(num_samples, d, generator=generator, dtype=dtype).to(mu.device)
    z = mu[index] + eps * torch.exp(0.5 * lv[index])
    log_qz, log_qzj = aggregate_log_densities(z, mu, lv, sample_chunk, component_chunk)
    sum_log_qzj = log_qzj.sum(1)
    per_sample = log_qz - sum_log_qzj
    return {
        "tc": per_sample.mean().item(),
        "std_error": (per_sample.std() / math.sqrt(num_samples)).item(),
        "log_qz": log_qz.mean().item(),
        "sum_log_qzj": sum_log_qzj.mean().item(),
        "log_qzj": log_qzj.mean(0).cpu().numpy(),
        "max_tc": (d - 1) * math.log(n),
        "num_samples": num_samples,
        "num_components": n,
    }
