"""Classifier two-sample test of the training stays against trusted clean stays, per label.

A classifier two-sample test (Lopez-Paz & Oquab, 2017) asks whether two samples can be told apart
by a classifier evaluated on held-out data. Poisoning adds stays to the training cohort that a clean
sample of the same population lacks, and dirty-label poison carries the attacker's target label
while looking like the other class. So the two samples are, within each label y, the training stays
labelled y and the trusted ``reference`` stays labelled y (e.g. the clean validation stays the
audit passes). With K-fold cross-fitting an L2 logistic regression (class-balanced, on the window
statistics standardised with the training median / IQR) is trained on the other folds to separate
training from reference stays, and each training stay is scored by its out-of-fold probability of
being a *training* stay: poison -- a trigger, or a label that does not fit the features -- is what
the reference cannot explain, so it scores high. The test statistics (out-of-fold AUROC between
the samples, per label) are kept in ``info_["c2st_auroc"]``; near 0.5 means "no difference".

Without a reference there is no trusted second sample. The detector then falls back to a
two-sided label-atypicality score from a cross-fitted classifier separating the label groups: how
far a stay's out-of-fold logit of its OWN label lies from its label group's median (robust z,
mapped to [0, 1) by z / (1 + z)), in either direction. Too low = the stay looks like the other
class (dirty-label poison without a learned trigger); too high = the classifier learned a shortcut
for it from similar stays in the other folds (a trigger). The one-sided version of this score (the
probability of the other label alone) ranked a blatant trigger as LEAST suspicious (detection
AUROC 0.01-0.13); the two-sided one is weaker than the reference test but not inverted.
``info_["mode"]`` says which was used; pass ``reference`` whenever clean stays exist.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences._features import feature_matrix, fold_ids, reduce_dims
from ehrbackdoor.defences.base import Detector, check_float, check_int

#: Reference stays of a label below this count: that label is compared with all reference stays.
MIN_REFERENCE = 10


def _joint_features(
    train: Cohort, reference: Cohort, clip: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Window statistics of both cohorts, standardised with the TRAINING median / IQR, so the
    columns agree (median for unobserved windows, 0 for unobserved counts, |z| <= clip)."""
    from ehrbackdoor.preprocess.cache import features_cached
    from ehrbackdoor.preprocess.features import STATISTICS

    ft, fr = features_cached(train), features_cached(reference)
    is_count = np.array([c.endswith("/" + STATISTICS[-1]) for c in ft.columns])
    mats = []
    for f in (ft, fr):
        X = f.X.astype(np.float64)
        X[:, is_count] = np.nan_to_num(X[:, is_count], nan=0.0)
        mats.append(X)
    Xt, Xr = mats
    observed = ~np.all(np.isnan(Xt), axis=0)
    with np.errstate(all="ignore"):
        med = np.nanmedian(Xt[:, observed], axis=0)
        q75, q25 = np.nanpercentile(Xt[:, observed], [75, 25], axis=0)
        std = np.nanstd(Xt[:, observed], axis=0)
    scale = np.where((q75 - q25) / 1.349 > 1e-12, (q75 - q25) / 1.349, std)
    keep = scale > 1e-12
    out = []
    for X in (Xt, Xr):
        Z = (X[:, observed][:, keep] - med[keep]) / scale[keep]
        out.append(np.clip(np.nan_to_num(Z, nan=0.0), -clip, clip))
    if out[0].shape[1] == 0:
        return np.zeros((train.n_stays, 1)), np.zeros((reference.n_stays, 1))
    return out[0], out[1]


class ClassifierTwoSampleDetector(Detector):
    """Out-of-fold probability of being a training (not a reference) stay, per label group;
    two-sided label-atypicality fallback without a reference (see module docstring)."""

    name = "two-sample"

    def __init__(
        self, n_folds: int = 5, C: float = 0.1, n_components: int = 100, seed: int = 0
    ) -> None:
        super().__init__(seed)
        self.n_folds = check_int("n_folds", n_folds, 2)
        self.C = check_float("C", C, 0.0, low_open=True)
        self.n_components = check_int("n_components", n_components, 1)

    def _clf(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        if reference is not None and reference.n_stays >= 2:
            return self._against_reference(cohort, reference)
        return self._label_atypicality(cohort)

    def _against_reference(self, cohort: Cohort, reference: Cohort) -> np.ndarray:
        from sklearn.decomposition import PCA
        from sklearn.metrics import roc_auc_score

        Xt, Xr = _joint_features(cohort, reference)
        k = min(self.n_components, Xt.shape[1], Xt.shape[0] - 1)
        if 1 <= k < Xt.shape[1]:
            pca = PCA(
                n_components=k,
                svd_solver="full" if min(Xt.shape) <= 1000 else "randomized",
                random_state=self.seed,
            ).fit(Xt)
            Xt, Xr = pca.transform(Xt), pca.transform(Xr)
        y, yr = np.asarray(cohort.label, dtype=np.int64), np.asarray(reference.label, np.int64)
        score = np.full(cohort.n_stays, 0.5)
        stats: dict[str, float] = {}
        for lab in np.unique(y):
            a = np.flatnonzero(y == lab)
            b = np.flatnonzero(yr == lab)
            if len(b) < MIN_REFERENCE:
                b = np.arange(reference.n_stays)
            if len(a) < 2 or len(b) < 2:
                continue
            fa = fold_ids(len(a), self.n_folds, self.seed)
            fb = fold_ids(len(b), self.n_folds, self.seed + 1)
            pa, pb = np.full(len(a), 0.5), np.full(len(b), 0.5)
            for f in np.unique(fa):
                ta, tb = fa != f, fb != f
                if not ta.any() or not tb.any():
                    continue
                clf = self._clf().fit(
                    np.concatenate([Xt[a[ta]], Xr[b[tb]]]),
                    np.r_[np.ones(ta.sum()), np.zeros(tb.sum())],
                )
                pa[~ta] = clf.predict_proba(Xt[a[~ta]])[:, 1]
                if (~tb).any():
                    pb[~tb] = clf.predict_proba(Xr[b[~tb]])[:, 1]
            score[a] = pa
            stats[str(int(lab))] = float(
                roc_auc_score(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[pa, pb])
            )
        self.info_ = {"mode": "reference", "c2st_auroc": stats}
        return score

    def _label_atypicality(self, cohort: Cohort) -> np.ndarray:
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
            clf = self._clf().fit(X[~test], y[~test])
            p1[test] = clf.predict_proba(X[test])[:, 1]
        self.info_ = {"mode": "label-atypicality", "c2st_auroc": float(roc_auc_score(y, p1))}
        p1 = np.clip(p1, 1e-9, 1.0 - 1e-9)
        own = np.where(y == 1, 1.0, -1.0) * np.log(p1 / (1.0 - p1))
        z = np.zeros(n)
        for lab in (0, 1):
            m = y == lab
            med = np.median(own[m])
            mad = 1.4826 * np.median(np.abs(own[m] - med))
            z[m] = np.abs(own[m] - med) / max(mad, 1e-9)
        return z / (1.0 + z)
