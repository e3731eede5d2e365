"""Threshold-free ranking metrics: AUROC, AUPRC and min(Se, P+)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
)

from ehrbackdoor.metrics._validate import AuprcMethod, _check_pair, _require_both_classes

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
