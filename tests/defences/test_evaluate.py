from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.defences.evaluate import (
    default_budget,
    detection_metrics,
    mitigate,
    remove_top_k,
    top_k,
)


def test_default_budget():
    assert default_budget(1000, 0.02) == 30
    assert default_budget(5600, 0.02, 1.5) == 168
    assert default_budget(10, 0.01) == 1
    with pytest.raises(ValueError, match="k_factor"):
        default_budget(100, 0.1, 0)


def test_top_k_breaks_ties_by_position():
    np.testing.assert_array_equal(top_k(np.array([1.0, 1.0, 0.0, 1.0]), 2), [0, 1])
    np.testing.assert_array_equal(top_k(np.array([0.0, 2.0, 1.0]), 5), [0, 1, 2])
    assert len(top_k(np.array([1.0]), 0)) == 0


def test_detection_metrics():
    y = np.array([0, 0, 0, 1, 1])
    m = detection_metrics(y, np.array([0.1, 0.2, 0.3, 0.9, 0.8]))
    assert m == {"auroc": 1.0, "tpr_at_5fpr": 1.0, "precision_at_k": 1.0}
    assert detection_metrics(np.zeros(4), np.arange(4.0))["auroc"] is None


class _Const:
    threshold_ = 0.5

    def __init__(self, n_train):
        self.n_train = n_train

    def predict_proba(self, cohort):
        return np.linspace(0, 1, cohort.n_stays)


def test_remove_top_k_and_mitigate(blatant):
    c = blatant.cohort
    scores = c.modified.astype(float)
    filtered, removed = remove_top_k(c, scores, int(c.modified.sum()))
    np.testing.assert_array_equal(removed, blatant.indices)
    assert filtered.n_stays == c.n_stays - len(removed) and not filtered.modified.any()

    seen = []

    def fit(name, train, val, seed, params):
        seen.append((name, train.n_stays, seed, params))
        return _Const(train.n_stays)

    test = c.subset(np.arange(20))
    r = mitigate(
        c,
        scores,
        10,
        ["a", "b"],
        c,
        test,
        test,
        np.arange(20),
        1,
        seed=4,
        victim_params={"b": {"x": 1}},
        fit=fit,
    )
    assert r["n_removed"] == 10 and r["n_poisoned_removed"] == len(blatant.indices)
    assert seen == [("a", c.n_stays - 10, 4, None), ("b", c.n_stays - 10, 4, {"x": 1})]
    assert set(r["after"]) == {"a", "b"}
    assert set(r["after"]["a"]) == {"asr", "clean_auroc", "clean_auprc"}
