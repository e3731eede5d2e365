"""Imputation consistency: does a stay's preprocessed hourly grid follow from its own data?

The victim's discretiser is deterministic: an observed hour holds the value of the bin's last raw
event, and under forward fill an unobserved hour holds the previous hour's value (the variable's
normal value before the first observation; ``normal`` and ``zero`` imputation likewise fix it).
This detector rebuilds each stay's grid as the victim's preprocessing produces it (ordinal layout,
with any grid-space trigger the cohort carries) and counts the cells that break those rules:

- observed cells whose value differs from the raw event value (``observed`` grid triggers);
- unobserved cells whose value differs from what the imputation rule implies from the recorded
  values and the masks (``all`` grid triggers write imputed hours).

The implied grid is built from the recorded values alone, so every changed cell counts exactly once
(a perturbed observation is not blamed again in the hours forward-filled after it, whichever way
the discretiser propagates it). Score per stay: the number of inconsistent cells
(``measure="count"``) or the sum of their deviations in units of the variable's robust spread
(``measure="magnitude"``).

By construction a clean cohort, and any cohort poisoned in raw space (whose grid is computed from
the poisoned events themselves), scores 0 everywhere: the detector is blind to raw-space poison and
decisive on grid-space poison. It needs no victim and no reference stays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences.base import Detector, check_choice, check_float
from ehrbackdoor.preprocess.grid import discretize, grid_raw, impute_unobserved

IMPUTATIONS = ("previous", "normal", "zero")
SCORES = ("count", "magnitude")


def implied_imputation(
    values: np.ndarray, mask: np.ndarray, normal: np.ndarray, impute: str
) -> np.ndarray:
    """What the imputation rule puts in every cell, given observed values and masks.

    Observed cells keep their value; unobserved cells get the previous hour's implied value
    (``previous``, the normal value before the first observation), the normal value (``normal``)
    or 0 (``zero``): the victims' own imputation (`preprocess.grid.impute_unobserved`).
    """
    out = values.copy()
    if impute == "zero":
        out[~mask] = 0
    else:
        impute_unobserved(out, mask, np.asarray(normal), impute)
    return out


def robust_scale(raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per variable, IQR / 1.349 of its observed raw values (1 where undefined or zero)."""
    n_vars = raw.shape[-1]
    scale = np.ones(n_vars)
    for j in range(n_vars):
        x = raw[:, :, j][mask[:, :, j]]
        if len(x) >= 2:
            q1, q3 = np.percentile(x, [25, 75])
            s = (q3 - q1) / 1.349 or float(np.std(x))
            scale[j] = s if s > 0 else 1.0
    return scale


class ImputationConsistencyDetector(Detector):
    """Cells of the preprocessed grid that the stay's raw events and masks do not imply.

    Parameters: ``impute`` (the victim's imputation: previous / normal / zero), ``measure`` (count
    or magnitude, see the module docstring), ``tol`` (relative tolerance of a cell comparison, on
    the float32 grid), ``seed`` (unused: the detector is deterministic).
    """

    name = "imputation-consistency"
    family = "data"

    def __init__(
        self, impute: str = "previous", measure: str = "count", tol: float = 1e-6, seed: int = 0
    ) -> None:
        super().__init__(seed)
        self.impute = check_choice("impute", impute, IMPUTATIONS)
        self.measure = check_choice("measure", measure, SCORES)
        self.tol = check_float("tol", tol, 0.0)

    def cell_violations(self, cohort: Cohort) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(observed, imputed) violation masks (n, T, F) and the deviation of every cell."""
        grid = discretize(cohort, impute=self.impute, layout="ordinal")
        values = grid.values.astype(np.float32)
        mask = grid.mask > 0
        recorded = grid_raw(cohort, impute="none", perturb=False).values.astype(np.float32)
        recorded = np.where(mask, recorded, 0).astype(np.float32)
        expected = implied_imputation(recorded, mask, cohort.schema.normals, self.impute)
        deviation = np.abs(values.astype(np.float64) - expected.astype(np.float64))
        bad = deviation > self.tol * (1.0 + np.abs(expected.astype(np.float64)))
        return bad & mask, bad & ~mask, deviation

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        bad_obs, bad_imp, deviation = self.cell_violations(cohort)
        bad = bad_obs | bad_imp
        if self.measure == "count":
            s = bad.sum(axis=(1, 2)).astype(np.float64)
        else:
            raw = grid_raw(cohort, impute="none", perturb=False)
            scale = robust_scale(np.nan_to_num(raw.values), raw.mask)
            s = np.where(bad, deviation / scale, 0.0).sum(axis=(1, 2))
        per_var = bad.sum(axis=(0, 1))
        self.info_ = {
            "n_inconsistent_observed": int(bad_obs.sum()),
            "n_inconsistent_imputed": int(bad_imp.sum()),
            "n_stays_flagged": int((bad.sum(axis=(1, 2)) > 0).sum()),
            "top_variables": {
                cohort.schema.names[j]: int(per_var[j])
                for j in np.argsort(-per_var, kind="stable")[:5]
                if per_var[j]
            },
        }
        return s
