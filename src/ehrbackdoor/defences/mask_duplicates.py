"""Copied masks: how many other training stays share a stay's hourly missingness almost exactly.

A missing-value trigger applied in ``exact`` mode gives every poisoned stay the same mask. Real
masks of stays with a fair number of observations practically never coincide cell for cell (of
PhysioNet 2012's 8,000 stays, no two with 5 or more observed hourly cells of the 48 x 37 grid
share a mask), so many stays with one mask are a copied pattern, however normal that one pattern looks to
a model of missingness (`mask-rarity` judges each mask alone and cannot see the copy).

A stay's suspicion is the number of other training stays whose mask lies within `max_hamming`
cells of its own (0 = identical), counted only for masks with at least `min_cells` observed cells
(near-empty masks coincide by chance); stays below that score 0. Blind by construction to
``delete`` mode, whose masks are each stay's own mask cut by the pattern.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences.base import Detector, check_int
from ehrbackdoor.defences.features import mask_matrix


class MaskDuplicatesDetector(Detector):
    """Count of other stays with (nearly) the same hourly mask."""

    name = "mask-duplicates"

    def __init__(self, max_hamming: int = 0, min_cells: int = 20, seed: int = 0) -> None:
        super().__init__(seed)
        self.max_hamming = check_int("max_hamming", max_hamming, 0)
        self.min_cells = check_int("min_cells", min_cells, 0)

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        X = mask_matrix(cohort) > 0.5
        n_obs = X.sum(axis=1)
        counted = n_obs >= self.min_cells  # near-empty masks neither score nor count
        near = np.zeros(len(X), dtype=np.int64)
        idx = np.flatnonzero(counted)
        if self.max_hamming == 0 and len(idx):  # exact copies: one hash of every row
            _, inverse, counts = np.unique(X[idx], axis=0, return_inverse=True, return_counts=True)
            near[idx] = counts[inverse.ravel()] - 1
        elif len(idx):  # |a xor b| = |a| + |b| - 2 a.b, in blocks of rows to bound memory
            Xf = X[idx].astype(np.float32)
            obs = n_obs[idx].astype(np.float32)
            for start in range(0, len(idx), 1024):
                block = Xf[start : start + 1024]
                ham = obs[start : start + 1024, None] + obs[None, :] - 2 * (block @ Xf.T)
                near[idx[start : start + 1024]] = (ham <= self.max_hamming + 0.5).sum(axis=1) - 1
        score = near.astype(np.float64)
        self.info_ = {
            "n_with_copies": int((score > 0).sum()),
            "largest_group": int(score.max() + 1) if score.max(initial=0) > 0 else 0,
        }
        return score
