"""Exact vectorised metrics over many resamples at once (counting by score level, no sort)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrbackdoor.metrics._validate import _check_pair
from ehrbackdoor.metrics.ranking import auprc, auroc, min_se_ppv


@dataclass(frozen=True)
class _Levels:
    """Records grouped into (distinct score level, class) cells for batch metrics."""

    cell: NDArray[np.int64]  # per record: 2 * level + label, levels in ascending score
    n_levels: int


def _levels(y: NDArray[np.int64], s: NDArray[np.float64]) -> _Levels:
    uniq, inverse = np.unique(s, return_inverse=True)
    return _Levels(cell=2 * inverse.astype(np.int64) + y, n_levels=int(uniq.shape[0]))


def _level_counts(
    levels: _Levels, idx: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per-resample counts of negatives and positives at each score level (ascending).

    ``idx`` is a (B, m) matrix of record indices; returns two (B, n_levels) arrays.
    """
    n_rows = idx.shape[0]
    n_cells = 2 * levels.n_levels
    flat = (levels.cell[idx] + (np.arange(n_rows, dtype=np.int64) * n_cells)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_rows * n_cells).reshape(n_rows, n_cells)
    return counts[:, 0::2], counts[:, 1::2]


def _check_indices(idx: ArrayLike, n: int) -> NDArray[np.int64]:
    arr = np.asarray(idx)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"indices must be a non-empty 2-D (B, m) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"indices must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"indices must lie in [0, {n}), got range [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64, copy=False)


def _auroc_from_counts(neg: NDArray[np.int64], pos: NDArray[np.int64]) -> NDArray[np.float64]:
    # Mann-Whitney U with ties counted 1/2, in exact integer arithmetic (x2).
    neg_below = np.cumsum(neg, axis=1) - neg
    u2 = (pos * (2 * neg_below + neg)).sum(axis=1)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    denom = 2 * n_pos * n_neg
    out = np.full(neg.shape[0], np.nan)
    ok = denom > 0
    out[ok] = u2[ok] / denom[ok]
    return out


def _pr_points(
    neg: NDArray[np.int64], pos: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Precision/recall at every score level, descending; precision := 1 where undefined."""
    neg_d, pos_d = neg[:, ::-1], pos[:, ::-1]
    tp = np.cumsum(pos_d, axis=1)
    fp = np.cumsum(neg_d, axis=1)
    n_pos = tp[:, -1]
    predicted = tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 1.0)
        recall = tp / np.maximum(n_pos, 1)[:, None]
    return precision, recall, pos_d, n_pos


def _valid_rows(neg: NDArray[np.int64], pos: NDArray[np.int64]) -> NDArray[np.bool_]:
    return (pos.sum(axis=1) > 0) & (neg.sum(axis=1) > 0)


def _ap_from_counts(neg: NDArray[np.int64], pos: NDArray[np.int64]) -> NDArray[np.float64]:
    precision, _, pos_d, n_pos = _pr_points(neg, pos)
    ap = (pos_d * precision).sum(axis=1) / np.maximum(n_pos, 1)
    return np.where(_valid_rows(neg, pos), ap, np.nan)


def _auprc_trapezoid_from_counts(
    neg: NDArray[np.int64], pos: NDArray[np.int64]
) -> NDArray[np.float64]:
    precision, recall, _, _ = _pr_points(neg, pos)
    # Curve starts at (recall 0, precision 1) like sklearn's appended end point;
    # empty levels repeat the previous point and add zero area.
    start = np.ones((precision.shape[0], 1))
    prec = np.concatenate([start, precision], axis=1)
    rec = np.concatenate([np.zeros_like(start), recall], axis=1)
    area = (np.diff(rec, axis=1) * (prec[:, 1:] + prec[:, :-1]) / 2.0).sum(axis=1)
    return np.where(_valid_rows(neg, pos), area, np.nan)


def _min_se_ppv_from_counts(neg: NDArray[np.int64], pos: NDArray[np.int64]) -> NDArray[np.float64]:
    precision, recall, _, _ = _pr_points(neg, pos)
    # Undefined-precision levels have recall 0, so min() = 0 there: harmless.
    best = np.minimum(precision, recall).max(axis=1)
    return np.where(_valid_rows(neg, pos), best, np.nan)


_CountMetric = Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.float64]]


def _batch(
    kernel: _CountMetric, y_true: ArrayLike, p: ArrayLike, indices: ArrayLike
) -> NDArray[np.float64]:
    y, s = _check_pair(y_true, p)
    idx = _check_indices(indices, y.shape[0])
    neg, pos = _level_counts(_levels(y, s), idx)
    return kernel(neg, pos)


def auroc_batch(y_true: ArrayLike, p: ArrayLike, indices: ArrayLike) -> NDArray[np.float64]:
    """AUROC of each resample ``(y_true[idx], p[idx])`` for rows ``idx`` of ``indices``.

    Exact (ties averaged, as ``roc_auc_score``) but vectorised: records are grouped by
    distinct score once, each resample is reduced to per-level class counts with one
    ``bincount``, and AUROC is the Mann-Whitney statistic from cumulative counts --
    no per-resample sort.  Single-class rows give NaN.
    """
    return _batch(_auroc_from_counts, y_true, p, indices)


def average_precision_batch(
    y_true: ArrayLike, p: ArrayLike, indices: ArrayLike
) -> NDArray[np.float64]:
    """Average precision (as ``average_precision_score``) of each resample row; NaN if one class."""
    return _batch(_ap_from_counts, y_true, p, indices)


def auprc_trapezoid_batch(
    y_true: ArrayLike, p: ArrayLike, indices: ArrayLike
) -> NDArray[np.float64]:
    """Trapezoidal AUPRC (``auprc(method="trapezoid")``) of each resample row; NaN if one class."""
    return _batch(_auprc_trapezoid_from_counts, y_true, p, indices)


def min_se_ppv_batch(y_true: ArrayLike, p: ArrayLike, indices: ArrayLike) -> NDArray[np.float64]:
    """min(Se, P+) (as :func:`min_se_ppv`) of each resample row; NaN if one class."""
    return _batch(_min_se_ppv_from_counts, y_true, p, indices)


_FAST_METRICS: dict[str, _CountMetric] = {
    "auroc": _auroc_from_counts,
    "auprc": _ap_from_counts,
    "average_precision": _ap_from_counts,
    "auprc_trapezoid": _auprc_trapezoid_from_counts,
    "min_se_ppv": _min_se_ppv_from_counts,
}
_FAST_BY_FUNCTION: dict[Callable[..., float], str] = {
    auroc: "auroc",
    auprc: "auprc",
    min_se_ppv: "min_se_ppv",
}


# ---------------------------------------------------------------------------- bootstrap
