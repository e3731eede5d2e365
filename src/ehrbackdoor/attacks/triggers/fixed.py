"""Fixed-pattern trigger: one variable set to a fixed plausible value in the last k hours.

The classic BadNets analogue for time series. With `value=None` the value is the variable's
`quantile` in training data (plausible but unusual). In `observed` mode only existing observations
in those hours change; in `all` mode every one of the k hours gets an observation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.attacks.constraints import set_values
from ehrbackdoor.attacks.triggers._value import N_BINS
from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.data.cohort import WINDOW_HOURS, Cohort, Events, hour_bins


class FixedPatternTrigger(Trigger):
    name = "fixed"

    def __init__(
        self,
        variable: str = "HR",
        value: float | None = None,
        hours: int = 6,
        quantile: float = 0.95,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if not 1 <= int(hours) <= N_BINS:
            raise ValueError(f"hours must be between 1 and {N_BINS}, got {hours!r}")
        if not 0 <= quantile <= 1:
            raise ValueError(f"quantile must be in [0, 1], got {quantile!r}")
        self.variable, self.value, self.hours, self.quantile = variable, value, int(hours), quantile

    def get_params(self) -> dict[str, Any]:
        return {
            "variable": self.variable,
            "value": self.value,
            "hours": self.hours,
            "quantile": self.quantile,
            "seed": self.seed,
        }

    def fit(self, cohort: Cohort) -> FixedPatternTrigger:
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
        self.fitted_ = True
        return self

    def apply(self, cohort: Cohort, idx: np.ndarray, mode: str = "observed") -> Events:
        self.check_fitted()
        self.check_mode(mode)
        idx = np.asarray(idx, dtype=np.int64)
        ev = cohort.events_of(idx)
        j, first = self.variable_index_, N_BINS - self.hours
        bins = hour_bins(ev.time)
        hit = (ev.variable == j) & (bins >= first) & (bins < N_BINS)
        hit &= ev.time <= WINDOW_HOURS + 1e-6
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
