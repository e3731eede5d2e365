"""`gbdt`: gradient-boosted trees (scikit-learn HistGradientBoostingClassifier) on window features.

Features: the benchmark's window statistics with missing values left as NaN (the trees learn where
missing values go). Boosting is early-stopped on the CLEAN validation stays handed to `fit`
(``X_val``/``y_val``, scoring average precision, ``n_iter_no_change=patience``), and the ensemble is
then cut back to the iteration with the best validation AUPRC (model selection on validation only).
``random_state=seed`` makes the fit deterministic (and the result does not depend on the number of
OpenMP threads, `training.n_threads()`: one by default, since scikit-learn's busy-waiting workers
made two threads 4x slower on a 2-core machine shared with other work).

No pickle: after fitting, the trees are exported to flat node arrays (feature, numeric threshold,
missing-goes-left, children, leaf flag, value) plus the baseline, saved with safetensors, and every
prediction -- before and after `save`/`load` -- is made by a small vectorised evaluator over those
arrays that reproduces scikit-learn's raw prediction (same traversal rule, same summation order).

``embed`` returns the standardised, train-mean-imputed window features (as for lr): a continuous
representation latent-space defences can use. `leaves` gives the leaf reached in every tree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.preprocess import FeatureScaler
from ehrbackdoor.victims.base import (
    ProgressFn,
    Victim,
    check_bool,
    check_choice,
    check_float,
    check_int,
)
from ehrbackdoor.victims.inputs import (
    FEATURE_REPRESENTATIONS,
    check_n_features,
    features_of,
    scaler_state_from_json,
    scaler_state_to_json,
)
from ehrbackdoor.victims.training import n_threads, sigmoid

_NODE_FIELDS = (
    "value",
    "feature_idx",
    "num_threshold",
    "missing_go_to_left",
    "left",
    "right",
    "is_leaf",
)


class TreeEnsemble:
    """Flat node arrays of a boosted ensemble and a vectorised raw-score evaluator."""

    def __init__(self, arrays: dict[str, np.ndarray], baseline: float) -> None:
        self.value = np.asarray(arrays["value"], dtype=np.float64)
        self.feature = np.asarray(arrays["feature_idx"], dtype=np.int64)
        self.threshold = np.asarray(arrays["num_threshold"], dtype=np.float64)
        self.missing_left = np.asarray(arrays["missing_go_to_left"], dtype=bool)
        self.left = np.asarray(arrays["left"], dtype=np.int64)
        self.right = np.asarray(arrays["right"], dtype=np.int64)
        self.is_leaf = np.asarray(arrays["is_leaf"], dtype=bool)
        self.roots = np.asarray(arrays["roots"], dtype=np.int64)
        self.baseline = float(baseline)
        n = len(self.value)
        for name in ("feature", "threshold", "missing_left", "left", "right", "is_leaf"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"tree arrays disagree in length ({name})")
        inner = ~self.is_leaf
        if n == 0 or len(self.roots) == 0:
            raise ValueError("tree ensemble is empty")
        if (
            (self.roots < 0).any()
            or (self.roots >= n).any()
            or (self.left[inner] < 0).any()
            or (self.left[inner] >= n).any()
            or (self.right[inner] < 0).any()
            or (self.right[inner] >= n).any()
        ):
            raise ValueError("tree arrays hold out-of-range node indices")

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @classmethod
    def from_sklearn(cls, model: HistGradientBoostingClassifier, n_trees: int) -> TreeEnsemble:
        """Export the first `n_trees` iterations of a fitted binary classifier."""
        predictors = [p[0] for p in model._predictors[:n_trees]]
        parts: dict[str, list[np.ndarray]] = {k: [] for k in _NODE_FIELDS}
        roots, offset = [], 0
        for pred in predictors:
            nodes = pred.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported by the tree export")
            roots.append(offset)
            for k in _NODE_FIELDS:
                a = nodes[k].astype(np.int64) if k in ("left", "right") else nodes[k]
                if k in ("left", "right"):
                    a = np.where(nodes["is_leaf"].astype(bool), 0, a + offset)
                parts[k].append(a)
            offset += len(nodes)
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        arrays["roots"] = np.asarray(roots, dtype=np.int64)
        baseline = float(np.asarray(model._baseline_prediction).reshape(-1)[0])
        return cls(arrays, baseline)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "value": self.value,
            "feature_idx": self.feature,
            "num_threshold": self.threshold,
            "missing_go_to_left": self.missing_left.astype(np.uint8),
            "left": self.left,
            "right": self.right,
            "is_leaf": self.is_leaf.astype(np.uint8),
            "roots": self.roots,
            "baseline": np.array([self.baseline]),
        }

    def leaves(self, X: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """(n, n_trees) global index of the leaf each row reaches in each tree."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty((X.shape[0], self.n_trees), dtype=np.int64)
        for start in range(0, X.shape[0], chunk):
            Xc = X[start : start + chunk]
            rows = np.arange(Xc.shape[0])[:, None]
            node = np.broadcast_to(self.roots, (Xc.shape[0], self.n_trees)).copy()
            for _ in range(len(self.value) + 1):
                leaf = self.is_leaf[node]
                if leaf.all():
                    break
                x = Xc[rows, self.feature[node]]
                with np.errstate(invalid="ignore"):
                    below = x <= self.threshold[node]
                    go_left = np.where(np.isnan(x), self.missing_left[node], below)
                node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
            else:
                raise ValueError("tree arrays contain a cycle")
            out[start : start + chunk] = node
        return out

    def raw(self, X: np.ndarray, n_trees: int | None = None) -> np.ndarray:
        """Raw scores: baseline plus leaf values added tree by tree (scikit-learn's order)."""
        values = self.value[self.leaves(X)]
        raw = np.zeros(values.shape[0]) + self.baseline
        for t in range(self.n_trees if n_trees is None else n_trees):
            raw += values[:, t]
        return raw


class GBDTVictim(Victim):
    """Histogram gradient boosting on window features with NaN (see module docstring).

    Parameters: ``learning_rate``, ``max_iter`` (upper bound on boosting iterations),
    ``max_leaf_nodes``, ``min_samples_leaf``, ``l2_regularization``, ``max_features`` (fraction of
    features considered per split), ``max_bins``, ``class_weight`` (None or "balanced"),
    ``patience`` (iterations without a better validation AUPRC before stopping), ``cache``, ``features`` (``events`` or ``hourly`` window statistics,
    `inputs.FEATURE_REPRESENTATIONS`),
    ``seed`` (random_state).
    """

    name = "gbdt"

    @property
    def representation(self) -> str:
        """Input representation (``events`` or ``hourly`` window statistics), for results."""
        return self.features

    def __init__(
        self,
        learning_rate: float = 0.1,
        max_iter: int = 300,
        max_leaf_nodes: int = 7,
        min_samples_leaf: int = 50,
        l2_regularization: float = 10.0,
        max_features: float = 0.3,
        max_bins: int = 63,
        class_weight: str | None = None,
        patience: int = 30,
        cache: bool = True,
        features: str = "events",
        seed: int = 0,
    ) -> None:
        self._store_params(locals())
        self.features = check_choice("features", features, FEATURE_REPRESENTATIONS)
        check_float("learning_rate", learning_rate, 0.0, low_open=True)
        check_int("max_iter", max_iter, 1)
        check_int("max_leaf_nodes", max_leaf_nodes, 2)
        check_int("min_samples_leaf", min_samples_leaf, 1)
        check_float("l2_regularization", l2_regularization, 0.0)
        check_float("max_features", max_features, 0.0, 1.0, low_open=True)
        check_int("max_bins", max_bins, 2, 255)
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        check_int("patience", patience, 1)
        check_bool("cache", cache)
        check_int("seed", seed, 0, 2**32 - 1)

    def _X(self, cohort: Cohort) -> np.ndarray:
        X = features_of(cohort, self.cache, self.features).X
        check_n_features(X, len(self.scaler_.mean_))  # type: ignore[arg-type]
        if len(self.empty_columns_):
            X = X.copy()
            X[:, self.empty_columns_] = 0.0
        return X

    def _fit(self, train: Cohort, val: Cohort, progress: ProgressFn | None) -> dict:
        X = features_of(train, self.cache, self.features).X
        self.scaler_ = FeatureScaler().fit(X)
        # Columns never observed in training (scikit-learn cannot bin an all-NaN column) become a
        # constant 0, which no tree splits on.
        self.empty_columns_ = np.flatnonzero(np.isnan(X).all(axis=0))
        X = self._X(train)
        Xv = self._X(val)
        model = HistGradientBoostingClassifier(
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            max_features=self.max_features,
            max_bins=self.max_bins,
            class_weight=self.class_weight,
            early_stopping=True,
            scoring="average_precision",
            n_iter_no_change=self.patience,
            tol=0.0,
            random_state=self.seed,
        )
        with threadpool_limits(limits=n_threads()):
            model.fit(X, np.asarray(train.label), X_val=Xv, y_val=np.asarray(val.label))
        scores = np.asarray(model.validation_score_, dtype=np.float64)  # [0] = before any tree
        n_trees = int(np.argmax(scores[1:])) + 1
        self.trees_ = TreeEnsemble.from_sklearn(model, n_trees)
        if progress is not None:
            for i, s in enumerate(scores[1:], start=1):
                progress(i, float(s))
        return {
            "n_iter": n_trees,
            "n_iter_fitted": int(model.n_iter_),
            "best_val_auprc_during_training": float(scores[n_trees]),
        }

    def _predict_proba(self, cohort: Cohort) -> np.ndarray:
        return sigmoid(self.trees_.raw(self._X(cohort)))

    def _embed(self, cohort: Cohort) -> np.ndarray:
        return self.scaler_.transform(self._X(cohort))

    def leaves(self, cohort: Cohort) -> np.ndarray:
        """(n, n_trees) index (into the flat node arrays) of the leaf reached in each tree."""
        self._check_fitted()
        self._check_input(cohort)
        return self.trees_.leaves(self._X(cohort))

    def _get_state(self) -> tuple[dict, dict[str, Any]]:
        state = {
            "features": scaler_state_to_json(self.scaler_.get_state()),
            "n_trees": self.trees_.n_trees,
            "empty_columns": self.empty_columns_.tolist(),
        }
        return state, self.trees_.to_arrays()

    def _set_state(self, state: dict, tensors: dict[str, Any]) -> None:
        self.scaler_ = FeatureScaler.from_state(scaler_state_from_json(state["features"]))
        self.empty_columns_ = np.asarray(state["empty_columns"], dtype=np.int64)
        baseline = float(np.asarray(tensors["baseline"]).reshape(-1)[0])
        self.trees_ = TreeEnsemble(tensors, baseline)
        if int(state["n_trees"]) != self.trees_.n_trees:
            raise ValueError(
                f"'n_trees' is {state['n_trees']}, the weights hold {self.trees_.n_trees} trees"
            )
        n_features = len(self.scaler_.mean_)  # type: ignore[arg-type]
        inner = ~self.trees_.is_leaf
        used = self.trees_.feature[inner]
        if (used >= n_features).any() or (used < 0).any():
            raise ValueError("tree arrays reference features outside the fitted feature set")
