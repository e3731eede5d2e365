"""Classifier two-sample test, cross-fitted, turned into a per-stay score.

A classifier two-sample test (Lopez-Paz & Oquab, 2017) asks whether two samples can be told apart
by a classifier evaluated on held-out data. Backdoor poisoning is dirty-label: the poisoned stays
carry the attacker's target label but are otherwise stays of the other class. The defender's two
samples are therefore the training stays of each label. With K-fold cross-fitting, a classifier
(L2 logistic regression on the standardised window statistics, class-balanced) is trained on the
other folds to separate the two samples, and each stay is scored by how clearly that held-out
classifier separates it from the rest of its own sample: the out-of-fold probability of the *other*
label. The test statistic itself -- the out-of-fold AUROC between the samples -- is kept in
``info_["c2st_auroc"]``.

What it can and cannot see, by construction: poison that looks like the other class stands out;
a trigger the classifier learns from the poison in the other folds gives the poisoned stays the
target label and hides them (a blatant, easily learned trigger can score *low* here).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences._features import feature_matrix, fold_ids, reduce_dims
from ehrbackdoor.defences.base import Detector, check_float, check_int


class ClassifierTwoSampleDetector(Detector):
    """Out-of-fold probability of the other label group (cross-fitted C2ST)."""

    name = "two-sample"

    def __init__(
        self, n_folds: int = 5, C: float = 0.1, n_components: int = 100, seed: int = 0
    ) -> None:
        super().__init__(seed)
        self.n_folds = check_int("n_folds", n_folds, 2)
        self.C = check_float("C", C, 0.0, low_open=True)
        self.n_components = check_int("n_components", n_components, 1)

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score

        y = np.asarray(cohort.label, dtype=np.int64)
        n = len(y)
        if y.min() == y.max():
            raise ValueError("two-sample: the training cohort has a single label; nothing to test")
        X = reduce_dims(feature_matrix(cohort, clip=10.0), self.n_components, self.seed)
        folds = fold_ids(n, self.n_folds, self.seed)
        p1 = np.full(n, float(y.mean()))
        for f in np.unique(folds):
            test = folds == f
            if len(np.unique(y[~test])) < 2:
                continue
            clf = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
            clf.fit(X[~test], y[~test])
            p1[test] = clf.predict_proba(X[test])[:, 1]
        self.info_ = {"c2st_auroc": float(roc_auc_score(y, p1))}
        return np.where(y == 1, 1.0 - p1, p1)
