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

from abc import abstractmethod
from typing import Any, ClassVar

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


class ClassLatentDetector(Detector):
    """Base of the detectors that score each class's centred embeddings on their own.

    Segments the stays by `predicted_classes` (``by``); a class of fewer than
    ``min_class_size`` stays, or one `_score_class` passes over, scores 0. ``info_["classes"]``
    holds what `_score_class` says of each class it scored.
    """

    family = "model"
    needs_victim = True
    min_class_size: ClassVar[int] = 2

    def __init__(self, by: str = "predicted", seed: int = 0) -> None:
        super().__init__(seed)
        self.by = check_choice("by", by, SEGMENTS)

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        Z = embeddings(victim, cohort)
        cls = predicted_classes(victim, cohort, self.by)
        out = np.zeros(cohort.n_stays)
        info = {}
        for c in np.unique(cls):
            sel = np.flatnonzero(cls == c)
            if len(sel) < self.min_class_size:
                continue
            scored = self._score_class(Z[sel] - Z[sel].mean(axis=0))
            if scored is not None:
                out[sel], info[str(int(c))] = scored
        self.info_ = {"classes": info}
        return out

    @abstractmethod
    def _score_class(self, Zc: np.ndarray) -> tuple[np.ndarray, dict] | None:
        """Scores of one class's stays from their centred embeddings `Zc`, and what to report
        of the class; None passes over the class."""


class SpectralSignatureDetector(ClassLatentDetector):
    """Squared projection on the top singular direction of the class's centred embeddings."""

    name = "spectral"

    def __init__(self, by: str = "predicted", n_directions: int = 1, seed: int = 0) -> None:
        super().__init__(by, seed)
        self.n_directions = check_int("n_directions", n_directions, 1)

    def _score_class(self, Zc: np.ndarray) -> tuple[np.ndarray, dict]:
        s, vt = top_directions(Zc, self.n_directions, self.seed)
        proj = Zc @ vt.T
        score = (proj**2).sum(axis=1)
        mean = float(score.mean())
        scores = score / mean if mean > 0 else np.zeros(len(Zc))
        return scores, {"n": len(Zc), "top_singular_values": s.tolist()}
