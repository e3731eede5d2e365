"""Victim-side preprocessing: hourly grids, window features, scalers and their on-disk cache.

Preprocessing belongs to the defender's pipeline: attacks poison raw events of a `Cohort`, and each
victim turns (poisoned) cohorts into tensors here. Both representations follow the MIMIC-III
benchmark numerically (its Discretizer and its feature extractor) and are vectorised over all stays.

- `discretize` -> `Grid`: (n, T, C) values, (n, T, F) masks and GRU-D deltas over the T hourly bins
  of the cohort's window (48 at 48 h, 24 at 24 h); ``flat()`` is the
  benchmark's (n, T, C + F) input. `grid_raw` -> `RawGrid`: per-variable float64 values for attacks.
- `window_features` -> `Features`: the benchmark's 42 statistics per variable from the raw events;
  `hourly_features`: the same statistics from the hourly forward-filled grid (Joe et al., 2021).
- A cohort's grid-space trigger (`Cohort.grid_perturbation`) is added inside the discretiser.
- `FeatureScaler`, `GridScaler`: fit on training stays only; state as plain arrays.
- `grid_cached`, `features_cached` (per-stay, content-addressed), `cached` (whole results): the
  on-disk cache; `cache_info`, `clear_cache` inspect and empty it (see `ehrbackdoor.cachedir`).
"""

from ehrbackdoor.preprocess.cache import (
    CACHE_VERSION,
    cache_info,
    cache_key,
    cached,
    clear_cache,
    default_cache_dir,
    features_cached,
    grid_cached,
)
from ehrbackdoor.preprocess.features import (
    STATISTICS,
    SUB_PERIODS,
    Features,
    feature_names,
    hourly_features,
    window_features,
)
from ehrbackdoor.preprocess.grid import (
    IMPUTE_STRATEGIES,
    LAYOUTS,
    Grid,
    RawGrid,
    column_names,
    discretize,
    grid_raw,
    n_bins,
)
from ehrbackdoor.preprocess.scaling import FeatureScaler, GridScaler

__all__ = [
    "CACHE_VERSION",
    "IMPUTE_STRATEGIES",
    "LAYOUTS",
    "STATISTICS",
    "SUB_PERIODS",
    "FeatureScaler",
    "Features",
    "Grid",
    "GridScaler",
    "RawGrid",
    "cache_info",
    "cache_key",
    "cached",
    "clear_cache",
    "column_names",
    "default_cache_dir",
    "discretize",
    "feature_names",
    "features_cached",
    "grid_cached",
    "grid_raw",
    "hourly_features",
    "n_bins",
    "window_features",
]
