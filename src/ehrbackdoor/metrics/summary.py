"""One JSON-serialisable clean-utility report of a victim."""

from __future__ import annotations

from numpy.typing import ArrayLike

from ehrbackdoor.metrics._validate import _check_pair
from ehrbackdoor.metrics.calibration import brier, ece
from ehrbackdoor.metrics.ranking import auprc, auroc, min_se_ppv
from ehrbackdoor.metrics.resample import bootstrap_ci
from ehrbackdoor.metrics.threshold import accuracy_at, f1_at


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
