"""Spectral signatures (Tran, Li & Madry, 2018) on the victim's penultimate representation.

Within one class, poisoned examples that the model learned through the trigger share a direction
in representation space; after centring, the top singular vector of the class's representations
points along it and the squared projection onto it is large for the poison. Segmented per
predicted class (the victim's prediction at its operating threshold; ``by="label"`` uses the
training label as in the paper). Scores are divided by their class mean so that classes of
different spread rank on one scale (the paper removes a share per class; a single ranking is
needed for the shared evaluation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences.base import (
    Detector,
    check_choice,
    check_int,
    embeddings,
    predicted_classes,
)

SEGMENTS = ("predicted", "label")


def class_segments(
    victim: Any, cohort: Cohort, by: str, min_size: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Per class (`predicted_classes`) of at least `min_size` stays: the class, its stays'
    positions and their embeddings centred on the class mean (what both latent detectors split)."""
    Z = embeddings(victim, cohort)
    cls = predicted_classes(victim, cohort, by)
    for c in np.unique(cls):
        sel = np.flatnonzero(cls == c)
        if len(sel) < min_size:
            continue
        yield int(c), sel, Z[sel] - Z[sel].mean(axis=0)


def top_directions(Zc: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k singular values and right singular vectors (k, d) of a centred matrix (seeded
    randomized SVD when the matrix is large, exact otherwise)."""
    k = max(1, min(k, *Zc.shape))
    if min(Zc.shape) <= 4 * k + 10:
        _, s, vt = np.linalg.svd(Zc, full_matrices=False)
        return s[:k], vt[:k]
    from sklearn.utils.extmath import randomized_svd

    _, s, vt = randomized_svd(Zc, k, n_iter=7, random_state=seed)
    return s, vt


class SpectralSignatureDetector(Detector):
    """Squared projection on the top singular direction of the class's centred embeddings."""

    name = "spectral"
    family = "model"
    needs_victim = True

    def __init__(self, by: str = "predicted", n_directions: int = 1, seed: int = 0) -> None:
        super().__init__(seed)
        self.by = check_choice("by", by, SEGMENTS)
        self.n_directions = check_int("n_directions", n_directions, 1)

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        out = np.zeros(cohort.n_stays)
        info = {}
        for c, sel, Zc in class_segments(victim, cohort, self.by, 2):
            s, vt = top_directions(Zc, self.n_directions, self.seed)
            proj = Zc @ vt.T
            score = (proj**2).sum(axis=1)
            mean = float(score.mean())
            out[sel] = score / mean if mean > 0 else 0.0
            info[str(c)] = {"n": int(len(sel)), "top_singular_values": s.tolist()}
        self.info_ = {"classes": info}
        return out
