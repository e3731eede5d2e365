"""Value trigger shaped by each variable's temporal covariance (Joe et al., 2021).

For every variable i the T x T covariance C_i (T hourly bins of the training window) of its hourly trajectory (forward-filled grid of
training stays, in the variable's variance-stabilising space unless ``transform="none"``, plus a
small ridge) is estimated; t_i ~ N(0, C_i) is drawn with the run's seed and scaled to Mahalanobis
distance `strength`: t_i <- s t_i / sqrt(t_i' C_i^-1 t_i). The trigger is the T x F matrix of the
t_i, added to recorded values in that space (see `value_base.apply_pattern`).

Variables that are normally re-charted unchanged within a stay (median within-stay SD 0 in
training, e.g. PhysioNet Weight) would get a within-stay variance no real stay has, an accidental
trigger no chart shows. `constant` decides what they get: ``"shift"`` (default) one constant shift
c 1 with the same budget, c = +-s / sqrt(1' C_i^-1 1); ``"skip"`` nothing; ``"pattern"`` the
ordinary draw (the first paper's construction: ``transform="none", bounds="clip",
constant="pattern"``).

`rank` (default None: the full T-dimensional draw) restricts each draw to the span of the `rank`
leading eigenvectors of C_i, t_i = V_r diag(sqrt(lambda_r)) z with ||z|| = s: the same budget put
on the slow, high-variance shapes (rank 1 is a level shift) that window statistics (means, min,
max) carry, instead of being spread over hour-to-hour wiggles they average away.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.attacks.triggers.value_base import (
    ValueTrigger,
    check_choice,
    draw_at_distance,
    resolve_variables,
    stays_constant,
    training_trajectories,
)
from ehrbackdoor.checks import check_int
from ehrbackdoor.data.cohort import Cohort

CONSTANT = ("shift", "skip", "pattern")


def draw_low_rank(
    cov: np.ndarray, distance: float, rank: int, rng: np.random.Generator
) -> np.ndarray:
    """A draw in the span of the `rank` leading eigenvectors of `cov` at Mahalanobis `distance`."""
    lam, vec = np.linalg.eigh(cov)
    lam, vec = lam[::-1][:rank], vec[:, ::-1][:, :rank]
    z = rng.standard_normal(rank)
    return vec @ (np.sqrt(lam) * z * (distance / np.linalg.norm(z)))


def constant_shift(cov: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """The constant vector c 1 with sqrt(c^2 1' cov^-1 1) == distance, sign drawn from `rng`."""
    ones = np.ones(len(cov))
    c = distance / np.sqrt(ones @ np.linalg.solve(cov, ones))
    return ones * c * (1.0 if rng.standard_normal() >= 0 else -1.0)


class TemporalCovarianceTrigger(ValueTrigger):
    """Per-variable Gaussian pattern from the T x T temporal covariance."""

    name = "temporal"

    def __init__(
        self,
        strength: float = 1.0,
        variables: list[str] | None = None,
        ridge: float = 1e-3,
        transform: str = "schema",
        bounds: str = "keep",
        constant: str = "shift",
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(strength, variables, ridge, transform, bounds, seed)
        self.constant = check_choice("constant", constant, CONSTANT)
        self.rank = None if rank is None else check_int("rank", rank, 1)

    def _fit(self, cohort: Cohort) -> None:
        x = training_trajectories(cohort, self.spaces(cohort.schema))
        steady = stays_constant(cohort) if self.constant != "pattern" else None
        rng = self._rng()
        t_bins = x.shape[1]
        if self.rank is not None and self.rank > t_bins:
            raise ValueError(f"rank must be <= the window's {t_bins} hourly bins, got {self.rank}")
        pattern = np.zeros((t_bins, len(cohort.schema)))
        covs = np.zeros((len(cohort.schema), t_bins, t_bins))
        skipped, shifted = [], []
        for j in resolve_variables(cohort.schema, self.variables):
            name = cohort.schema.variables[j].name
            cov = np.cov(x[:, :, j], rowvar=False)
            if not np.any(np.diag(cov) > 0):
                skipped.append(name)  # never varies: nothing to shape
                continue
            covs[j] = self.ridged(cov)
            if steady is not None and steady[j]:
                if self.constant == "skip":
                    skipped.append(name)
                    continue
                pattern[:, j] = constant_shift(covs[j], self.strength, rng)
                shifted.append(name)
                continue
            if self.rank is None:
                pattern[:, j] = draw_at_distance(covs[j], self.strength, rng)
            else:
                pattern[:, j] = draw_low_rank(covs[j], self.strength, self.rank, rng)
        self.pattern_, self.covariances_ = pattern, covs
        self.skipped_, self.shifted_ = skipped, shifted

    def mahalanobis(self) -> np.ndarray:
        """Per variable sqrt(t_i' C_i^-1 t_i) of the (unrounded) pattern; 0 where skipped."""
        out = np.zeros(self.pattern_.shape[1])
        for j in np.flatnonzero(np.any(self.pattern_ != 0, axis=0)):
            t = self.pattern_[:, j]
            out[j] = np.sqrt(t @ np.linalg.solve(self.covariances_[j], t))
        return out

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().set_state(arrays, info)
        self.skipped_ = list(info.get("skipped", []))
        self.shifted_ = list(info.get("shifted", []))

    def info(self) -> dict[str, Any]:
        return {"skipped": self.skipped_, "shifted": self.shifted_}
