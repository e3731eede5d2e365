from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrbackdoor.attacks import load_trigger, make_trigger
from ehrbackdoor.base import NotFittedError
from ehrbackdoor.data.cohort import hour_bins
from ehrbackdoor.data.plausibility import is_plausible
from ehrbackdoor.data.schema import physionet2012_schema
from ehrbackdoor.preprocess.grid import grid_raw

from .conftest import random_cohort

VALUE_TRIGGERS = ["temporal", "white-noise", "full-cov"]
VALUE_AND_FIXED = [*VALUE_TRIGGERS, "fixed"]  # missing-pattern triggers: test_missing_triggers.py


def build(name: str, seed: int = 0, strength: float = 2.0):
    if name == "fixed":
        return make_trigger(name, seed=seed)
    return make_trigger(name, strength=strength, seed=seed)


@pytest.mark.parametrize("name", VALUE_AND_FIXED)
def test_observed_mode_keeps_times_variables_and_missingness(cohort, name):
    trig = build(name).fit(cohort)
    idx = np.arange(cohort.n_stays)
    ev = trig.apply(cohort, idx, "observed")
    assert np.array_equal(ev.offsets, cohort.events.offsets)
    assert np.array_equal(ev.time, cohort.events.time)
    assert np.array_equal(ev.variable, cohort.events.variable)
    changed = ev.value != cohort.events.value
    assert changed.any()
    assert is_plausible(cohort.schema, ev.variable[changed], ev.value[changed]).all()


@pytest.mark.parametrize("name", VALUE_AND_FIXED)
def test_all_mode_values_plausible_and_old_times_kept(cohort, name):
    trig = build(name).fit(cohort)
    idx = np.arange(0, cohort.n_stays, 3)
    ev = trig.apply(cohort, idx, "all")
    poisoned = cohort.replace_events(idx, ev).subset(idx)
    base = cohort.subset(idx)
    assert ev.n_stays == len(idx)
    # every original timestamp is still there; added ones sit at bin midpoints
    assert set(base.events.time.tolist()) <= set(poisoned.events.time.tolist())
    added = len(poisoned.events.time) - len(base.events.time)
    assert added > 0
    new = ~np.isin(poisoned.events.time, base.events.time)
    assert np.allclose(poisoned.events.time[new] % 1.0, 0.5)
    assert is_plausible(cohort.schema, ev.variable[new], ev.value[new]).all()


@pytest.mark.parametrize("name", VALUE_TRIGGERS)
def test_all_mode_fills_every_active_cell(cohort, name):
    trig = build(name).fit(cohort)
    idx = np.arange(cohort.n_stays)
    mask = grid_raw(cohort.replace_events(idx, trig.apply(cohort, idx, "all"))).mask
    active = np.any(trig.pattern_ != 0, axis=0)
    assert mask[:, :, active].all()


def test_temporal_mahalanobis_equals_strength(cohort):
    for s in (0.5, 1.0, 2.0):
        trig = build("temporal", strength=s).fit(cohort)
        d = trig.mahalanobis()
        active = np.any(trig.pattern_ != 0, axis=0)
        np.testing.assert_allclose(d[active], s, rtol=1e-8)
        # binary variables (MechVent) are never part of a value trigger
        for j, v in enumerate(cohort.schema.variables):
            if v.kind.value == "binary":
                assert not active[j]


@pytest.mark.parametrize("name", VALUE_TRIGGERS)
def test_same_seed_same_trigger(cohort, name):
    a, b = build(name, seed=5).fit(cohort), build(name, seed=5).fit(cohort)
    c = build(name, seed=6).fit(cohort)
    assert np.array_equal(a.pattern_, b.pattern_)
    assert not np.array_equal(a.pattern_, c.pattern_)


@pytest.mark.parametrize("name", VALUE_AND_FIXED)
def test_save_load_round_trip(cohort, name, tmp_path):
    trig = build(name, seed=3).fit(cohort)
    trig.save(tmp_path)
    back = load_trigger(tmp_path)
    idx = np.arange(10)
    a, b = trig.apply(cohort, idx, "all"), back.apply(cohort, idx, "all")
    assert back.get_params() == trig.get_params()
    for f in ("offsets", "time", "variable", "value", "alias"):
        assert np.array_equal(getattr(a, f), getattr(b, f))


def test_categoricals_move_in_clinical_order():
    schema = physionet2012_schema()
    cohort = random_cohort(schema, n=100, per_stay=200, seed=4)
    trig = build("temporal", strength=2.0).fit(cohort)
    g = schema.index("GCS")
    ev = trig.apply(cohort, np.arange(cohort.n_stays), "observed")
    sel = cohort.events.variable == g
    bins = hour_bins(cohort.events.time[sel])
    step = np.round(trig.pattern_[bins, g])
    expected = np.clip(cohort.events.value[sel] + step, 3, 15)
    np.testing.assert_array_equal(ev.value[sel], expected)


@given(st.integers(0, 2**31 - 1), st.floats(0.1, 5.0))
@settings(max_examples=15, deadline=None)
def test_property_plausible_for_any_seed_and_strength(seed, strength):
    cohort = random_cohort(physionet2012_schema(), n=30, per_stay=60, seed=seed % 1000)
    trig = make_trigger("temporal", strength=strength, seed=seed).fit(cohort)
    ev = trig.apply(cohort, np.arange(cohort.n_stays), "observed")
    assert np.array_equal(ev.time, cohort.events.time)
    assert is_plausible(cohort.schema, ev.variable, ev.value).all()


def test_bad_parameters():
    with pytest.raises(ValueError, match="strength"):
        make_trigger("temporal", strength=-1)
    with pytest.raises(ValueError, match="unknown trigger"):
        make_trigger("nope")
    with pytest.raises(ValueError, match="hours"):
        make_trigger("fixed", hours=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        make_trigger("temporal").apply(None, np.arange(1))
