"""A factor dataset with a region of factor space held out of training.

Watters et al. 2019 (Sec. 4.3) test generalisation by training on a dataset from which one
*combination* of factor values is removed — every factor value is still seen, just not together
(e.g. no square ever appears in the bottom-right quadrant) — and then encoding and decoding images
from the removed region. A model whose latents compose factors independently should reconstruct
them nearly as well as seen combinations.

The region is a box: ``{"shape": (0, 1), "pos_x": (16, 32), "pos_y": (16, 32)}`` holds out every
point whose shape class is in [0, 1) *and* pos_x in [16, 32) *and* pos_y in [16, 32).
"""

from __future__ import annotations

import numpy as np
import torch

from dvae_core.data.base import FactorDataset


class HeldOutRegion(FactorDataset):
    """Wraps ``base``; :meth:`sample_factors` never returns a point inside ``region``."""

    def __init__(self, base: FactorDataset, region: dict[str, tuple[int, int]]):
        unknown = set(region) - set(base.factor_names)
        if unknown:
            raise ValueError(f"held-out region names unknown factors {sorted(unknown)}; "
                             f"{base.name} has {base.factor_names}")
        for name, (lo, hi) in region.items():
            size = base.factor_sizes[base.factor_names.index(name)]
            if not 0 <= lo < hi <= size:
                raise ValueError(f"held-out range for {name!r} must satisfy 0 <= lo < hi <= {size}, got {(lo, hi)}")
        self.base = base
        self.region = {name: (int(lo), int(hi)) for name, (lo, hi) in region.items()}
        self.name = f"{base.name} minus {self.region}"
        self.factor_names, self.factor_sizes, self.image_shape = base.factor_names, base.factor_sizes, base.image_shape
        self.held_out_fraction = float(np.prod([(hi - lo) / base.factor_sizes[base.factor_names.index(name)]
                                                for name, (lo, hi) in self.region.items()]))

    def in_region(self, factors: np.ndarray) -> np.ndarray:
        """Boolean mask: which rows of ``factors`` fall inside the held-out region."""
        factors = np.asarray(factors)
        mask = np.ones(len(factors), dtype=bool)
        for name, (lo, hi) in self.region.items():
            column = factors[:, self.factor_names.index(name)]
            mask &= (column >= lo) & (column < hi)
        return mask

    def images(self, factors: np.ndarray) -> torch.Tensor:
        return self.base.images(factors)

    def images_on(self, factors: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
        return self.base.images_on(factors, device)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform over the training region (rejection: redraw the rows that fell inside)."""
        factors = self.base.sample_factors(n, rng)
        inside = self.in_region(factors)
        while inside.any():
            factors[inside] = self.base.sample_factors(int(inside.sum()), rng)
            inside = self.in_region(factors)
        return factors

    def sample_held_out(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform over the held-out region: factors never seen in training."""
        factors = self.base.sample_factors(n, rng)
        for name, (lo, hi) in self.region.items():
            factors[:, self.factor_names.index(name)] = rng.integers(lo, hi, n)
        return factors
