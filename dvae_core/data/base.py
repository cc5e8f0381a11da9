"""The ground-truth-factor dataset interface that training and every metric share.

A factor dataset is a full Cartesian grid of discrete generative factors (as dSprites and
3dshapes are). Each image is addressed either by its factor *classes* (one integer per factor,
``0 <= c_k < factor_sizes[k]``) or by its flat index on the grid, with the *last* factor varying
fastest (dSprites' and 3dshapes' own file order).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch


class FactorDataset(ABC):
    """A grid of discrete factors and a way to get the image for any point of it.

    Subclasses set ``name``, ``factor_names``, ``factor_sizes``, ``image_shape`` (C, H, W) and
    implement :meth:`images`. Images are float32 tensors in [0, 1], shape (n, C, H, W).
    """

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int]

    @abstractmethod
    def images(self, factors: np.ndarray) -> torch.Tensor:
        """Images for integer factor classes ``factors`` of shape (n, num_factors)."""

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes, dtype=np.int64))

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points drawn uniformly from the grid, int64 of shape (n, num_factors)."""
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1).astype(np.int64)

    def images_on(self, factors: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
        """:meth:`images` on ``device``. Datasets that can draw there (the procedural sprites) override this,
        so that a GPU run never waits on a CPU renderer; the default draws on the CPU and copies."""
        images = self.images(factors)
        return images if device is None else images.to(device, non_blocking=True)

    def sample(self, n: int, rng: np.random.Generator,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """A uniform batch: ``(images, factors)``, the images on ``device`` (None: where :meth:`images` makes
        them). The factors are drawn from ``rng`` on the CPU either way, so the batches do not depend on it."""
        factors = self.sample_factors(n, rng)
        return self.images_on(factors, device), factors

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        factors = self._check_factors(factors)
        return np.ravel_multi_index(tuple(factors.T), self.factor_sizes).astype(np.int64)

    def index_to_factors(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"{self.name}: index out of range [0, {len(self)})")
        return np.stack(np.unravel_index(index, self.factor_sizes), axis=-1).astype(np.int64)

    def _check_factors(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(
                f"{self.name}: factors must have shape (n, {self.num_factors}) "
                f"for {self.factor_names}, got {factors.shape}"
            )
        if (factors < 0).any() or (factors >= np.asarray(self.factor_sizes)).any():
            raise ValueError(f"{self.name}: factor classes out of range for sizes {self.factor_sizes}")
        return factors

    def __repr__(self) -> str:
        grid = ", ".join(f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes))
        return f"{type(self).__name__}({self.name}: {grid}; images {self.image_shape})"
