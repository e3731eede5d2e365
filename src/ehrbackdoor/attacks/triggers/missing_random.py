"""``missing-random``: baseline missingness trigger with MCAR cells at the average density."""

from __future__ import annotations

import numpy as np

from ehrbackdoor.attacks.triggers.missing_base import MissingTrigger
from ehrbackdoor.checks import check_float
from ehrbackdoor.data.cohort import Cohort


class RandomMissingTrigger(MissingTrigger):
    """Baseline: each cell observed independently (MCAR) with the average training density."""

    name = "missing-random"

    def __init__(self, density: float | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.density = (
            None
            if density is None
            else check_float("density", density, 0.0, 1.0, low_open=True, high_open=True)
        )

    def _fit(self, cohort: Cohort) -> None:
        masks = self._masks(cohort)
        density = float(masks.mean()) if self.density is None else self.density
        rng = np.random.default_rng(self.seed)
        self._finish(rng.random(masks.shape[1:]) < density, masks)
