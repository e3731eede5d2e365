"""Window features against a slow, literal port of the benchmark's feature_extractor."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import skew

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import mimic3_schema, physionet2012_schema
from ehrbackdoor.preprocess import Features, feature_names, window_features

from .helpers import EDGE_TIMES, random_cohort

# The benchmark's definitions (mimic3models/feature_extractor.py), period "all", features "all".
PERIOD_ALL = (0, 0, 1, 0)
SUB_PERIODS = [(2, 100), (2, 10), (2, 25), (2, 50), (3, 10), (3, 25), (3, 50)]


def _skew(data: list[float]) -> float:
    """scipy's biased skew; 0 for equal values, as the benchmark's scipy returned there."""
    if min(data) == max(data):
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = skew(data)
    return 0.0 if np.isnan(s) else float(s)


FUNCTIONS = [min, max, np.mean, np.std, _skew, len]


def get_range(begin: float, end: float, period: tuple) -> tuple[float, float]:
    if period[0] == 2:
        return (begin, begin + (end - begin) * period[1] / 100.0)
    if period[0] == 3:
        return (end - (end - begin) * period[1] / 100.0, end)
    L = begin + period[1] if period[0] == 0 else end + period[1]
    R = begin + period[3] if period[2] == 0 else end + period[3]
    return (L, R)


def calculate(
    channel_data: list[tuple[float, float]], period: tuple, sub_period: tuple
) -> np.ndarray:
    if len(channel_data) == 0:
        return np.full((len(FUNCTIONS),), np.nan)
    L = channel_data[0][0]
    R = channel_data[-1][0]
    L, R = get_range(L, R, period)
    L, R = get_range(L, R, sub_period)
    data = [x for (t, x) in channel_data if L - 1e-6 < t < R + 1e-6]
    if len(data) == 0:
        return np.full((len(FUNCTIONS),), np.nan)
    return np.array([fn(data) for fn in FUNCTIONS], dtype=np.float32)


def reference_features(cohort: Cohort, hours: float = 48.0) -> np.ndarray:
    rows = []
    for i in range(cohort.n_stays):
        ev = cohort.stay_events(i)
        feats = []
        for f in range(len(cohort.schema)):
            sel = (ev["variable"] == f) & (ev["time"] > -1e-6) & (ev["time"] < hours + 1e-6)
            data = [
                (float(t), float(x)) for t, x in zip(ev["time"][sel], ev["value"][sel], strict=True)
            ]
            feats += [calculate(data, PERIOD_ALL, sp) for sp in SUB_PERIODS]
        rows.append(np.concatenate(feats))
    return np.array(rows, dtype=np.float32).reshape(cohort.n_stays, -1)


def _check(cohort: Cohort) -> Features:
    """skew="benchmark" matches the port; the robust default differs by rounding noise at most."""
    want = reference_features(cohort)
    for mode in ("benchmark", "robust"):
        got = window_features(cohort, skew=mode)
        assert got.X.shape == want.shape and got.X.dtype == np.float32
        # atol only absorbs rounding differences of statistics that are 0 (std, skew of
        # symmetric data)
        np.testing.assert_allclose(got.X, want, rtol=1e-5, atol=1e-6, equal_nan=True)
    return got


@pytest.mark.parametrize("seed", range(4))
def test_random_cohorts_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    schema = mimic3_schema() if seed % 2 else physionet2012_schema()
    c = random_cohort(rng, schema, n_stays=15, max_events=200, n_vars=6)
    _check(c)


_times = st.one_of(
    st.sampled_from(list(EDGE_TIMES) + [-0.5, -1e-7, 48.1, 50.0]),
    st.integers(0, 48).map(float),
    st.floats(0.0, 48.0, allow_nan=False),
)
_values = st.one_of(
    st.sampled_from([0.0, 1.0, 7.4, 7.41, 36.6, 120.0, -3.5]),
    st.integers(-500, 500).map(lambda k: k / 10.0),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 3), _times, st.integers(0, 2), _values), max_size=80),
)
def test_hypothesis_cohorts_match_reference(events: list[tuple[int, float, int, float]]) -> None:
    n = 4
    stay = np.array([e[0] for e in events], dtype=np.int64)
    time = np.array([e[1] for e in events], dtype=float)
    var = np.array([e[2] for e in events], dtype=np.int64)
    value = np.array([e[3] for e in events], dtype=float)
    ev = Events.from_flat(stay, n, time, var, value)
    schema = physionet2012_schema()
    c = Cohort(
        schema,
        np.array(list("abcd")),
        np.zeros(n, dtype=np.int8),
        np.zeros((n, len(schema.static))),
        ev,
    )
    _check(c)


def test_names_order_and_constant_window() -> None:
    schema = mimic3_schema()
    names = feature_names(schema)
    assert len(names) == 714
    assert names[:7] == [
        "CRR/all/min",
        "CRR/all/max",
        "CRR/all/mean",
        "CRR/all/std",
        "CRR/all/skew",
        "CRR/all/count",
        "CRR/first10/min",
    ]
    assert names[8 * 42] == "HR/all/min" and names[-1] == "pH/last50/count"
    hr = schema.index("HR")
    k = 37
    ev = Events(
        np.array([0, k]),
        np.linspace(0, 40, k),
        np.full(k, hr, dtype=np.int16),
        np.full(k, 7.4),
        np.full(k, -1, dtype=np.int8),
    )
    c = Cohort(schema, np.array(["x"]), np.array([0], dtype=np.int8), np.zeros((1, 0)), ev)
    f = window_features(c)
    row = dict(zip(f.columns, f.X[0], strict=True))
    assert row["HR/all/skew"] == 0.0 and row["HR/all/std"] == 0.0  # scipy today: skew 1.0 here
    assert row["HR/all/count"] == k and row["HR/all/mean"] == np.float32(7.4)
    assert np.isnan(row["Glucose/all/mean"]) and np.isnan(row["Glucose/last10/count"])


def test_features_round_trip() -> None:
    c = random_cohort(np.random.default_rng(3), mimic3_schema(), n_stays=6)
    f = window_features(c)
    back = Features.from_arrays(f.to_arrays())
    np.testing.assert_array_equal(back.X, f.X)
    assert back.columns == f.columns
    assert window_features(c.subset(np.zeros(0, dtype=np.int64))).X.shape == (0, 714)


def test_unsorted_times_are_sorted_per_series() -> None:
    """Events out of time order within a stay give the same features as sorted ones."""
    c = random_cohort(np.random.default_rng(9), physionet2012_schema(), n_stays=5, n_vars=4)
    e = c.events
    rev = np.concatenate(
        [np.arange(a, b)[::-1] for a, b in zip(e.offsets[:-1], e.offsets[1:], strict=True)]
    )
    shuffled = Events(e.offsets, e.time[rev], e.variable[rev], e.value[rev], e.alias[rev])
    c2 = Cohort(c.schema, c.stay_id, c.label, c.static, shuffled)
    a, b = window_features(c).X, window_features(c2).X
    # statistics do not depend on the order of equal times except min/max/count/mean rounding
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_real_physionet_matches_reference(physionet_cohort: Cohort) -> None:
    c = physionet_cohort.subset(np.arange(0, physionet_cohort.n_stays, 150))  # 54 stays
    _check(c)


def _reference_from_rows(rows: list[list[str]]) -> np.ndarray:
    """The benchmark's convert_to_dict + extract_features on one episode's text rows."""
    schema = mimic3_schema()
    feats = []
    for j, v in enumerate(schema.variables):
        data = [
            (float(r[0]), r[j + 1])
            for r in rows
            if r[j + 1] != "" and -1e-6 < float(r[0]) < 48 + 1e-6
        ]
        if v.is_categorical:
            data = [(t, v.aliases[x]) for t, x in data]
        data = [(float(t), float(x)) for t, x in data]
        feats += [calculate(data, PERIOD_ALL, sp) for sp in SUB_PERIODS]
    return np.concatenate(feats)


def test_mimic_episode_files_match_reference(tmp_path) -> None:
    from ehrbackdoor.data.readers.mimic3 import read_episode_files

    from .helpers import random_episode, write_episode

    rng = np.random.default_rng(21)
    episodes = [random_episode(rng, int(rng.integers(0, 120))) for _ in range(6)]
    paths = []
    for i, rows in enumerate(episodes):
        paths.append(tmp_path / f"{i}_episode1_timeseries.csv")
        write_episode(paths[-1], rows)
    f = window_features(read_episode_files(paths, [0] * len(paths)))
    assert f.X.shape == (6, 714)
    want = np.stack([_reference_from_rows(rows) for rows in episodes])
    np.testing.assert_allclose(f.X, want, rtol=1e-5, atol=1e-6, equal_nan=True)


def _one_series(values: list[float]) -> dict[str, float]:
    schema = mimic3_schema()
    k = len(values)
    ev = Events(
        np.array([0, k]),
        np.linspace(0, 40, k),
        np.full(k, schema.index("HR"), dtype=np.int16),
        np.array(values),
        np.full(k, -1, dtype=np.int8),
    )
    c = Cohort(schema, np.array(["x"]), np.array([0], dtype=np.int8), np.zeros((1, 0)), ev)
    return {
        m: dict(
            zip(window_features(c, skew=m).columns, window_features(c, skew=m).X[0], strict=True)
        )
        for m in ("robust", "benchmark")
    }


@pytest.mark.parametrize("values", [[1.1, 1.2], [2.1, 2.3], [1.1, 1.2, 1.1, 1.2], [0.3, 0.7]])
def test_skew_of_symmetric_windows_is_exactly_zero(values: list[float]) -> None:
    """scipy (and the benchmark) give +-1e-16..1e-14 here; a column of that noise has a training
    std of ~1e-15 and standardising by it produced features of ~1e14."""
    rows = _one_series(values)
    assert rows["robust"]["HR/all/skew"] == 0.0
    assert rows["benchmark"]["HR/all/skew"] == np.float32(skew(values))
    assert rows["robust"]["HR/all/std"] == rows["benchmark"]["HR/all/std"] > 0


def test_skew_needs_three_values_and_keeps_real_asymmetry() -> None:
    rows = _one_series([1.0, 1.0, 4.0])["robust"]
    assert rows["HR/all/skew"] == np.float32(skew([1.0, 1.0, 4.0])) > 0.7
    assert _one_series([5.0])["robust"]["HR/all/skew"] == 0.0
    with pytest.raises(ValueError, match="skew"):
        window_features(random_cohort(np.random.default_rng(0), mimic3_schema(), 2), skew="x")
