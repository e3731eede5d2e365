"""Calibration of probabilities: Brier score and expected calibration error."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ehrbackdoor.metrics._validate import _check_pair, _check_positive_int


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
