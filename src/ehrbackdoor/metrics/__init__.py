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

Modules: `ranking` (AUROC, AUPRC, min(Se, P+)), `calibration` (Brier, ECE), `threshold`
(operating point), `batch` (vectorised resample metrics), `resample` (bootstrap), `attack` (ASR),
`summary` (clean-utility report), `detection` (defence scores).
"""

from __future__ import annotations

from ehrbackdoor.metrics._validate import AuprcMethod, ThresholdRule, UndefinedMetricError
from ehrbackdoor.metrics.attack import attack_success_ci, attack_success_rate
from ehrbackdoor.metrics.batch import (
    auprc_trapezoid_batch,
    auroc_batch,
    average_precision_batch,
    min_se_ppv_batch,
)
from ehrbackdoor.metrics.calibration import brier, ece
from ehrbackdoor.metrics.detection import detection_auroc, precision_at_k, tpr_at_fpr
from ehrbackdoor.metrics.ranking import auprc, auroc, min_se_ppv
from ehrbackdoor.metrics.resample import BootstrapResult, bootstrap, bootstrap_ci
from ehrbackdoor.metrics.summary import summarize
from ehrbackdoor.metrics.threshold import accuracy_at, choose_threshold, f1_at

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
    "AuprcMethod",
    "ThresholdRule",
]
