"""Grid rules on edge cases, a per-stay reference for the ordinal layout and GRU-D deltas."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import mimic3_schema, physionet2012_schema
from ehrbackdoor.preprocess import Grid, discretize, grid_raw, n_bins

from .helpers import random_cohort


def reference_ordinal(
    cohort: Cohort, i: int, impute: str, timestep: float = 1.0, hours: float = 48.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One stay, one event at a time: values (T, F), mask, GRU-D delta by the recursion."""
    n_vars = len(cohort.schema)
    t_bins = int(hours / timestep + 1.0 - 1e-6)
    cell = np.zeros((t_bins, n_vars))
    mask = np.zeros((t_bins, n_vars))
    ev = cohort.stay_events(i)
    for t, f, x in zip(ev["time"], ev["variable"], ev["value"], strict=True):
        if t > hours + 1e-6 or t <= -1e-6:
            continue
        b = int(t / timestep - 1e-6)
        if b >= t_bins:  # the benchmark asserts here (t within 1e-6 above the end, fine steps)
            continue
        cell[b, f] = x
        mask[b, f] = 1
    normal = cohort.schema.normals
    out = np.zeros_like(cell)
    delta = np.zeros_like(cell)
    for f in range(n_vars):
        prev = None
        for b in range(t_bins):
            if mask[b, f]:
                prev = cell[b, f]
                out[b, f] = cell[b, f]
            elif impute == "previous":
                out[b, f] = normal[f] if prev is None else prev
            elif impute == "normal":
                out[b, f] = normal[f]
            if b > 0:
                delta[b, f] = timestep if mask[b - 1, f] else timestep + delta[b - 1, f]
    return out, mask, delta


def _one_stay(times: list[float], variables: list[int], values: list[float], schema=None) -> Cohort:
    schema = schema or physionet2012_schema()
    k = len(times)
    events = Events(
        np.array([0, k]),
        np.array(times, dtype=float),
        np.array(variables, dtype=np.int16),
        np.array(values, dtype=float),
        np.full(k, -1, dtype=np.int8),
    )
    return Cohort(
        schema,
        np.array(["a"]),
        np.array([1], dtype=np.int8),
        np.full((1, len(schema.static)), np.nan),
        events,
    )


def test_bin_edges_follow_the_benchmark() -> None:
    hr = physionet2012_schema().index("HR")
    times = [-0.5, -1e-7, 0.0, 1.0, 1.0 + 1e-7, 1.5, 2.0, 47.2, 48.0, 48.0 + 5e-7, 48.1]
    vals = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    g = grid_raw(_one_stay(times, [hr] * len(times), vals), impute="none")
    hrs = g.values[0, :, hr]
    assert n_bins(48.0) == 48 and g.values.shape[1] == 48
    # bin 0 holds t in (-1e-6, 1 + 1e-6]: last is t = 1.0000001 -> 14; t = -0.5 dropped
    assert hrs[0] == 14
    assert hrs[1] == 16  # 1.5, 2.0 -> last 2.0
    assert hrs[47] == 19  # 47.2, 48.0, 48.0000005 -> 48.0000005; 48.1 dropped
    assert np.isnan(hrs[2:47]).all()
    assert g.mask[0, :, hr].sum() == 3


def test_last_event_in_event_order_wins_on_ties() -> None:
    hr = physionet2012_schema().index("HR")
    g = discretize(_one_stay([3.5, 3.5, 3.5], [hr] * 3, [70, 90, 80]))
    assert g.values[0, 3, hr] == 80
    # events not sorted by time: still the last in event order
    g = discretize(_one_stay([3.9, 3.2], [hr, hr], [70, 90]))
    assert g.values[0, 3, hr] == 90


def test_imputation_strategies() -> None:
    schema = physionet2012_schema()
    hr, temp = schema.index("HR"), schema.index("Temp")
    c = _one_stay([5.0, 10.5], [hr, hr], [100.0, 120.0])
    prev = discretize(c, impute="previous").values[0, :, hr]
    assert np.all(prev[:4] == 86.0)  # HR normal before the first observation
    assert np.all(prev[4:10] == 100.0) and np.all(prev[10:] == 120.0)
    norm = discretize(c, impute="normal").values[0, :, hr]
    assert norm[4] == 100 and norm[10] == 120 and norm[5] == 86 and norm[20] == 86
    zero = discretize(c, impute="zero").values[0, :, hr]
    assert zero[4] == 100 and zero[10] == 120 and zero.sum() == 220
    assert np.all(discretize(c).values[0, :, temp] == np.float32(36.6))
    with pytest.raises(ValueError, match="impute"):
        discretize(c, impute="mean")
    with pytest.raises(ValueError, match="layout"):
        discretize(c, layout="wide")


@pytest.mark.parametrize("impute", ["previous", "normal", "zero"])
@pytest.mark.parametrize("seed", range(4))
def test_ordinal_layout_and_delta_match_reference(impute: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    schema = mimic3_schema() if seed % 2 else physionet2012_schema()
    c = random_cohort(rng, schema, n_stays=10, max_events=150)
    g = discretize(c, impute=impute)
    assert g.values.dtype == np.float32 and g.values.shape == (10, 48, len(schema))
    for i in range(c.n_stays):
        vals, mask, delta = reference_ordinal(c, i, impute)
        np.testing.assert_allclose(g.values[i], vals, rtol=1e-6)
        np.testing.assert_array_equal(g.mask[i], mask)
        np.testing.assert_allclose(g.delta[i], delta, rtol=1e-6)


def test_half_hour_timestep() -> None:
    rng = np.random.default_rng(5)
    c = random_cohort(rng, physionet2012_schema(), n_stays=6)
    g = discretize(c, timestep=0.5, impute="normal")
    assert g.values.shape[1] == 96
    for i in range(c.n_stays):
        vals, mask, delta = reference_ordinal(c, i, "normal", timestep=0.5)
        np.testing.assert_allclose(g.values[i], vals, rtol=1e-6)
        np.testing.assert_allclose(g.delta[i], delta, rtol=1e-6)


def test_grid_raw_matches_discretize() -> None:
    c = random_cohort(np.random.default_rng(11), mimic3_schema())
    raw = grid_raw(c)
    g = discretize(c)
    assert raw.values.dtype == np.float64
    np.testing.assert_array_equal(raw.values.astype(np.float32), g.values)
    np.testing.assert_array_equal(raw.mask, g.mask > 0)
    none = grid_raw(c, impute="none")
    assert np.array_equal(np.isnan(none.values), ~raw.mask)
    np.testing.assert_array_equal(none.values[raw.mask], raw.values[raw.mask])


def test_physionet_categoricals_one_hot_their_levels() -> None:
    schema = physionet2012_schema()
    gcs, mv = schema.index("GCS"), schema.index("MechVent")
    c = _one_stay([2.0, 7.0], [gcs, mv], [9.0, 1.0])
    g = discretize(c, layout="benchmark")
    cols = list(g.columns)
    assert f"GCS->{'9'}" in cols and "MechVent->1" in cols
    assert g.values.shape[-1] == len(schema) - 2 + 13 + 2
    assert g.values[0, 1, cols.index("GCS->9")] == 1
    assert g.values[0, 0, cols.index("GCS->15")] == 1  # normal before the first observation
    assert g.values[0, 6, cols.index("MechVent->1")] == 1
    assert g.values[0, 5, cols.index("MechVent->0")] == 1
    assert np.all(g.values[0, :, [cols.index(f"GCS->{k}") for k in range(3, 16)]].sum(0) == 1)


def test_unknown_code_raises() -> None:
    schema = physionet2012_schema()
    c = _one_stay([2.0], [schema.index("GCS")], [2.0])
    with pytest.raises(ValueError, match="GCS"):
        discretize(c, layout="benchmark")


def test_grid_round_trip_subset_and_empty() -> None:
    c = random_cohort(np.random.default_rng(2), mimic3_schema(), n_stays=5)
    g = discretize(c, layout="benchmark")
    back = Grid.from_arrays(g.to_arrays())
    np.testing.assert_array_equal(back.flat(), g.flat())
    assert back.columns == g.columns and back.column_kind == g.column_kind
    assert back.layout == "benchmark" and back.impute == "previous"
    sub = g.subset([3, 1])
    np.testing.assert_array_equal(sub.values, g.values[[3, 1]])
    assert list(sub.stay_id) == [c.stay_id[3], c.stay_id[1]]
    empty = discretize(c.subset(np.zeros(0, dtype=np.int64)))
    assert empty.values.shape == (0, 48, 17)


def test_real_physionet_matches_reference(physionet_cohort: Cohort) -> None:
    c = physionet_cohort.subset(np.arange(0, physionet_cohort.n_stays, 97))
    g = discretize(c)
    for i in range(c.n_stays):
        vals, mask, delta = reference_ordinal(c, i, "previous")
        np.testing.assert_allclose(g.values[i], vals, rtol=1e-6)
        np.testing.assert_array_equal(g.mask[i], mask)
        np.testing.assert_allclose(g.delta[i], delta, rtol=1e-6)
