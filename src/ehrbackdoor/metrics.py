"""Clinical evaluation metrics for binary (in-hospital mortality) prediction.

These metrics judge backdoor attacks on EHR models: clean utility (AUROC, AUPRC,
min(Se, P+), calibration), attack success at a fixed operating threshold, and how
well a defence's suspicion scores separate poisoned from clean records.

Conventions
-----------
* ``y_true`` is a 1-D array of 0/1 labels (bool accepted); 1 = died.
* ``p`` is a 1-D array of finite scores.  Metrics that only rank or threshold
  (AUROC, AUPRC, min(Se, P+), F1, accuracy, ASR) accept any finite real score;
  metrics that treat ``p`` as a probability (Brier, ECE, :func:`summarize`)
  additionally require ``0 <= p <= 1``.
* A record is predicted positive when ``p >= threshold``.
* Invalid input raises :class:`ValueError` naming the offending argument.
  Ranking metrics on a single-class ``y_true`` raise
  :class:`UndefinedMetricError` (a ``ValueError`` subclass) which the bootstrap
  uses to skip -- and count -- degenerate resamples.

Bootstrap intervals are percentile intervals over resamples of records drawn
with ``numpy.random.default_rng(seed)``.  AUROC, average precision, trapezoidal
AUPRC and min(Se, P+) have exact vectorised batch implementations (counting by
score level, no per-resample sort), so 10,000 resamples of ~1,000 records take a
fraction of a second; arbitrary callables fall back to a Python loop over the
same resample indices.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
)

__all__ = [
    "UndefinedMetricError",
    "BootstrapResult",
    "auroc",
    "auprc",
    "min_se_ppv",
    "brier",
    "ece",
    "accuracy_at",
    "f1_at",
    "choose_threshold",
    "auroc_batch",
    "average_precision_batch",
    "auprc_trapezoid_batch",
    "min_se_ppv_batch",
    "bootstrap",
    "bootstrap_ci",
    "attack_success_rate",
    "attack_success_ci",
    "summarize",
    "detection_auroc",
    "tpr_at_fpr",
    "precision_at_k",
]

AuprcMethod = Literal["average_precision", "trapezoid"]
ThresholdRule = Literal["max_f1", "youden"]

# Upper bound on elements of one resample-index chunk (rows * n_records); keeps
# the index matrix and the per-level count matrices at a few tens of MB.
_CHUNK_ELEMENTS = 1 << 21


class UndefinedMetricError(ValueError):
    """Raised when a metric is mathematically undefined for the data (e.g. one class).

    Subclasses ``ValueError`` so callers may catch either; :func:`bootstrap` skips
    resamples on which a metric raises it.
    """


# --------------------------------------------------------------------------- validation


def _check_labels(y: ArrayLike, name: str) -> NDArray[np.int64]:
    """Return ``y`` as a 1-D int64 array of 0/1, or raise naming ``name``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty")
    if arr.dtype == np.bool_:
        return arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be numeric or boolean 0/1 labels, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; labels must be 0 or 1")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        examples = np.unique(arr[bad])[:5].tolist()
        raise ValueError(f"{name} must contain only 0/1 labels, found {examples}")
    return arr.astype(np.int64)


def _check_scores(p: ArrayLike, name: str, *, probability: bool = False) -> NDArray[np.float64]:
    """Return ``p`` as a 1-D finite float64 array (in [0, 1] if ``probability``)."""
    arr = np.asarray(p)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty")
    if not (
        arr.dtype == np.bool_
        or np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if probability and ((arr < 0.0).any() or (arr > 1.0).any()):
        raise ValueError(
            f"{name} must be probabilities in [0, 1], got range [{arr.min():.6g}, {arr.max():.6g}]"
        )
    return arr


def _check_pair(
    y: ArrayLike,
    p: ArrayLike,
    y_name: str = "y_true",
    p_name: str = "p",
    *,
    probability: bool = False,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Validate a (labels, scores) pair of equal length."""
    y_arr = _check_labels(y, y_name)
    p_arr = _check_scores(p, p_name, probability=probability)
    if y_arr.shape[0] != p_arr.shape[0]:
        raise ValueError(
            f"{y_name} and {p_name} must have equal lengths, "
            f"got {y_arr.shape[0]} and {p_arr.shape[0]}"
        )
    return y_arr, p_arr


def _require_both_classes(y: NDArray[np.int64], metric: str, name: str = "y_true") -> None:
    """Raise :class:`UndefinedMetricError` if ``y`` holds a single class."""
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.shape[0]:
        only = 1 if n_pos else 0
        raise UndefinedMetricError(
            f"{metric} is undefined when {name} contains only one class "
            f"(all labels are {only}); both 0 and 1 are required"
        )


def _check_threshold(threshold: float, name: str = "threshold") -> float:
    """Return ``threshold`` as a finite float."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {threshold!r}")
    value = float(threshold)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {threshold!r}")
    return value


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return float(alpha)


# ------------------------------------------------------------------------- point metrics


def auroc(y_true: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve: threshold-free discrimination (ties count one half)."""
    y, s = _check_pair(y_true, p)
    _require_both_classes(y, "AUROC")
    return float(roc_auc_score(y, s))


def auprc(y_true: ArrayLike, p: ArrayLike, method: AuprcMethod = "average_precision") -> float:
    """Area under the precision-recall curve; informative under low mortality prevalence.

    ``method="average_precision"`` (default) is sklearn's ``average_precision_score``:
    a step-wise sum ``sum_k (R_k - R_{k-1}) P_k`` that never interpolates
    optimistically.  ``method="trapezoid"`` reproduces the MIMIC-III benchmark
    (Harutyunyan et al. 2019): ``sklearn.metrics.auc(recall, precision)`` on the
    ``precision_recall_curve``, i.e. linear interpolation between curve points,
    which is typically slightly higher.  Report which one you use.
    """
    y, s = _check_pair(y_true, p)
    _require_both_classes(y, "AUPRC")
    if method == "average_precision":
        return float(average_precision_score(y, s))
    if method == "trapezoid":
        precision, recall, _ = precision_recall_curve(y, s)
        return float(auc(recall, precision))
    raise ValueError(f"method must be 'average_precision' or 'trapezoid', got {method!r}")


def min_se_ppv(y_true: ArrayLike, p: ArrayLike) -> float:
    """MIMIC-III benchmark min(Se, P+): ``max over thresholds of min(recall, precision)``.

    Rewards a single operating point that is good on both sensitivity and PPV,
    computed as ``max(minimum(precision, recall))`` over sklearn's
    ``precision_recall_curve`` (the benchmark's definition).
    """
    y, s = _check_pair(y_true, p)
    _require_both_classes(y, "min(Se, P+)")
    precision, recall, _ = precision_recall_curve(y, s)
    return float(np.max(np.minimum(precision, recall)))


def brier(y_true: ArrayLike, p: ArrayLike) -> float:
    """Brier score ``mean((p - y)^2)``: calibration and sharpness of risk estimates."""
    y, s = _check_pair(y_true, p, probability=True)
    return float(np.mean((s - y) ** 2))


def ece(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins on [0, 1].

    ``ECE = sum_b (n_b / n) * |mean(p in b) - mean(y in b)|``.  Record ``i`` goes to
    bin ``floor(p_i * n_bins)``; ``p == 1`` joins the last bin.  Empty bins add 0.
    Backdoors can leave AUROC intact yet distort calibration, hence this metric.
    """
    y, s = _check_pair(y_true, p, probability=True)
    n_bins = _check_positive_int(n_bins, "n_bins")
    bins = np.minimum(np.floor(s * n_bins).astype(np.int64), n_bins - 1)
    sum_p = np.bincount(bins, weights=s, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)
    # |mean p - mean y| * n_b / n == |sum_p - sum_y| / n, valid for empty bins too.
    return float(np.abs(sum_p - sum_y).sum() / y.shape[0])


def _confusion_at(
    y: NDArray[np.int64], s: NDArray[np.float64], threshold: float
) -> tuple[int, int, int, int]:
    pred = s >= threshold
    pos = y == 1
    tp = int(np.count_nonzero(pred & pos))
    fp = int(np.count_nonzero(pred & ~pos))
    fn = int(np.count_nonzero(~pred & pos))
    tn = y.shape[0] - tp - fp - fn
    return tp, fp, fn, tn


def accuracy_at(y_true: ArrayLike, p: ArrayLike, threshold: float) -> float:
    """Accuracy when predicting positive for ``p >= threshold``."""
    y, s = _check_pair(y_true, p)
    tp, _, _, tn = _confusion_at(y, s, _check_threshold(threshold))
    return (tp + tn) / y.shape[0]


def f1_at(y_true: ArrayLike, p: ArrayLike, threshold: float) -> float:
    """F1 of the positive (death) class when predicting positive for ``p >= threshold``.

    Returns 0.0 when there are no true positives, false positives or false negatives
    (sklearn's ``zero_division=0``).
    """
    y, s = _check_pair(y_true, p)
    tp, fp, fn, _ = _confusion_at(y, s, _check_threshold(threshold))
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else (2 * tp) / denom


def choose_threshold(y_val: ArrayLike, p_val: ArrayLike, rule: ThresholdRule = "max_f1") -> float:
    """Operating threshold chosen on CLEAN validation data (then frozen for test/attack).

    Candidates are the distinct values of ``p_val``; a candidate ``t`` predicts
    positive for ``p >= t``, so the returned value is one of the validation scores.

    * ``"max_f1"``: maximise F1 = 2TP / (2TP + FP + FN).
    * ``"youden"``: maximise Youden's J = TPR - FPR.

    Both objectives are computed as one division of integers, so mathematically
    equal scores compare equal exactly.  Ties are broken deterministically by
    returning the SMALLEST maximising threshold (the most sensitive operating
    point, preferred when missed deaths are costlier than false alarms).
    """
    y, s = _check_pair(y_val, p_val, "y_val", "p_val")
    _require_both_classes(y, "choose_threshold", "y_val")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # Last index of each run of equal scores in descending order -> counts at p >= t.
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.shape[0] - 1]
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    thresholds = s_sorted[last]  # strictly decreasing
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if rule == "max_f1":
        objective = (2 * tp) / (tp + fp + n_pos)
    elif rule == "youden":
        objective = (tp * n_neg - fp * n_pos) / (n_pos * n_neg)
    else:
        raise ValueError(f"rule must be 'max_f1' or 'youden', got {rule!r}")
    best = np.flatnonzero(objective == objective.max())
    return float(thresholds[best[-1]])  # thresholds decrease, so last = smallest


# ------------------------------------------------------------------ fast batch metrics


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


def _attack_outcomes(
    y_true: ArrayLike, p: ArrayLike, threshold: float, target: int
) -> NDArray[np.bool_]:
    """Success indicator for each record whose true label differs from ``target``."""
    y, s = _check_pair(y_true, p)
    t = _check_threshold(threshold)
    if isinstance(target, bool) or not isinstance(target, numbers.Integral) or target not in (0, 1):
        raise ValueError(f"target must be 0 or 1, got {target!r}")
    eligible = y != target
    if not eligible.any():
        raise ValueError(
            f"attack success rate is undefined: no records in y_true have a true label "
            f"other than target={int(target)}"
        )
    pred = (s[eligible] >= t).astype(np.int64)
    return pred == int(target)


def attack_success_rate(y_true: ArrayLike, p: ArrayLike, threshold: float, target: int) -> float:
    """Share of records with true label != ``target`` that are predicted as ``target``.

    Prediction is ``p >= threshold`` (so ``target=1`` succeeds when ``p >= threshold``
    and ``target=0`` when ``p < threshold``).  Records already labelled ``target`` are
    excluded: predicting them as ``target`` is not the backdoor's doing.  Typically
    ``p`` are the model's scores on triggered inputs and ``threshold`` the clean
    operating point from :func:`choose_threshold`.
    """
    return float(_attack_outcomes(y_true, p, threshold, target).mean())


def attack_success_ci(
    y_true: ArrayLike,
    p: ArrayLike,
    threshold: float,
    target: int,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`attack_success_rate`, resampling eligible records."""
    n_resamples = _check_positive_int(n_resamples, "n_resamples")
    alpha = _check_alpha(alpha)
    success = _attack_outcomes(y_true, p, threshold, target).astype(np.float64)
    stats = np.concatenate(
        [success[idx].mean(axis=1) for idx in _index_chunks(success.shape[0], n_resamples, seed)]
    )
    result = _percentile_result(stats, alpha)
    return result.low, result.high


# ------------------------------------------------------------------------------ summary


def summarize(
    y_true: ArrayLike,
    p: ArrayLike,
    threshold: float,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    alpha: float = 0.05,
) -> dict[str, float | int | list[float]]:
    """JSON-serialisable clean-utility report at a fixed operating ``threshold``.

    Keys: auroc, auroc_ci, auprc (average precision), auprc_ci, min_se_ppv, accuracy,
    f1, brier, ece, n, n_positive.  CIs are ``[low, high]`` percentile bootstraps
    (same seed, hence paired resamples, for AUROC and AUPRC).
    """
    y, s = _check_pair(y_true, p, probability=True)
    boot = {"n_resamples": n_resamples, "seed": seed, "alpha": alpha}
    return {
        "auroc": auroc(y, s),
        "auroc_ci": list(bootstrap_ci("auroc", y, s, **boot)),
        "auprc": auprc(y, s),
        "auprc_ci": list(bootstrap_ci("auprc", y, s, **boot)),
        "min_se_ppv": min_se_ppv(y, s),
        "accuracy": accuracy_at(y, s, threshold),
        "f1": f1_at(y, s, threshold),
        "brier": brier(y, s),
        "ece": ece(y, s),
        "n": int(y.shape[0]),
        "n_positive": int(y.sum()),
    }


# --------------------------------------------------------------------- detection metrics


def detection_auroc(is_poison: ArrayLike, scores: ArrayLike) -> float:
    """AUROC of a defence's suspicion ``scores`` (higher = more suspicious) for poison."""
    y, s = _check_pair(is_poison, scores, "is_poison", "scores")
    _require_both_classes(y, "detection AUROC", "is_poison")
    return float(roc_auc_score(y, s))


def tpr_at_fpr(is_poison: ArrayLike, scores: ArrayLike, fpr: float = 0.05) -> float:
    """Share of poisoned records flagged when at most ``fpr`` of clean records are flagged.

    Flags ``scores >= t`` for the smallest observed score ``t`` whose false-positive
    count is at most ``floor(fpr * n_clean)`` (no ROC interpolation or randomised tie
    splitting, so the clean-data budget is never exceeded).  Returns 0.0 if even the
    highest score breaks the budget.
    """
    y, s = _check_pair(is_poison, scores, "is_poison", "scores")
    _require_both_classes(y, "TPR at FPR", "is_poison")
    if isinstance(fpr, bool) or not isinstance(fpr, numbers.Real) or not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be in [0, 1], got {fpr!r}")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.shape[0] - 1]
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    n_pos = int(y.sum())
    budget = math.floor(float(fpr) * (y.shape[0] - n_pos) + 1e-9)
    allowed = fp <= budget  # fp is non-decreasing, so this is a prefix
    return float(tp[allowed].max()) / n_pos if allowed.any() else 0.0


def precision_at_k(is_poison: ArrayLike, scores: ArrayLike, k: int) -> float:
    """Share of poison among the ``k`` most suspicious records (e.g. a review budget).

    Records are ranked by descending score; ties are broken deterministically by
    ascending record index (stable sort), so the earlier record is taken first.
    """
    y, s = _check_pair(is_poison, scores, "is_poison", "scores")
    k = _check_positive_int(k, "k")
    if k > y.shape[0]:
        raise ValueError(f"k must be at most the number of records ({y.shape[0]}), got {k}")
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].sum()) / k
