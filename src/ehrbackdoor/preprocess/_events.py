"""Shared event plumbing: one sort of a cohort's events by (stay, variable, time).

Both the grid and the window features reduce events per (stay, variable) series, so both start from
the same ordering. A cohort keeps events sorted by stay then time (ties in file order); a stable sort
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
    stay: np.ndarray  # (E',) int64
    variable: np.ndarray  # (E',) int64
    time: np.ndarray  # (E',) float64
    value: np.ndarray  # (E',) float64
    series: np.ndarray  # (E',) int64 = stay * F + variable (nondecreasing)


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
    stay = e.stay
    idx = np.flatnonzero(keep) if keep is not None else np.arange(len(e.time), dtype=np.int64)
    stay = stay[idx]
    var = e.variable[idx].astype(np.int64)
    time = e.time[idx]
    key = stay * n_vars + var
    if time_sorted_within_stays(stay, time):
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((time, key))
    return SeriesEvents(
        index=idx[order],
        stay=stay[order],
        variable=var[order],
        time=time[order],
        value=e.value[idx[order]],
        series=key[order],
    )
