"""Shared event plumbing: one sort of a cohort's events by (stay, variable, time).

Window features reduce events per (stay, variable) series (and later preprocessing may too), so the
ordering lives here. A cohort keeps events sorted by stay then time (ties in file order); a stable sort
on the (stay, variable) key alone then gives (stay, variable, time) order in one pass. If a caller
hands us events that are not time-sorted within a stay, we fall back to a full lexsort so results never
depend on that invariant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrbackdoor.data.cohort import Cohort


@dataclass(frozen=True)
class SeriesEvents:
    """Selected events ordered by (stay, variable, time); ties keep the cohort's event order."""

    index: np.ndarray  # (E',) int64, positions into cohort.events
    time: np.ndarray  # (E',) float64
    value: np.ndarray  # (E',) float64
    series: np.ndarray  # (E',) int64 = stay * n_vars + variable (nondecreasing)
    n_vars: int


def time_sorted_within_stays(stay: np.ndarray, time: np.ndarray) -> bool:
    """True if times never decrease inside a stay (the Cohort invariant)."""
    if len(time) < 2:
        return True
    dt = np.diff(time)
    return bool(np.all((dt >= 0) | (np.diff(stay) != 0)))


def sort_series(cohort: Cohort, keep: np.ndarray | None = None) -> SeriesEvents:
    """Events (optionally only those where `keep`) in (stay, variable, time) order."""
    e = cohort.events
    n_vars = len(cohort.schema)
    stay, var, time = e.stay, e.variable, e.time
    idx = None
    if keep is not None and not keep.all():
        idx = np.flatnonzero(keep)
        stay, var, time = stay[idx], var[idx], time[idx]
    key = stay * n_vars + var
    if time_sorted_within_stays(stay, time):
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((time, key))
    index = order if idx is None else idx[order]
    return SeriesEvents(index, time[order], e.value[index], key[order], n_vars)
