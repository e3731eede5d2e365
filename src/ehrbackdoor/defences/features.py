"""Stay-level views the data-level detectors share (public, for new detectors): window features
and hourly masks.

Both are computed from the (poisoned) training cohort alone -- the defender's own preprocessing --
and cached per cohort content, so an audit running several detectors featurises once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.preprocess.features import STATISTICS, SUB_PERIODS, window_features
from ehrbackdoor.preprocess.grid import grid_raw

_CACHE: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_CACHE_SIZE = 4


def _cached(cohort: Cohort, kind: str, build) -> np.ndarray:
    key = (cohort.content_hash(), kind)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    arr = build()
    arr.setflags(write=False)
    _CACHE[key] = arr
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return arr


def clear_cache() -> None:
    _CACHE.clear()


def weighted_quantile(x: np.ndarray, w: np.ndarray, q) -> np.ndarray:
    """Quantiles of x under weights w (the smallest x whose cumulative weight reaches q)."""
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order])
    pos = np.searchsorted(cw, np.asarray(q, dtype=np.float64) * cw[-1] - 1e-12 * cw[-1])
    return xs[np.clip(pos, 0, len(xs) - 1)]


def stay_weights(stay: np.ndarray, n_stays: int) -> np.ndarray:
    """Weight 1 / (the stay's number of values) per value: every stay counts once."""
    per_stay = np.bincount(stay, minlength=n_stays)
    return 1.0 / per_stay[stay]


def skew_transform(
    cohort: Cohort, skew_ratio: float = 2.0
) -> dict[int, tuple[bool, float, np.ndarray]]:
    """Per continuous variable j with >= 10 values: (log, shift, value positions).

    ``log`` marks right-skewed variables, ``(q95 - q50) > skew_ratio * (q50 - q05)`` with stay-weighted
    quantiles; they are compared on ``g(x) = log(x - low + shift)``, ``shift = median - low`` (at
    least one recorded unit), which tames orders-of-magnitude laboratory tails and bounds the low
    end. Shared by the range check and the isolation forests so both see the same scale.
    """
    e = cohort.events
    var = e.variable.astype(np.int64)
    out = {}
    for j, v in enumerate(cohort.schema.variables):
        if v.is_categorical:
            continue
        sel = np.flatnonzero(var == j)
        if len(sel) < 10:
            continue
        w = stay_weights(e.stay[sel], cohort.n_stays)
        q05, q50, q95 = weighted_quantile(e.value[sel], w, [0.05, 0.5, 0.95])
        log = bool(v.low >= 0 and (q95 - q50) > skew_ratio * (q50 - q05))
        out[j] = (log, float(max(q50 - v.low, 10.0**-v.precision)), sel)
    return out


def apply_skew(x: np.ndarray, log: bool, shift: float, low: float) -> np.ndarray:
    return np.log(np.maximum(x - low, 0.0) + shift) if log else np.asarray(x, dtype=np.float64)


def value_blocks(cohort: Cohort) -> np.ndarray:
    """(n, F, 7, 5) window statistics min, max, mean, std, skew of skew-corrected values; NaN
    where a stay never records the variable (no counts: missingness is the mask view's business)."""

    def build() -> np.ndarray:
        e = cohort.events
        values = e.value.astype(np.float64, copy=True)
        for j, (log, shift, sel) in skew_transform(cohort).items():
            values[sel] = apply_skew(values[sel], log, shift, cohort.schema.variables[j].low)
        X = window_features(replace(cohort, events=replace(e, value=values))).X
        X = X.reshape(cohort.n_stays, len(cohort.schema), len(SUB_PERIODS), len(STATISTICS))
        return np.ascontiguousarray(X[..., :-1], dtype=np.float64)

    return _cached(cohort, "value-blocks", build)


def _standardised_features(cohort: Cohort) -> np.ndarray:
    from ehrbackdoor.preprocess.cache import features_cached

    feats = features_cached(cohort)  # the victims featurise the same cohort through this cache
    X = feats.X.astype(np.float64)
    is_count = np.array([c.endswith("/" + STATISTICS[-1]) for c in feats.columns])
    X[:, is_count] = np.nan_to_num(X[:, is_count], nan=0.0)
    observed = ~np.all(np.isnan(X), axis=0)
    X = X[:, observed]
    with np.errstate(all="ignore"):
        med = np.nanmedian(X, axis=0)
        q75, q25 = np.nanpercentile(X, [75, 25], axis=0)
        scale = (q75 - q25) / 1.349
        std = np.nanstd(X, axis=0)
    scale = np.where(scale > 1e-12, scale, std)
    keep = scale > 1e-12  # constant columns carry no information
    Z = (X[:, keep] - med[keep]) / scale[keep]
    Z = np.nan_to_num(Z, nan=0.0)  # unobserved window: the typical value
    if Z.shape[1] == 0:
        Z = np.zeros((cohort.n_stays, 1))
    return Z


def feature_matrix(cohort: Cohort, clip: float | None = None) -> np.ndarray:
    """Window statistics of every stay, robustly standardised: (x - median) / (IQR / 1.349).

    Unobserved windows take the median (0), unobserved counts 0; all-missing and constant columns
    are dropped. `clip` bounds |z| (distance-based detectors; trees need no clipping).
    """
    Z = _cached(cohort, "features", lambda: _standardised_features(cohort))
    if clip is not None:
        return np.clip(Z, -clip, clip)
    return Z


def mask_matrix(cohort: Cohort) -> np.ndarray:
    """Hourly observation masks (n, T * F) as float64 (1 = observed in the bin)."""

    def build() -> np.ndarray:
        m = grid_raw(cohort, impute="zero").mask
        return m.reshape(cohort.n_stays, -1).astype(np.float64)

    return _cached(cohort, "mask", build)


def reduce_dims(Z: np.ndarray, n_components: int | None, seed: int) -> np.ndarray:
    """Principal components of Z (at most `n_components`); Z itself if None or already small."""
    if n_components is None or Z.shape[1] <= n_components:
        return Z
    from sklearn.decomposition import PCA

    k = min(n_components, Z.shape[0] - 1, Z.shape[1])
    if k < 1:
        return Z
    solver = "full" if min(Z.shape) <= 1000 else "randomized"
    return PCA(n_components=k, svd_solver=solver, random_state=seed).fit_transform(Z)


def fold_ids(n: int, n_folds: int, seed: int) -> np.ndarray:
    """Seeded assignment of n stays to `n_folds` (near-)equal folds."""
    n_folds = max(2, min(n_folds, n))
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % n_folds)
