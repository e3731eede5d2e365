"""How well a defence's suspicion scores separate poisoned from clean records."""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    roc_auc_score,
)

from ehrbackdoor.metrics._validate import _check_pair, _check_positive_int, _require_both_classes


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
