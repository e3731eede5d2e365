"""Victim-side preprocessing: raw cohort -> model inputs, with state that saves as JSON.

Two families of inputs:

* window features (lr, mlp, gbdt): the MIMIC-III benchmark's 42 statistics per variable
  (`ehrbackdoor.preprocess.window_features`); lr and mlp impute NaN with the training mean and
  standardise (`FeatureScaler`), gbdt keeps NaN;
* the hourly grid (lstm, gru, grud): `discretize(impute="previous", layout="ordinal")`, value
  columns standardised with `GridScaler` (statistics over observed training cells), plus the
  observation masks and, for GRU-D, the hours since the last observation.

Optionally (``use_static``) the static covariates of the schema (PhysioNet: age, gender, height,
ICU type, weight) enter too: NaN imputed with the training mean, standardised with a second
`FeatureScaler`; integer-coded covariates with 3-8 levels (ICU type) one-hot (`StaticInputs`).
Every scaler is fit on the training stays the victim is handed.

Window features come in two representations (``FEATURE_REPRESENTATIONS``), a victim parameter
``features``: ``events`` (default) computes the statistics from the raw events, the benchmark's
way; ``hourly`` computes them from the hourly forward-filled grid (`hourly_features`), the way
Joe et al. (2021) do and the one through which a grid-space trigger reaches these victims. Clean
and poisoned stays always share the representation, so baselines compare like with like.

Featurisation goes through the preprocessing cache (`features_cached`, `grid_cached`) when
``cache=True``, so several victims trained on one cohort featurise it once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.preprocess import (
    Features,
    FeatureScaler,
    Grid,
    cached,
    discretize,
    features_cached,
    grid_cached,
    window_features,
)
from ehrbackdoor.preprocess.features import hourly_features

#: Where window statistics come from: raw events, or the hourly forward-filled grid.
FEATURE_REPRESENTATIONS = ("events", "hourly")


def features_of(cohort: Cohort, cache: bool = True, representation: str = "events") -> Features:
    """Window features of every stay in `representation` (NaN where an events window is empty)."""
    if representation == "hourly":
        if not cache:
            return hourly_features(cohort)
        arrays = cached(
            "hourly-features",
            cohort,
            {"timestep": 1.0, "impute": "previous"},
            lambda: hourly_features(cohort).to_arrays(),
        )
        return Features.from_arrays(arrays)
    if representation != "events":
        raise ValueError(
            f"features must be one of {FEATURE_REPRESENTATIONS}, got {representation!r}"
        )
    return features_cached(cohort) if cache else window_features(cohort)


def grid_of(cohort: Cohort, cache: bool = True) -> Grid:
    """The hourly grid of the cohort's window (previous-value imputation, ordinal layout)."""
    if cache:
        return grid_cached(cohort, impute="previous", layout="ordinal")
    return discretize(cohort, impute="previous", layout="ordinal")


def scaler_state_to_json(state: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Scaler state as JSON lists (float64 repr round-trips exactly)."""
    return {k: np.asarray(v, dtype=np.float64).ravel().tolist() for k, v in state.items()}


def scaler_state_from_json(state: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}


#: A static covariate whose training values are integers with 3..MAX_LEVELS distinct values is
#: one-hot encoded (PhysioNet's ICU type 1-4: coronary, cardiac surgery, medical, surgical).
MAX_LEVELS = 8


class StaticInputs:
    """Static covariates (or nothing if unused).

    Numeric covariates: train-mean imputation and standardisation (`FeatureScaler`). Covariates
    that look categorical in training (integer codes, 3 to `MAX_LEVELS` distinct values) are
    one-hot encoded instead (missing or unseen codes: all zeros).
    """

    def __init__(self, use: bool) -> None:
        self.use = use
        self.scaler: FeatureScaler | None = None
        self.numeric: list[int] = []
        self.levels: dict[int, list[float]] = {}

    def fit(self, cohort: Cohort) -> StaticInputs:
        if not self.use or cohort.static.shape[1] == 0:
            return self
        S = cohort.static.astype(np.float64)
        self.numeric, self.levels = [], {}
        for j in range(S.shape[1]):
            col = S[:, j][~np.isnan(S[:, j])]
            distinct = np.unique(col)
            if 3 <= len(distinct) <= MAX_LEVELS and np.all(distinct == np.round(distinct)):
                self.levels[j] = distinct.tolist()
            else:
                self.numeric.append(j)
        self.n_static = S.shape[1]
        self.scaler = FeatureScaler().fit(S[:, self.numeric])
        return self

    @property
    def width(self) -> int:
        if self.scaler is None:
            return 0
        return len(self.numeric) + sum(len(v) for v in self.levels.values())

    def transform(self, cohort: Cohort) -> np.ndarray:
        if self.scaler is None:
            return np.zeros((cohort.n_stays, 0), dtype=np.float32)
        if cohort.static.shape[1] != self.n_static:
            raise ValueError(
                f"cohort has {cohort.static.shape[1]} static covariates, the victim was fitted "
                f"on {self.n_static}"
            )
        S = cohort.static.astype(np.float64)
        parts = [self.scaler.transform(S[:, self.numeric])]
        for j, levels in self.levels.items():
            parts.append((S[:, j][:, None] == np.asarray(levels)[None, :]).astype(np.float32))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def get_state(self) -> dict | None:
        if self.scaler is None:
            return None
        return {
            "scaler": scaler_state_to_json(self.scaler.get_state()),
            "numeric": list(self.numeric),
            "levels": {str(j): v for j, v in self.levels.items()},
            "n_static": self.n_static,
        }

    @classmethod
    def from_state(cls, use: bool, state: dict | None) -> StaticInputs:
        s = cls(use)
        if state is not None:
            s.scaler = FeatureScaler.from_state(scaler_state_from_json(state["scaler"]))
            s.numeric = [int(j) for j in state["numeric"]]
            s.levels = {int(j): [float(x) for x in v] for j, v in state["levels"].items()}
            s.n_static = int(state["n_static"])
        return s


def check_n_features(X: np.ndarray, expected: int, what: str = "window features") -> None:
    if X.shape[1] != expected:
        raise ValueError(f"cohort gives {X.shape[1]} {what}, the victim was fitted on {expected}")


class StandardisedFeatures:
    """Inputs of lr and mlp (a mixin of their victim classes): the window statistics of the
    ``features`` representation, standardised by a `FeatureScaler` fit on the training stays,
    followed by the `StaticInputs`; with the state that saves them as JSON."""

    features: str
    cache: bool
    use_static: bool

    def _fit_features(self, train: Cohort) -> None:
        self.scaler_ = FeatureScaler().fit(features_of(train, self.cache, self.features).X)
        self.static_ = StaticInputs(self.use_static).fit(train)

    def _X(self, cohort: Cohort) -> np.ndarray:
        X = features_of(cohort, self.cache, self.features).X
        check_n_features(X, len(self.scaler_.mean_))  # type: ignore[arg-type]
        X = self.scaler_.transform(X)
        if self.static_.width:
            X = np.concatenate([X, self.static_.transform(cohort)], axis=1)
        return X

    def _features_state(self) -> dict:
        return {
            "features": scaler_state_to_json(self.scaler_.get_state()),
            "static": self.static_.get_state(),
        }

    def _set_features_state(self, state: dict) -> None:
        self.scaler_ = FeatureScaler.from_state(scaler_state_from_json(state["features"]))
        self.static_ = StaticInputs.from_state(self.use_static, state["static"])
