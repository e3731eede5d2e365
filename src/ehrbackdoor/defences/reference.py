"""Reference filters that bound every result: the perfect filter and the random filter.

They are not defences a hospital could run. The perfect filter reads the ground truth
(``Cohort.modified``, set by the poisoning engine) and removes exactly the poisoned stays: the best
any filter can do, and the check that removing poison removes the backdoor. The random filter
scores stays by a seeded uniform draw and removes as many stays as the perfect one, at random: what
a detector must beat (detection AUROC about 0.5, precision about the poisoning rate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences.base import Detector


class PerfectFilter(Detector):
    """1 for the poisoned stays, 0 for the others (oracle)."""

    name = "perfect"
    family = "reference"
    oracle = True

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        return cohort.modified.astype(np.float64)

    def removal_count(self, poisoned_train: Cohort, k: int) -> int:
        return int(poisoned_train.modified.sum())


class RandomFilter(Detector):
    """Seeded uniform scores; removes as many stays as the perfect filter."""

    name = "random"
    family = "reference"
    oracle = True  # it knows how many stays to remove

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        return self._rng().random(cohort.n_stays)

    def removal_count(self, poisoned_train: Cohort, k: int) -> int:
        return int(poisoned_train.modified.sum())
