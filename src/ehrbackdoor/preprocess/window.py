"""The observation window in hourly bins: a property of the cohort (`Cohort.window`), never a
constant, so grids, features, triggers and fitted components derive T from it."""

from __future__ import annotations

from ehrbackdoor.data.cohort import BIN_EPS, Cohort

__all__ = ["check_window", "n_bins", "window_bins", "window_hours"]


def n_bins(hours: float, timestep: float = 1.0) -> int:
    """Number of bins the benchmark makes for `hours` at `timestep` (48 for 48 h at 1 h)."""
    return int(hours / timestep + 1.0 - BIN_EPS)


def window_hours(cohort: Cohort, hours: float | None = None) -> float:
    """`hours` if given, else the cohort's own observation window (`Cohort.window`)."""
    return float(cohort.window if hours is None else hours)


def window_bins(cohort: Cohort, timestep: float = 1.0) -> int:
    """T, the number of hourly bins of the cohort's window (48 at 48 h, 24 at 24 h)."""
    return n_bins(cohort.window, timestep)


def check_window(fitted_hours: float, cohort: Cohort, what: str) -> None:
    """ValueError if `cohort`'s window differs from the one a component was fit on.

    Fitted state (trigger patterns, scalers, networks) is shaped by the training window's T bins;
    applying it to stays of another window would silently misalign hours, so it is refused.
    """
    if float(fitted_hours) != float(cohort.window):
        raise ValueError(
            f"{what} was fit on a {float(fitted_hours):g}-hour window but the cohort has a "
            f"{cohort.window:g}-hour window ({cohort.schema.name}); refit it on this cohort"
        )
