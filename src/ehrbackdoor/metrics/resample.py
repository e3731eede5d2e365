"""Percentile bootstrap intervals over resamples of records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrbackdoor.metrics._validate import (
    UndefinedMetricError,
    _check_alpha,
    _check_pair,
    _check_positive_int,
)
from ehrbackdoor.metrics.batch import _FAST_BY_FUNCTION, _FAST_METRICS, _level_counts, _levels

# Upper bound on elements of one resample-index chunk (rows * n_records); keeps
# the index matrix and the per-level count matrices at a few tens of MB.
_CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap interval plus the statistics behind it.

    ``n_skipped`` counts resamples on which the metric was undefined (e.g. a single
    class); they are excluded from ``statistics`` and the interval.
    """

    low: float
    high: float
    statistics: NDArray[np.float64]
    n_skipped: int


def _index_chunks(n: int, n_resamples: int, seed: int | None) -> Iterator[NDArray[np.int64]]:
    """Yield (rows, n) resample-index matrices, seeded and with bounded memory.

    The chunk size depends only on ``n`` so the same seed always yields the same
    indices, whichever metric consumes them.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n), dtype=np.int64)


def _percentile_result(stats: NDArray[np.float64], alpha: float) -> BootstrapResult:
    finite = np.isfinite(stats)
    kept = stats[finite]
    n_skipped = int(stats.shape[0] - kept.shape[0])
    if kept.size == 0:
        raise UndefinedMetricError(
            f"metric was undefined on all {stats.shape[0]} bootstrap resamples "
            "(e.g. every resample had a single class)"
        )
    low, high = np.quantile(kept, [alpha / 2.0, 1.0 - alpha / 2.0])
    return BootstrapResult(float(low), float(high), kept, n_skipped)


def bootstrap(
    metric_fn: str | Callable[..., float],
    *arrays: ArrayLike,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alpha: float = 0.05,
) -> BootstrapResult:
    """Percentile bootstrap of ``metric_fn(*arrays)`` over resampled records.

    ``metric_fn`` is a name -- ``"auroc"``, ``"auprc"`` / ``"average_precision"``,
    ``"auprc_trapezoid"``, ``"min_se_ppv"`` -- or a callable.  Names (and the
    callables :func:`auroc`, :func:`auprc` with its default method, :func:`min_se_ppv`)
    take ``(y_true, p)`` and use exact vectorised batch kernels; other callables are
    called once per resample with every array indexed along axis 0.  Resamples on
    which the metric is undefined -- single-class resamples for the fast metrics, a
    raised :class:`UndefinedMetricError` or a non-finite result for callables -- are
    skipped and counted in ``n_skipped``.  Indices come from
    ``numpy.random.default_rng(seed)`` in fixed-size chunks, so results are
    reproducible and fast and generic paths see identical resamples.
    """
    n_resamples = _check_positive_int(n_resamples, "n_resamples")
    alpha = _check_alpha(alpha)
    if not arrays:
        raise ValueError("bootstrap needs at least one array to resample")

    name: str | None
    if isinstance(metric_fn, str):
        if metric_fn not in _FAST_METRICS:
            raise ValueError(
                f"unknown metric name {metric_fn!r}; expected one of {sorted(_FAST_METRICS)} "
                "or a callable"
            )
        name = metric_fn
    elif callable(metric_fn):
        try:
            name = _FAST_BY_FUNCTION.get(metric_fn)
        except TypeError:  # unhashable callable object
            name = None
    else:
        raise ValueError(f"metric_fn must be a metric name or a callable, got {metric_fn!r}")

    if name is not None:
        if len(arrays) != 2:
            raise ValueError(f"metric {name!r} takes exactly two arrays (y_true, p)")
        y, s = _check_pair(arrays[0], arrays[1])
        kernel = _FAST_METRICS[name]
        levels = _levels(y, s)
        chunks = _index_chunks(y.shape[0], n_resamples, seed)
        stats = np.concatenate([kernel(*_level_counts(levels, idx)) for idx in chunks])
        return _percentile_result(stats, alpha)

    arrs = [np.asarray(a) for a in arrays]
    for i, a in enumerate(arrs):
        if a.ndim == 0:
            raise ValueError(f"arrays[{i}] must have at least one dimension")
    n = arrs[0].shape[0]
    if n == 0:
        raise ValueError("arrays must be non-empty")
    lengths = [a.shape[0] for a in arrs]
    if any(length != n for length in lengths):
        raise ValueError(f"all arrays must have equal lengths along axis 0, got {lengths}")

    stats = np.empty(n_resamples)
    pos = 0
    for idx in _index_chunks(n, n_resamples, seed):
        for row in idx:
            try:
                stats[pos] = float(metric_fn(*(a[row] for a in arrs)))
            except UndefinedMetricError:
                stats[pos] = np.nan
            pos += 1
    return _percentile_result(stats, alpha)


def bootstrap_ci(
    metric_fn: str | Callable[..., float],
    *arrays: ArrayLike,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """``(low, high)`` percentile ``1 - alpha`` bootstrap interval; see :func:`bootstrap`.

    Use :func:`bootstrap` to also get the number of skipped (undefined) resamples.
    """
    result = bootstrap(metric_fn, *arrays, n_resamples=n_resamples, seed=seed, alpha=alpha)
    return result.low, result.high


# ------------------------------------------------------------------------ attack metrics
