"""Victim-side scalers, fit on training stays only.

Statistics computed on test or poisoned-and-held-out stays would leak information across the split,
so every scaler here is fit on the training stays and then applied unchanged to validation, test and
triggered stays. State is plain numeric arrays (``get_state`` / ``from_state``) so a trained victim
can be saved as JSON or safetensors next to its weights and reloaded without pickles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from ehrbackdoor.preprocess.features import Features
from ehrbackdoor.preprocess.grid import Grid

_Arr = TypeVar("_Arr", np.ndarray, Features)


#: A spread at or below this fraction of a column's magnitude (``max(1, |mean|)``) counts as zero.
#: Features are float32 (~6e-8 relative precision), so a smaller spread is rounding, not signal;
#: dividing by it blew a test stay's feature up to ~1e14. The floor of 1 is in the features' own
#: clinical units: a column whose whole training spread is below 1e-6 of them is constant.
SPREAD_RTOL = 1e-6


def _safe_std(std: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Zero, near-zero (`SPREAD_RTOL`) or non-finite spread becomes 1: constant columns pass
    through centred instead of being amplified."""
    std = np.asarray(std, dtype=np.float64).copy()
    scale = np.ones_like(std) if mean is None else np.maximum(1.0, np.abs(mean))
    std[~np.isfinite(std) | (std <= SPREAD_RTOL * scale)] = 1.0
    return std


def _check_finite(arrays: Mapping[str, np.ndarray], what: str) -> None:
    for k, v in arrays.items():
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(
                f"{what} state {k!r} holds {int(bad.sum())} non-finite values (first at index "
                f"{int(np.flatnonzero(bad)[0])}); refusing to load it"
            )


def _state_arrays(state: Mapping[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    missing = [k for k in names if k not in state]
    if missing:
        raise ValueError(f"scaler state lacks {missing}; expected keys {list(names)}")
    out = {k: np.asarray(state[k], dtype=np.float64).reshape(-1) for k in names}
    sizes = {len(v) for v in out.values()}
    if len(sizes) != 1:
        raise ValueError(
            f"scaler state arrays differ in length: { {k: len(v) for k, v in out.items()} }"
        )
    return out


class FeatureScaler:
    """Mean imputation of NaN then standardisation, as the benchmark's logistic baseline does.

    Fit on training rows: ``fill_`` = column mean over observed values (0 if a column is all-NaN in
    training), ``mean_`` / ``std_`` = mean and population std of the imputed training column (a std
    of 0 or within `SPREAD_RTOL` of the column's magnitude -> 1). ``transform`` imputes with
    ``fill_`` and standardises; output is float32.
    """

    def __init__(self) -> None:
        self.fill_: np.ndarray | None = None
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    @staticmethod
    def _matrix(X: np.ndarray | Features) -> np.ndarray:
        X = X.X if isinstance(X, Features) else X
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (stays x features), got shape {X.shape}")
        return X

    def fit(self, X: np.ndarray | Features) -> FeatureScaler:
        """Learn fill values and scale from training rows only."""
        X = self._matrix(X)
        observed = ~np.isnan(X)
        count = observed.sum(axis=0)
        total = np.where(observed, X, 0.0).sum(axis=0)
        fill = np.divide(total, count, out=np.zeros(X.shape[1]), where=count > 0)
        imputed = np.where(observed, X, fill)
        self.fill_ = fill
        self.mean_ = imputed.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        self.std_ = _safe_std(imputed.std(axis=0) if len(X) else np.ones(X.shape[1]), self.mean_)
        return self

    def _check_fitted(self, n_features: int) -> None:
        if self.fill_ is None or self.mean_ is None or self.std_ is None:
            raise RuntimeError(
                "FeatureScaler is not fitted: call fit() on the training stays first"
            )
        if n_features != len(self.fill_):
            raise ValueError(
                f"X has {n_features} features, the scaler was fit on {len(self.fill_)}"
            )

    def transform(self, X: _Arr) -> _Arr:
        """Impute and standardise; returns the same type as given (array or Features)."""
        M = self._matrix(X)
        self._check_fitted(M.shape[1])
        assert self.fill_ is not None and self.mean_ is not None and self.std_ is not None
        out = ((np.where(np.isnan(M), self.fill_, M) - self.mean_) / self.std_).astype(np.float32)
        if isinstance(X, Features):
            return Features(out, X.columns, X.stay_id, X.label)
        return out

    def fit_transform(self, X: _Arr) -> _Arr:
        return self.fit(X).transform(X)

    def get_state(self) -> dict[str, np.ndarray]:
        """Numeric arrays only (JSON via ``.tolist()``, safetensors as is)."""
        if self.fill_ is None or self.mean_ is None or self.std_ is None:
            raise RuntimeError("FeatureScaler is not fitted")
        return {"fill": self.fill_.copy(), "mean": self.mean_.copy(), "std": self.std_.copy()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FeatureScaler:
        """Rebuild from `get_state` arrays; non-finite values are rejected (ValueError)."""
        a = _state_arrays(state, ("fill", "mean", "std"))
        _check_finite(a, "FeatureScaler")
        s = cls()
        s.fill_, s.mean_, s.std_ = a["fill"], a["mean"], _safe_std(a["std"], a["mean"])
        return s


class GridScaler:
    """Standardise the numeric value columns of a `Grid` with training statistics.

    Mean and std are taken over the OBSERVED cells (mask = 1) of the training stays, so imputed
    cells do not shrink the spread; every cell is then transformed (imputed ones too). Continuous
    columns are scaled, and so are ordinal code columns of the 'ordinal' layout (GCS 3-15 is a
    number on an arbitrary scale) unless ``scale_ordinal=False``; one-hot and binary columns are
    left alone (stored as mean 0, std 1). Masks and deltas are never touched. The training grid's
    window (``hours_``) is kept: a grid of another window is refused.
    """

    def __init__(self, scale_ordinal: bool = True) -> None:
        self.scale_ordinal = scale_ordinal
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None
        self.scaled_: np.ndarray | None = None
        self.hours_: float | None = None  # None: restored from a state that did not record it

    def _scaled_columns(self, grid: Grid) -> np.ndarray:
        kinds = np.asarray(grid.column_kind)
        scaled = kinds == "continuous"
        if self.scale_ordinal:
            scaled |= kinds == "ordinal"
        return scaled

    def fit(self, grid: Grid) -> GridScaler:
        """Learn per-column mean/std over observed training cells."""
        n_cols = grid.values.shape[-1]
        scaled = self._scaled_columns(grid)
        mean, std = np.zeros(n_cols), np.ones(n_cols)
        cols = np.flatnonzero(scaled)
        for c in cols:  # a loop over columns; each step is vectorised over stays and bins
            obs = grid.mask[:, :, grid.column_variable[c]] > 0
            x = grid.values[:, :, c][obs].astype(np.float64)
            if len(x):
                mean[c] = x.mean()
                std[c] = x.std()
        self.mean_, self.std_, self.scaled_ = mean, _safe_std(std, mean), scaled
        self.hours_ = float(grid.hours)
        return self

    def transform(self, grid: Grid) -> Grid:
        """A copy of `grid` with standardised value columns (float32)."""
        if self.mean_ is None or self.std_ is None:
            raise RuntimeError("GridScaler is not fitted: call fit() on the training grid first")
        if grid.values.shape[-1] != len(self.mean_):
            raise ValueError(
                f"grid has {grid.values.shape[-1]} value columns, the scaler was fit on "
                f"{len(self.mean_)}"
            )
        if self.hours_ is not None and float(grid.hours) != self.hours_:
            raise ValueError(
                f"grid covers a {grid.hours:g}-hour window, the scaler was fit on a "
                f"{self.hours_:g}-hour window"
            )
        mean = self.mean_.astype(np.float32)
        std = self.std_.astype(np.float32)
        return grid.with_values(((grid.values - mean) / std).astype(np.float32, copy=False))

    def fit_transform(self, grid: Grid) -> Grid:
        return self.fit(grid).transform(grid)

    def get_state(self) -> dict[str, np.ndarray]:
        if self.mean_ is None or self.std_ is None or self.scaled_ is None:
            raise RuntimeError("GridScaler is not fitted")
        return {
            "mean": self.mean_.copy(),
            "std": self.std_.copy(),
            "scaled": self.scaled_.astype(np.float64),
            "scale_ordinal": np.array([float(self.scale_ordinal)]),
            **({} if self.hours_ is None else {"hours": np.array([self.hours_])}),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> GridScaler:
        """Rebuild from `get_state` arrays; non-finite values are rejected (ValueError)."""
        a = _state_arrays(state, ("mean", "std", "scaled"))
        _check_finite(a, "GridScaler")
        so = state.get("scale_ordinal", [1.0])
        s = cls(scale_ordinal=bool(np.asarray(so, dtype=np.float64).reshape(-1)[0]))
        s.mean_, s.std_, s.scaled_ = a["mean"], _safe_std(a["std"], a["mean"]), a["scaled"] > 0
        if "hours" in state:
            s.hours_ = float(np.asarray(state["hours"], dtype=np.float64).reshape(-1)[0])
        return s
