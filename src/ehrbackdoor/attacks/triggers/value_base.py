"""Public base of additive value triggers: a (T x F) pattern added to raw values.

T is the number of hourly bins of the training cohort's window (48 at 48 h, 24 at 24 h).

A new value trigger subclasses `ValueTrigger`, implements `_fit` (set ``pattern_``) and registers
itself in `ehrbackdoor.attacks.triggers.TRIGGERS`; applying, saving and loading are inherited.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ehrbackdoor.attacks.triggers.base import MAX_STRENGTH, Trigger, check_variables
from ehrbackdoor.checks import check_float
from ehrbackdoor.data.cohort import Cohort, Events, hour_bins
from ehrbackdoor.data.plausibility import shift_values
from ehrbackdoor.data.schema import Kind, Schema
from ehrbackdoor.preprocess.grid import grid_raw


def default_variables(schema: Schema) -> list[int]:
    """Variables a value trigger perturbs by default: every non-binary variable."""
    return [i for i, v in enumerate(schema.variables) if v.kind is not Kind.BINARY]


def resolve_variables(schema: Schema, names: list[str] | None) -> list[int]:
    if not names:
        return default_variables(schema)
    return [schema.index(n) for n in names]


def training_trajectories(cohort: Cohort) -> np.ndarray:
    """Forward-filled hourly raw values (n, T, F) of the stays: what covariances are fit on."""
    return grid_raw(cohort, impute="previous", perturb=False).values


def apply_pattern(pattern: np.ndarray, cohort: Cohort, idx: np.ndarray, mode: str) -> Events:
    """Add pattern[bin, variable] to raw values of stays `idx`.

    `observed`: only existing observations change (missingness and timestamps untouched).
    `all`: additionally every unobserved (bin, variable) cell where the pattern is non-zero gets an
    observation at the bin's midpoint whose value is the victim's forward-filled value plus the
    pattern (an attacker who knows the victim's `previous` imputation).
    """
    idx = np.asarray(idx, dtype=np.int64)
    schema = cohort.schema
    ev = cohort.events_of(idx)
    bins = hour_bins(ev.time)
    t_bins = len(pattern)
    inside = (ev.time > -1e-6) & (ev.time <= cohort.window + 1e-6) & (bins >= 0) & (bins < t_bins)
    delta = np.zeros(len(ev.time))
    delta[inside] = pattern[bins[inside], ev.variable[inside]]
    values = ev.value.copy()
    touched = delta != 0
    values[touched] = shift_values(schema, ev.variable[touched], ev.value[touched], delta[touched])
    alias = ev.alias.copy()
    alias[values != ev.value] = -1  # a changed categorical is written with its canonical text
    if mode == "observed":
        return Events(ev.offsets, ev.time, ev.variable, values, alias)

    sub = cohort.subset(idx)
    rg = grid_raw(sub, impute="previous", perturb=False)
    active = np.flatnonzero(np.any(pattern != 0, axis=0))
    stay, b, f = np.nonzero(~rg.mask[:, :, active])
    f = active[f]
    base = rg.values[stay, b, f]
    new_vals = shift_values(schema, f, base, pattern[b, f])
    stays_all = np.concatenate([ev.stay, stay])
    return Events.from_flat(
        stays_all,
        len(idx),
        np.concatenate([ev.time, b + 0.5]),
        np.concatenate([ev.variable, f]),
        np.concatenate([values, new_vals]),
        np.concatenate([alias, np.full(len(stay), -1, dtype=np.int8)]),
    )


def check_strength(strength: Any) -> float:
    """A finite Mahalanobis distance in (0, MAX_STRENGTH]: larger ones only overflow."""
    ok = not isinstance(strength, bool) and isinstance(strength, numbers.Real)
    if not ok or not math.isfinite(strength) or not 0 < strength <= MAX_STRENGTH:
        raise ValueError(
            f"strength must be a positive number <= {MAX_STRENGTH:g} (a Mahalanobis distance), "
            f"got {strength!r}"
        )
    return float(strength)


class ValueTrigger(Trigger):
    """Base of triggers that add a fixed (T x F) pattern to raw values."""

    family = "value"
    apply_modes = ("observed", "all")

    def __init__(
        self,
        strength: float = 1.0,
        variables: list[str] | None = None,
        ridge: float = 1e-3,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.strength = check_strength(strength)
        self.variables = check_variables(variables)
        self.ridge = check_float("ridge", ridge, 0.0)

    def apply(self, cohort: Cohort, idx: np.ndarray, mode: str = "observed") -> Events:
        self.check_fitted(cohort)
        self.check_mode(mode)
        if self.pattern_.shape[1] != len(cohort.schema):
            raise ValueError(
                f"trigger was fit on {self.pattern_.shape[1]} variables, cohort has "
                f"{len(cohort.schema)} ({cohort.schema.name})"
            )
        return apply_pattern(self.pattern_, cohort, idx, mode)

    def grid_pattern(self) -> np.ndarray:
        """The fitted (T x F) raw-unit pattern, as grid space adds it to hourly bins."""
        self.check_fitted()
        return self.pattern_.copy()

    def state(self) -> dict[str, np.ndarray]:
        return {"pattern": self.pattern_}

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.pattern_ = arrays["pattern"]

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def ridged(self, cov: np.ndarray) -> np.ndarray:
        """cov + ridge * mean variance * I: keeps rarely measured variables invertible."""
        scale = float(np.mean(np.diag(cov))) or 1.0
        return cov + self.ridge * scale * np.eye(len(cov))


def draw_at_distance(cov: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A draw t ~ N(0, cov) rescaled so that sqrt(t' cov^-1 t) == distance.

    With cov = L L' and t = L z, t' cov^-1 t = z'z, so scaling z to norm `distance` suffices.
    """
    chol = np.linalg.cholesky(cov)
    z = rng.standard_normal(len(cov))
    return chol @ (z * (distance / np.linalg.norm(z)))
