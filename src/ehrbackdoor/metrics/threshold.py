"""Metrics at an operating threshold, and choosing that threshold on clean validation data."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrbackdoor.metrics._validate import (
    ThresholdRule,
    _check_pair,
    _check_threshold,
    _require_both_classes,
)


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
