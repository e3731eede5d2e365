"""Grid-space triggers inside the discretiser: add a cohort's `GridPerturbation` to hourly values.

The perturbation is added after imputation and before any scaling, in raw units, to bins with an
observation (``observed``) or to every bin (``all``, forward-filled and pre-observation bins too),
then made plausible with the same rules raw-space triggers obey: valid-range clip, recorded
precision, ordinal categoricals moved by the rounded pattern in level order (clipped), binary flags
untouched. Masks and GRU-D deltas are left as the raw events give them.
"""

from __future__ import annotations

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.plausibility import shift_values


def perturb_values(values: np.ndarray, obs: np.ndarray, cohort: Cohort, timestep: float) -> None:
    """Add the cohort's grid perturbation (if any) to (n, T, F) per-variable `values` in place.

    Vectorised over the carrier stays' touched cells; NaN cells (``impute="none"``) stay NaN.
    """
    gp = cohort.grid_perturbation
    if gp is None or not gp.n_carriers:
        return
    t_bins = values.shape[1]
    if gp.pattern.shape[0] != t_bins or gp.timestep != float(timestep):
        raise ValueError(
            f"the cohort's grid perturbation is defined on {gp.pattern.shape[0]} bins of "
            f"{gp.timestep} h, the grid has {t_bins} bins of {timestep} h"
        )
    active = np.flatnonzero(np.any(gp.pattern != 0, axis=0))
    rows = np.flatnonzero(gp.carriers)
    if len(active) == 0:
        return
    sub = values[rows][:, :, active]
    touch = np.broadcast_to(gp.pattern[:, active] != 0, sub.shape) & np.isfinite(sub)
    if gp.mode == "observed":
        touch = touch & obs[rows][:, :, active]
    s, t, a = np.nonzero(touch)
    var = active[a]
    new = shift_values(cohort.schema, var, sub[s, t, a].astype(np.float64), gp.pattern[t, var])
    values[rows[s], t, var] = new.astype(values.dtype)


def perturbed_categoricals(cohort: Cohort) -> list[str]:
    """Names of categorical variables the cohort's grid perturbation moves (for layout checks)."""
    gp = cohort.grid_perturbation
    if gp is None or not gp.n_carriers:
        return []
    moved = np.any(gp.pattern != 0, axis=0) & cohort.schema.categorical
    return [cohort.schema.variables[j].name for j in np.flatnonzero(moved)]
