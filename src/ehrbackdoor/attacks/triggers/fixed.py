"""Fixed-pattern trigger: one variable set to a fixed plausible value in the last k hours.

The classic BadNets analogue for time series. With `value=None` the value is the variable's
`quantile` in training data (plausible but unusual). In `observed` mode only existing observations
in those hours change; in `all` mode every one of the k hours gets an observation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.checks import check_float, check_int
from ehrbackdoor.data.cohort import Cohort, Events, hour_bins
from ehrbackdoor.data.plausibility import set_values
from ehrbackdoor.preprocess.window import window_bins


class FixedPatternTrigger(Trigger):
    """One variable set to a fixed plausible value in the last `hours` hours."""

    name = "fixed"
    min_stays = 1  # a fixed value (or one quantile) needs no covariance
    family = "value"
    apply_modes = ("observed", "all")

    def __init__(
        self,
        variable: str = "HR",
        value: float | None = None,
        hours: int = 6,
        quantile: float = 0.95,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if not isinstance(variable, str) or not variable:
            raise ValueError(f"variable must be a variable name, got {variable!r}")
        self.variable = variable
        self.value = None if value is None else check_float("value", value)
        self.hours = check_int("hours", hours, 1)  # at most the window: checked by fit
        self.quantile = check_float("quantile", quantile, 0.0, 1.0)

    def _fit(self, cohort: Cohort) -> None:
        t_bins = window_bins(cohort)
        if self.hours > t_bins:
            raise ValueError(
                f"hours must be at most the {t_bins} hourly bins of the cohort's "
                f"{cohort.window:g}-hour window, got {self.hours}"
            )
        j = cohort.schema.index(self.variable)
        if self.value is None:
            vals = cohort.events.value[cohort.events.variable == j]
            if len(vals) == 0:
                raise ValueError(f"variable {self.variable!r} is never observed in the cohort")
            target = np.quantile(vals, self.quantile)
        else:
            target = self.value
        self.variable_index_ = j
        self.value_ = float(set_values(cohort.schema, np.array([j]), np.array([target]))[0])

    def apply(self, cohort: Cohort, idx: np.ndarray, mode: str = "observed") -> Events:
        self.check_fitted(cohort)
        self.check_mode(mode)
        idx = np.asarray(idx, dtype=np.int64)
        ev = cohort.events_of(idx)
        t_bins = window_bins(cohort)
        j, first = self.variable_index_, t_bins - self.hours
        bins = hour_bins(ev.time)
        hit = (ev.variable == j) & (bins >= first) & (bins < t_bins)
        hit &= ev.time <= cohort.window + 1e-6
        values, alias = ev.value.copy(), ev.alias.copy()
        values[hit], alias[hit] = self.value_, -1
        if mode == "observed":
            return Events(ev.offsets, ev.time, ev.variable, values, alias)
        stay = ev.stay
        have = np.zeros((len(idx), self.hours), dtype=bool)
        have[stay[hit], bins[hit] - first] = True
        s, b = np.nonzero(~have)
        return Events.from_flat(
            np.concatenate([stay, s]),
            len(idx),
            np.concatenate([ev.time, first + b + 0.5]),
            np.concatenate([ev.variable, np.full(len(s), j)]),
            np.concatenate([values, np.full(len(s), self.value_)]),
            np.concatenate([alias, np.full(len(s), -1, dtype=np.int8)]),
        )

    def state(self) -> dict[str, np.ndarray]:
        return {
            "value": np.array([self.value_]),
            "variable_index": np.array([self.variable_index_]),
        }

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.value_ = float(arrays["value"][0])
        self.variable_index_ = int(arrays["variable_index"][0])
