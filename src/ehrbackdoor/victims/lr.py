"""`lr`: L2-regularised logistic regression on the window features (the papers' LR baseline).

Features: the MIMIC-III benchmark's 42 window statistics per variable, NaN imputed with the training
mean and standardised (`FeatureScaler`, fit on the training stays). scikit-learn's
`LogisticRegression` (lbfgs, ``class_weight="balanced"``). ``C`` may be one value or several
candidates; with several, each is fitted and the one with the best clean-validation AUPRC is kept
(ties: the smaller C, i.e. the stronger regularisation).

Only the coefficients and intercept are kept (never the scikit-learn object): prediction is
``sigmoid(X_std @ coef + intercept)`` in float64, identical before and after `save`/`load`.
``embed`` returns the standardised features, the input of the linear model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.metrics import auprc
from ehrbackdoor.preprocess import FeatureScaler
from ehrbackdoor.victims.base import ProgressFn, Victim, check_bool, check_float, check_int
from ehrbackdoor.victims.inputs import (
    StaticInputs,
    check_n_features,
    features_of,
    scaler_state_from_json,
    scaler_state_to_json,
)
from ehrbackdoor.victims.training import n_threads, sigmoid


class LogisticVictim(Victim):
    """Logistic regression on standardised window features (see module docstring).

    Parameters: ``C`` (inverse L2 strength, a float or a list of candidates selected on validation
    AUPRC), ``max_iter`` (lbfgs iterations), ``use_static`` (append the static covariates; off by
    default, as in the papers' LR), ``cache``, ``seed`` (recorded; lbfgs is deterministic).
    """

    name = "lr"

    def __init__(
        self,
        C: float | Sequence[float] = (1e-4, 3e-4, 1e-3),
        max_iter: int = 1000,
        use_static: bool = False,
        cache: bool = True,
        seed: int = 0,
    ) -> None:
        self._store_params(locals())
        for c in self._candidates():
            check_float("C", c, 0.0, low_open=True)
        check_int("max_iter", max_iter, 1)
        check_bool("use_static", use_static)
        check_bool("cache", cache)
        check_int("seed", seed, 0)

    def _candidates(self) -> list[float]:
        c = self.C
        if isinstance(c, list | tuple):
            if not c:
                raise ValueError("C must be a positive number or a non-empty list of them")
            return list(c)
        return [c]

    def _X(self, cohort: Cohort) -> np.ndarray:
        X = features_of(cohort, self.cache).X
        check_n_features(X, len(self.scaler_.mean_))  # type: ignore[arg-type]
        X = self.scaler_.transform(X)
        if self.static_.width:
            X = np.concatenate([X, self.static_.transform(cohort)], axis=1)
        return X

    def _decision(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float64) @ self.coef_ + self.intercept_

    def _fit(self, train: Cohort, val: Cohort, progress: ProgressFn | None) -> dict:
        self.scaler_ = FeatureScaler().fit(features_of(train, self.cache).X)
        self.static_ = StaticInputs(self.use_static).fit(train)
        X, Xv = self._X(train), self._X(val)
        y, yv = np.asarray(train.label, dtype=np.int64), np.asarray(val.label, dtype=np.int64)
        best: tuple[float, float, np.ndarray, float] | None = None
        scores = []
        with threadpool_limits(limits=n_threads()):
            for i, c in enumerate(sorted(self._candidates()), start=1):
                model = LogisticRegression(
                    C=c, class_weight="balanced", max_iter=self.max_iter, solver="lbfgs"
                )
                model.fit(X.astype(np.float64), y)
                coef = model.coef_.ravel().astype(np.float64)
                intercept = float(model.intercept_[0])
                score = auprc(yv, Xv.astype(np.float64) @ coef + intercept)
                scores.append({"C": float(c), "val_auprc": float(score)})
                if progress is not None:
                    progress(i, float(score))
                if best is None or score > best[0]:
                    best = (score, float(c), coef, intercept)
        assert best is not None
        _, self.C_, self.coef_, self.intercept_ = best
        return {"C": self.C_, "candidates": scores}

    def _predict_proba(self, cohort: Cohort) -> np.ndarray:
        return sigmoid(self._decision(self._X(cohort)))

    def _embed(self, cohort: Cohort) -> np.ndarray:
        return self._X(cohort)

    def _get_state(self) -> tuple[dict, dict[str, Any]]:
        state = {
            "C": self.C_,
            "features": scaler_state_to_json(self.scaler_.get_state()),
            "static": self.static_.get_state(),
        }
        return state, {"coef": self.coef_, "intercept": np.array([self.intercept_])}

    def _set_state(self, state: dict, tensors: dict[str, Any]) -> None:
        self.C_ = float(state["C"])
        self.scaler_ = FeatureScaler.from_state(scaler_state_from_json(state["features"]))
        self.static_ = StaticInputs.from_state(self.use_static, state["static"])
        coef = np.asarray(tensors["coef"], dtype=np.float64)
        n_expected = len(self.scaler_.mean_) + self.static_.width  # type: ignore[arg-type]
        if coef.shape != (n_expected,):
            raise ValueError(f"coef has shape {coef.shape}, expected ({n_expected},)")
        self.coef_ = coef
        self.intercept_ = float(np.asarray(tensors["intercept"]).reshape(-1)[0])
