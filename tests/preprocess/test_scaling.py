"""Scalers: training statistics only, NaN handling, state round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ehrbackdoor.data.schema import mimic3_schema
from ehrbackdoor.preprocess import FeatureScaler, GridScaler, discretize, window_features

from .helpers import random_cohort


def test_feature_scaler_uses_training_statistics_only() -> None:
    train = np.array(
        [[1.0, np.nan, 5.0, np.nan], [3.0, 2.0, 5.0, np.nan], [np.nan, 4.0, 5.0, np.nan]]
    )
    test = np.array([[100.0, np.nan, 7.0, 3.0]])
    s = FeatureScaler().fit(train)
    np.testing.assert_allclose(s.fill_, [2.0, 3.0, 5.0, 0.0])
    imputed = np.array([[1, 3, 5, 0], [3, 2, 5, 0], [2, 4, 5, 0]], dtype=float)
    np.testing.assert_allclose(s.mean_, imputed.mean(0))
    np.testing.assert_allclose(s.std_, [imputed[:, 0].std(), imputed[:, 1].std(), 1.0, 1.0])
    out = s.transform(test)
    assert out.dtype == np.float32 and not np.isnan(out).any()
    np.testing.assert_allclose(out[0, 0], (100 - 2) / imputed[:, 0].std(), rtol=1e-6)
    assert out[0, 1] == 0.0  # imputed with the train mean -> 0 after centring
    assert out[0, 2] == 2.0 and out[0, 3] == 3.0  # constant / all-NaN train columns
    t = s.fit_transform(train)
    np.testing.assert_allclose(t.mean(0), 0, atol=1e-6)


def test_feature_scaler_state_round_trip_via_json() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 8))
    X[rng.random(X.shape) < 0.3] = np.nan
    s = FeatureScaler().fit(X[:30])
    state = json.loads(json.dumps({k: v.tolist() for k, v in s.get_state().items()}))
    s2 = FeatureScaler.from_state(state)
    np.testing.assert_array_equal(s.transform(X[30:]), s2.transform(X[30:]))
    with pytest.raises(ValueError, match="features"):
        s.transform(X[:, :3])
    with pytest.raises(RuntimeError, match="fit"):
        FeatureScaler().transform(X)
    with pytest.raises(ValueError, match="lacks"):
        FeatureScaler.from_state({"fill": [0.0]})


def test_feature_scaler_on_features_object() -> None:
    c = random_cohort(np.random.default_rng(1), mimic3_schema(), n_stays=20)
    f = window_features(c)
    scaled = FeatureScaler().fit(f.subset(np.arange(15))).transform(f)
    assert scaled.columns == f.columns and scaled.X.shape == f.X.shape
    assert not np.isnan(scaled.X).any()


@pytest.mark.parametrize("layout", ["ordinal", "benchmark"])
def test_grid_scaler_observed_cells_and_untouched_one_hots(layout: str) -> None:
    c = random_cohort(np.random.default_rng(2), mimic3_schema(), n_stays=30, max_events=300)
    g = discretize(c, layout=layout)
    train = g.subset(np.arange(20))
    s = GridScaler().fit(train)
    out = s.transform(g)
    hr = mimic3_schema().index("HR")
    col = list(g.columns).index("Heart Rate")
    obs = train.mask[:, :, hr] > 0
    x = train.values[:, :, col][obs].astype(np.float64)
    np.testing.assert_allclose(s.mean_[col], x.mean(), rtol=1e-6)
    np.testing.assert_allclose(s.std_[col], x.std(), rtol=1e-6)
    np.testing.assert_allclose(
        out.values[:, :, col], (g.values[:, :, col] - x.mean()) / x.std(), rtol=1e-4, atol=1e-5
    )
    one_hot = np.array([k == "onehot" for k in g.column_kind])
    np.testing.assert_array_equal(out.values[:, :, one_hot], g.values[:, :, one_hot])
    np.testing.assert_array_equal(out.mask, g.mask)
    np.testing.assert_array_equal(out.delta, g.delta)
    if layout == "ordinal":
        gcs = list(g.columns).index("Glascow coma scale total")
        assert s.scaled_[gcs] and not GridScaler(scale_ordinal=False).fit(train).scaled_[gcs]
    s2 = GridScaler.from_state({k: v.tolist() for k, v in s.get_state().items()})
    np.testing.assert_array_equal(s2.transform(g).values, out.values)
    assert s2.scale_ordinal == s.scale_ordinal


def test_near_zero_spread_counts_as_zero() -> None:
    """A training column of rounding noise (std ~1e-15) must not amplify a test value to ~1e14."""
    rng = np.random.default_rng(4)
    train = np.stack(
        [rng.normal(size=200) * 1e-15, 7.4 + rng.normal(size=200) * 1e-9, rng.normal(size=200)],
        axis=1,
    )
    s = FeatureScaler().fit(train)
    assert s.std_[0] == 1.0 and s.std_[1] == 1.0 and s.std_[2] == pytest.approx(train[:, 2].std())
    out = s.transform(np.array([[0.1, 7.5, 0.0]]))
    assert np.abs(out).max() < 10
    s2 = FeatureScaler.from_state({k: v.tolist() for k, v in s.get_state().items()})
    np.testing.assert_array_equal(s2.std_, s.std_)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_scaler_state_rejects_non_finite(bad: float) -> None:
    s = FeatureScaler().fit(np.random.default_rng(0).normal(size=(10, 3)))
    state = {k: v.tolist() for k, v in s.get_state().items()}
    state["mean"][1] = bad
    with pytest.raises(ValueError, match="non-finite.*'mean'|'mean'.*non-finite"):
        FeatureScaler.from_state(state)
    g = {"mean": [0.0, bad], "std": [1.0, 1.0], "scaled": [1.0, 1.0]}
    with pytest.raises(ValueError, match="non-finite"):
        GridScaler.from_state(g)
