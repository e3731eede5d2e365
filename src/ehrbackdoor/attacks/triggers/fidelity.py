"""How faithful a value trigger is once written into recorded values (JSON-able report).

A trigger is designed as a pattern at Mahalanobis distance `strength`; what a victim sees is the
pattern after it lands only on charted hours, is rounded to recorded precision and kept inside the
valid range. The report measures, per variable, on the same stays before and after the trigger:

- ``new_bound_hits``: values now on a valid-range bound (floor or ceiling) that were not before
  (continuous variables; categorical levels have no artefact bound);
- ``changed_values`` / ``changed_share``: recorded values that changed;
- ``realised_mahalanobis``: median / mean / max over the stays that record the variable of
  sqrt(d' C^-1 d), d the change of the forward-filled hourly trajectory in the trigger's space and
  C the trigger's covariance for that variable (it can exceed the design: before a stay's first
  observation nothing changes, and a step is an unusual shape); ``designed_mahalanobis`` is the
  pattern's own distance;
- ``new_within_stay_variance``: stays whose recorded values of the variable were all equal (two or
  more) and now differ -- what a normally constant variable (Weight) must not get.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.attacks.triggers.value_base import training_trajectories, within_stay_sd
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.preprocess.grid import grid_raw


def _mahalanobis(cov: np.ndarray, d: np.ndarray) -> np.ndarray:
    """sqrt(d_i' cov^-1 d_i) for each row of d (n, 48)."""
    sol = np.linalg.solve(cov, d.T)
    return np.sqrt(np.maximum(np.einsum("ij,ji->i", d, sol), 0.0))


def bound_hits(clean: Cohort, triggered: Cohort) -> np.ndarray:
    """Per variable: values on a valid-range bound after the trigger that were not on it before.

    Event-by-event when both cohorts have the same events (``observed`` mode), else hourly cell by
    cell on the forward-filled grids (``all`` mode adds events, which copy a forward-filled value).
    """
    schema = clean.schema
    cont = ~schema.categorical
    f = len(schema)
    a, b = clean.events, triggered.events
    lo, hi = schema.lows, schema.highs
    aligned = (
        len(a.value) == len(b.value)
        and np.array_equal(a.variable, b.variable)
        and np.array_equal(a.time, b.time)
    )
    if aligned:
        v = a.variable
        hit = ((b.value <= lo[v]) & (a.value > lo[v])) | ((b.value >= hi[v]) & (a.value < hi[v]))
        out = np.bincount(v[hit & cont[v]], minlength=f)
    else:  # events were added: compare the forward-filled hourly cells instead
        g0 = grid_raw(clean, impute="previous").values
        g1 = grid_raw(triggered, impute="previous").values
        hit = ((g1 <= lo) & (g0 > lo)) | ((g1 >= hi) & (g0 < hi))
        out = (hit & cont).sum(axis=(0, 1))
    return out.astype(np.int64)


def fidelity_report(trigger: Any, clean: Cohort, triggered: Cohort) -> dict[str, Any]:
    """The module docstring's measures for `trigger` (a fitted `ValueTrigger`) on the same stays
    before (`clean`) and after (`triggered`) it was applied."""
    if clean.n_stays != triggered.n_stays or not np.array_equal(clean.stay_id, triggered.stay_id):
        raise ValueError("fidelity_report needs the same stays before and after the trigger")
    schema = clean.schema
    spaces = trigger.spaces(schema)
    hits = bound_hits(clean, triggered)
    d = training_trajectories(triggered, spaces) - training_trajectories(clean, spaces)
    n0, sd0 = within_stay_sd(clean)
    _, sd1 = within_stay_sd(triggered)
    new_var = ((n0 >= 2) & (sd0 <= 1e-9) & (sd1 > 1e-9)).sum(axis=0)
    aligned = len(clean.events.value) == len(triggered.events.value)
    covs = getattr(trigger, "covariances_", None)
    pattern = trigger.pattern_
    per_var: dict[str, Any] = {}
    realised_medians = []
    for j in np.flatnonzero(np.any(pattern != 0, axis=0)):
        name = schema.variables[j].name
        row: dict[str, Any] = {
            "space": spaces[j],
            "new_bound_hits": int(hits[j]),
            "new_within_stay_variance": int(new_var[j]),
        }
        if aligned:
            sel = clean.events.variable == j
            changed = int(np.sum(triggered.events.value[sel] != clean.events.value[sel]))
            row["changed_values"] = changed
            row["changed_share"] = float(changed / max(int(sel.sum()), 1))
        if covs is not None and np.any(covs[j] != 0):
            rec = n0[:, j] > 0
            dist = _mahalanobis(covs[j], d[rec, :, j]) if rec.any() else np.zeros(1)
            t = pattern[:, j]
            row["designed_mahalanobis"] = float(np.sqrt(t @ np.linalg.solve(covs[j], t)))
            row["realised_mahalanobis"] = {
                "median": float(np.median(dist)),
                "mean": float(np.mean(dist)),
                "max": float(np.max(dist)),
                "stays_recording": int(rec.sum()),
                "share_of_stays_moved": float(np.mean(dist > 1e-9)),
            }
            realised_medians.append(float(np.median(dist)))
        per_var[name] = row
    return {
        "trigger": trigger.name,
        "transform": trigger.transform,
        "bounds": trigger.bounds,
        "n_stays": int(clean.n_stays),
        "new_bound_hits": int(hits.sum()),
        "new_within_stay_variance": int(
            sum(r["new_within_stay_variance"] for r in per_var.values())
        ),
        "realised_mahalanobis_median": float(np.median(realised_medians))
        if realised_medians
        else None,
        "variables": per_var,
    }
