"""White-noise baseline (Joe et al., 2021): independent cells, same strength budget.

Each variable's T hourly cells are independent with the variance of that cell in training data;
the draw is scaled to Mahalanobis distance `strength` under that diagonal covariance, the same
per-variable budget as the temporal trigger.
"""

from __future__ import annotations

import numpy as np

from ehrbackdoor.attacks.triggers.value_base import (
    ValueTrigger,
    draw_at_distance,
    resolve_variables,
    training_trajectories,
)
from ehrbackdoor.data.cohort import Cohort


class WhiteNoiseTrigger(ValueTrigger):
    name = "white-noise"

    def _fit(self, cohort: Cohort) -> None:
        x = training_trajectories(cohort)
        rng = self._rng()
        pattern = np.zeros((x.shape[1], len(cohort.schema)))
        for j in resolve_variables(cohort.schema, self.variables):
            var = x[:, :, j].var(axis=0, ddof=1)
            if not np.any(var > 0):
                continue
            pattern[:, j] = draw_at_distance(self.ridged(np.diag(var)), self.strength, rng)
        self.pattern_ = pattern
