"""One evaluation for every detector: detection metrics and mitigation by filtering.

Detection: with the ground truth of which training stays were poisoned (``Cohort.modified``), a
detector's scores give a detection AUROC, the TPR at 5 % FPR and the precision among the ``k``
most suspicious stays with ``k`` = the number of poisoned stays (a review budget that could, at
best, catch them all).

Mitigation: the defender removes the top ``k_remove`` stays (default ``1.5 x rate x n_train``: a
budget sized from the suspected poisoning rate, with slack), retrains the victim with the same
seed on what is left, and the backdoor is measured again -- attack success rate on the attacked
test stays at the retrained victim's clean-validation threshold, clean AUROC / AUPRC -- next to the
same numbers before the defence. Ties in the ranking are broken by ascending stay position (stable
sort), as in `ehrbackdoor.metrics.precision_at_k`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ehrbackdoor import metrics
from ehrbackdoor.data.cohort import Cohort

#: False-positive rate at which detection TPR is reported.
FPR = 0.05


def default_budget(n_train: int, rate: float, k_factor: float = 1.5) -> int:
    """Stays removed by mitigation: ``ceil(k_factor * rate * n_train)``, at least 1."""
    if k_factor <= 0:
        raise ValueError(f"k_factor must be positive, got {k_factor!r}")
    return max(1, math.ceil(k_factor * rate * n_train - 1e-9))


def detection_metrics(
    is_poison: np.ndarray, scores: np.ndarray, k: int | None = None
) -> dict[str, float | None]:
    """{"auroc", "tpr_at_5fpr", "precision_at_k"} of suspicion scores; None where undefined
    (no poisoned or no clean stay). ``k`` defaults to the number of poisoned stays."""
    y = np.asarray(is_poison, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return {"auroc": None, "tpr_at_5fpr": None, "precision_at_k": None}
    k = n_pos if k is None else int(k)
    return {
        "auroc": metrics.detection_auroc(y, s),
        "tpr_at_5fpr": metrics.tpr_at_fpr(y, s, FPR),
        "precision_at_k": metrics.precision_at_k(y, s, k),
    }


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, sorted (ties: lower position first)."""
    k = max(0, min(int(k), len(scores)))
    return np.sort(np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k])


def remove_top_k(cohort: Cohort, scores: np.ndarray, k: int) -> tuple[Cohort, np.ndarray]:
    """The cohort without its k most suspicious stays, and the removed positions."""
    removed = top_k(scores, k)
    keep = np.ones(cohort.n_stays, dtype=bool)
    keep[removed] = False
    return cohort.subset(np.flatnonzero(keep)), removed


def backdoor_metrics(
    victim: Any, test: Cohort, attacked: Cohort, triggered_idx: np.ndarray, target: int
) -> dict[str, float]:
    """{"asr", "clean_auroc", "clean_auprc"} of a fitted victim."""
    y = test.label.astype(np.int64)
    p_clean = victim.predict_proba(test)
    p_att = victim.predict_proba(attacked)
    return {
        "asr": metrics.attack_success_rate(
            y[triggered_idx], p_att[triggered_idx], victim.threshold_, target
        ),
        "clean_auroc": metrics.auroc(y, p_clean),
        "clean_auprc": metrics.auprc(y, p_clean),
    }


FitFn = Callable[[str, Cohort, Cohort, int, "dict | None"], Any]


def _default_fit(name: str, train: Cohort, val: Cohort, seed: int, params: dict | None):
    from ehrbackdoor.victims.fit import fit_victim

    return fit_victim(name, train, val, seed, params)[0]


def mitigate(
    poisoned_train: Cohort,
    scores: np.ndarray,
    k: int,
    models: Sequence[str],
    val: Cohort,
    test: Cohort,
    attacked: Cohort,
    triggered_idx: np.ndarray,
    target: int,
    seed: int = 0,
    victim_params: dict[str, dict] | None = None,
    fit: FitFn | None = None,
) -> dict[str, Any]:
    """Remove the top-k stays, retrain every model on the rest, measure the backdoor again.

    `fit(name, train, val, seed, params)` returns a fitted victim (default: `fit_victim`).
    """
    fit = fit or _default_fit
    filtered, removed = remove_top_k(poisoned_train, scores, k)
    after = {}
    for name in models:
        victim = fit(name, filtered, val, seed, (victim_params or {}).get(name))
        after[name] = backdoor_metrics(victim, test, attacked, triggered_idx, target)
    return {
        "n_removed": int(len(removed)),
        "n_poisoned_removed": int(poisoned_train.modified[removed].sum()),
        "after": after,
    }
