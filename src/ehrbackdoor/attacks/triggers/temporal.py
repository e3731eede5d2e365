"""Value trigger shaped by each variable's temporal covariance (Joe et al., 2021).

For every variable i the T x T covariance C_i (T hourly bins of the training window) of its hourly trajectory (forward-filled grid of
training stays, plus a small ridge) is estimated; t_i ~ N(0, C_i) is drawn with the run's seed and
scaled to Mahalanobis distance `strength`: t_i <- s t_i / sqrt(t_i' C_i^-1 t_i). The trigger is the
T x F matrix of the t_i, added to raw observations (see `value_base.apply_pattern`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.attacks.triggers.value_base import (
    ValueTrigger,
    draw_at_distance,
    resolve_variables,
    training_trajectories,
)
from ehrbackdoor.data.cohort import Cohort


class TemporalCovarianceTrigger(ValueTrigger):
    """Per-variable Gaussian pattern from the T x T temporal covariance."""

    name = "temporal"

    def _fit(self, cohort: Cohort) -> None:
        x = training_trajectories(cohort)
        rng = self._rng()
        t_bins = x.shape[1]
        pattern = np.zeros((t_bins, len(cohort.schema)))
        covs = np.zeros((len(cohort.schema), t_bins, t_bins))
        skipped = []
        for j in resolve_variables(cohort.schema, self.variables):
            cov = np.cov(x[:, :, j], rowvar=False)
            if not np.any(np.diag(cov) > 0):
                skipped.append(cohort.schema.variables[j].name)  # never varies: nothing to shape
                continue
            covs[j] = self.ridged(cov)
            pattern[:, j] = draw_at_distance(covs[j], self.strength, rng)
        self.pattern_, self.covariances_, self.skipped_ = pattern, covs, skipped

    def mahalanobis(self) -> np.ndarray:
        """Per variable sqrt(t_i' C_i^-1 t_i) of the (unrounded) pattern; 0 where skipped."""
        out = np.zeros(self.pattern_.shape[1])
        for j in np.flatnonzero(np.any(self.pattern_ != 0, axis=0)):
            t = self.pattern_[:, j]
            out[j] = np.sqrt(t @ np.linalg.solve(self.covariances_[j], t))
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"pattern": self.pattern_, "covariances": self.covariances_}

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.pattern_ = arrays["pattern"]
        self.covariances_ = arrays["covariances"]
        self.skipped_ = list(info.get("skipped", []))

    def info(self) -> dict[str, Any]:
        return {"skipped": self.skipped_}
