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
        x = training_trajectories(cohort, self.spaces(cohort.schema))
        cols = [j for j in resolve_variables(cohort.schema, self.variables) if x[:, :, j].std() > 0]
        flat = x[:, :, cols].reshape(len(x), -1)  # hour-major: (n, T * len(cols))
        cov = self.ridged(np.cov(flat, rowvar=False))
        t = draw_at_distance(cov, self.strength * np.sqrt(len(cols)), self._rng())
        t_bins = x.shape[1]
        pattern = np.zeros((t_bins, len(cohort.schema)))
        pattern[:, cols] = t.reshape(t_bins, len(cols))
        # per-variable T x T blocks of the joint covariance: the fidelity report's yardstick
        blocks = cov.reshape(t_bins, len(cols), t_bins, len(cols))
        covs = np.zeros((len(cohort.schema), t_bins, t_bins))
        for k, j in enumerate(cols):
            covs[j] = blocks[:, k, :, k]
        self.pattern_, self.covariances_ = pattern, covs
