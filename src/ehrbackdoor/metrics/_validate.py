"""Input checks shared by every metric: each raises ValueError naming the argument."""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

AuprcMethod = Literal["average_precision", "trapezoid"]
ThresholdRule = Literal["max_f1", "youden"]


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
