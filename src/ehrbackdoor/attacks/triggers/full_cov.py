"""Full-covariance baseline (Joe et al., 2021): one Gaussian over all (variable, hour) cells.

The joint covariance of the flattened T x F trajectory (cross-variable correlations included) is
estimated and one draw is scaled to Mahalanobis distance strength * sqrt(F): the same total budget
as F independent per-variable draws of distance `strength`.
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


class FullCovarianceTrigger(ValueTrigger):
    name = "full-cov"

    def _fit(self, cohort: Cohort) -> None:
        x = training_trajectories(cohort)
        cols = [j for j in resolve_variables(cohort.schema, self.variables) if x[:, :, j].std() > 0]
        flat = x[:, :, cols].reshape(len(x), -1)  # hour-major: (n, T * len(cols))
        cov = self.ridged(np.cov(flat, rowvar=False))
        t = draw_at_distance(cov, self.strength * np.sqrt(len(cols)), self._rng())
        pattern = np.zeros((x.shape[1], len(cohort.schema)))
        pattern[:, cols] = t.reshape(x.shape[1], len(cols))
        self.pattern_ = pattern
