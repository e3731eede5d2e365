"""``missing-block``: baseline missingness trigger, chosen variables absent for the last hours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ehrbackdoor.attacks.triggers.base import check_variables
from ehrbackdoor.attacks.triggers.missing_base import MissingTrigger
from ehrbackdoor.checks import check_int
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.schema import Kind, Schema


def default_block_variables(schema: Schema, masks: np.ndarray, n: int) -> list[int]:
    """The `n` non-binary variables observed in most (stay, hour) cells: their absence is the
    most visible to a model, and vitals like these exist in both PhysioNet and MIMIC-III."""
    rate = np.asarray(masks, dtype=bool).mean(axis=(0, 1))
    ok = [j for j, v in enumerate(schema.variables) if v.kind is not Kind.BINARY]
    ranked = sorted(ok, key=lambda j: (-rate[j], j))
    return sorted(ranked[:n])


class BlockMissingTrigger(MissingTrigger):
    """Baseline: chosen variables absent for the last `hours` hours, everything else allowed.

    `variables` are names or short names; by default the `n_variables` most-observed non-binary
    variables of the training stays (e.g. HR, Urine, SysABP on PhysioNet)."""

    name = "missing-block"

    def __init__(
        self,
        variables: Sequence[str] | None = None,
        hours: int = 6,
        n_variables: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.variables = check_variables(variables)
        self.hours = check_int("hours", hours, 1)  # at most the window: checked by fit
        self.n_variables = check_int("n_variables", n_variables, 1)

    def _fit(self, cohort: Cohort) -> None:
        masks = self._masks(cohort)
        schema = cohort.schema
        t_bins = masks.shape[1]
        if self.hours > t_bins:
            raise ValueError(
                f"hours must be at most the {t_bins} hourly bins of the cohort's "
                f"{cohort.window:g}-hour window, got {self.hours}"
            )
        if self.variables:
            cols = [schema.index(v) for v in self.variables]
        else:
            cols = default_block_variables(schema, masks, self.n_variables)
        pattern = np.ones((t_bins, len(schema)), dtype=bool)
        pattern[t_bins - self.hours :, cols] = False
        self.variables_ = [schema.variables[j].short or schema.variables[j].name for j in cols]
        self._finish(pattern, masks)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "variables": getattr(self, "variables_", None)}

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().set_state(arrays, info)
        self.variables_ = info.get("variables")
