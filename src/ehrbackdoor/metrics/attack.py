"""Attack success at a frozen operating threshold, with a bootstrap interval."""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrbackdoor.metrics._validate import (
    _check_alpha,
    _check_pair,
    _check_positive_int,
    _check_threshold,
)
from ehrbackdoor.metrics.resample import _index_chunks, _percentile_result


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
