"""Pieces of the victims: the tree export, static covariates, the training loop's protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from ehrbackdoor.victims.gbdt import TreeEnsemble
from ehrbackdoor.victims.inputs import StaticInputs
from ehrbackdoor.victims.training import TrainConfig, n_threads, torch_session, train_model

from .conftest import make_cohort


def test_tree_export_reproduces_sklearn_exactly():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 + rng.normal(0, 0.5, 400) > 0.5).astype(int)
    X[rng.random(X.shape) < 0.2] = np.nan  # missing values go left or right as learned
    model = HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=0)
    with threadpool_limits(limits=1):  # OpenMP workers busy-wait on a shared 2-core machine
        model.fit(X, y)
    trees = TreeEnsemble.from_sklearn(model, model.n_iter_)
    X_new = rng.normal(size=(300, 6))
    X_new[rng.random(X_new.shape) < 0.3] = np.nan
    assert np.array_equal(trees.raw(X_new), model._raw_predict(X_new).ravel())
    # Round trip through plain arrays.
    arrays = trees.to_arrays()
    again = TreeEnsemble(arrays, float(arrays["baseline"][0]))
    assert np.array_equal(again.raw(X_new), trees.raw(X_new))
    # A truncated export is the staged prediction.
    first = TreeEnsemble.from_sklearn(model, 10)
    staged = list(model.staged_decision_function(X_new))[9]
    assert np.array_equal(first.raw(X_new), staged.ravel())


def test_tree_arrays_are_validated():
    arrays = {
        "value": np.zeros(3),
        "feature_idx": np.zeros(3, np.int64),
        "num_threshold": np.zeros(3),
        "missing_go_to_left": np.zeros(3, np.uint8),
        "left": np.array([1, 0, 0]),
        "right": np.array([7, 0, 0]),
        "is_leaf": np.array([0, 1, 1], np.uint8),
        "roots": np.array([0]),
    }
    with pytest.raises(ValueError, match="out-of-range"):
        TreeEnsemble(arrays, 0.0)


def test_static_inputs_one_hot_icu_type_and_round_trip():
    c = make_cohort(50, seed=4)
    s = StaticInputs(True).fit(c)
    assert s.levels == {3: [1.0, 2.0, 3.0, 4.0]}  # ICU type; the others are numeric
    Z = s.transform(c)
    assert Z.shape == (50, 4 + 4) and np.isfinite(Z).all()
    assert np.array_equal(Z[:, 4:].sum(axis=1), np.ones(50))
    again = StaticInputs.from_state(True, s.get_state())
    assert np.array_equal(again.transform(c), Z)
    assert StaticInputs(False).fit(c).transform(c).shape == (50, 0)


def test_threads_env(monkeypatch):
    monkeypatch.setenv("EHRBACKDOOR_THREADS", "1")
    assert n_threads() == 1
    monkeypatch.setenv("EHRBACKDOOR_THREADS", "zero")
    with pytest.raises(ValueError, match="EHRBACKDOOR_THREADS"):
        n_threads()


def test_train_model_keeps_best_epoch_and_stops_early():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = (X[:, 0] > 0.8).astype(np.float32)
    Xv = rng.normal(size=(200, 5)).astype(np.float32)
    yv = (Xv[:, 0] > 0.8).astype(np.float32)
    seen = []
    with torch_session(0):
        model = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Flatten(0))
        cfg = TrainConfig(lr=0.05, batch_size=32, max_epochs=40, patience=3, seed=0)
        result = train_model(
            model, [X], y, [Xv], yv, cfg, torch.device("cpu"), lambda e, s: seen.append(s)
        )
    assert len(result.history) == len(seen) < 40  # stopped early
    assert result.best_val_auprc == max(seen)
    assert result.best_epoch == int(np.argmax(seen)) + 1
