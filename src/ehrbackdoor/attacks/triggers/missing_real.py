"""``missing-real``: baseline missingness trigger, the mask of one real training stay."""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.attacks.triggers.missing_base import MissingTrigger
from ehrbackdoor.data.cohort import Cohort


class RealMaskTrigger(MissingTrigger):
    """Baseline: the mask of one real training stay (seeded choice among non-empty masks)."""

    name = "missing-real"

    def _fit(self, cohort: Cohort) -> None:
        masks = self._masks(cohort)
        nonempty = np.flatnonzero(masks.any(axis=(1, 2)))
        if len(nonempty) == 0:
            raise ValueError("no training stay has an observation inside the window")
        i = int(np.random.default_rng(self.seed).choice(nonempty))
        self.source_stay_ = str(cohort.stay_id[i])
        self._finish(masks[i], masks)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "source_stay": getattr(self, "source_stay_", None)}

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().set_state(arrays, info)
        self.source_stay_ = info.get("source_stay")
