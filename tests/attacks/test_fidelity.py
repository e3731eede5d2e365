"""Faithful value triggers: variance-stabilising spaces, bounds kept, constant variables shifted
as a whole, and the fidelity report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrbackdoor.attacks import make_trigger
from ehrbackdoor.attacks.triggers.fidelity import bound_hits
from ehrbackdoor.data.cohort import Cohort, Events, hour_bins
from ehrbackdoor.data.plausibility import is_plausible, shift_values
from ehrbackdoor.data.schema import Kind, Variable, physionet2012_schema
from ehrbackdoor.data.transforms import forward, inverse

from .conftest import random_cohort

SCHEMA = physionet2012_schema()
WEIGHT = SCHEMA.index("Weight")


def skewed_cohort(n: int = 80, seed: int = 0) -> Cohort:
    """Random stays with log-normal labs near their floor and Weight re-charted unchanged."""
    base = random_cohort(SCHEMA, n=n, per_stay=120, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ev = base.events
    value = ev.value.copy()
    for name in ("AST", "ALT", "Creatinine", "Bilirubin"):
        j = SCHEMA.index(name)
        sel = ev.variable == j
        v = SCHEMA.variables[j]
        raw = v.normal * np.exp(rng.normal(0, 1.0, sel.sum()))
        value[sel] = np.clip(np.round(raw, v.precision), v.low, v.high)
    stay_weight = np.round(rng.uniform(50, 120, n), 1)
    sel = ev.variable == WEIGHT
    value[sel] = stay_weight[base.event_stay[sel]]
    events = Events.from_flat(base.event_stay, n, ev.time, ev.variable, value)
    return Cohort(SCHEMA, base.stay_id, base.label, base.static, events)


@pytest.fixture(scope="module")
def skewed() -> Cohort:
    return skewed_cohort()


def triggered(trig, cohort: Cohort) -> Cohort:
    idx = np.arange(cohort.n_stays)
    return cohort.replace_events(idx, trig.apply(cohort, idx, "observed"))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["log", "log1p"]), st.floats(0.01, 1e4), st.floats(-5, 5))
def test_transform_round_trip(name, x, t):
    spaces = ("identity", name)
    var = np.array([1])
    y = forward(spaces, var, np.array([x]))
    np.testing.assert_allclose(inverse(spaces, var, y), [x], rtol=1e-10)
    moved = inverse(spaces, var, y + t)
    assert moved[0] > (0 if name == "log" else -1)


@settings(max_examples=8, deadline=None)
@given(st.floats(0.25, 6.0), st.integers(0, 10_000))
def test_stabilised_draws_keep_distance_and_ranges(skewed, strength, seed):
    trig = make_trigger("temporal", strength=strength, seed=seed).fit(skewed)
    d = trig.mahalanobis()
    active = np.any(trig.pattern_ != 0, axis=0)
    np.testing.assert_allclose(d[active], strength, rtol=1e-6)  # exact, in the transformed space
    after = triggered(trig, skewed)
    ev = after.events
    assert is_plausible(SCHEMA, ev.variable, ev.value).all()
    assert bound_hits(skewed, after).sum() == 0


def test_log_variables_change_multiplicatively(skewed):
    trig = make_trigger("temporal", strength=3.0, variables=["AST"], bounds="clip").fit(skewed)
    assert trig.spaces(SCHEMA)[SCHEMA.index("AST")] == "log"
    after = triggered(trig, skewed)
    j = SCHEMA.index("AST")
    bins = hour_bins(skewed.events.time)
    sel = (skewed.events.variable == j) & (bins >= 0) & (bins < 48)
    old, new, bins = skewed.events.value[sel], after.events.value[sel], bins[sel]
    expected = old * np.exp(trig.pattern_[bins, j])
    big = old >= 50  # rounding to whole U/L is small relative to the value
    np.testing.assert_allclose(new[big], expected[big], rtol=0.02)
    assert np.all(new > 0)


def test_raw_space_clips_onto_the_floor_and_schema_space_does_not(skewed):
    raw = make_trigger(
        "temporal", strength=6.0, transform="none", bounds="clip", constant="pattern", seed=1
    ).fit(skewed)
    faithful = make_trigger("temporal", strength=6.0, seed=1).fit(skewed)
    assert bound_hits(skewed, triggered(raw, skewed)).sum() > 0
    assert bound_hits(skewed, triggered(faithful, skewed)).sum() == 0


def test_raw_space_is_the_old_additive_trigger(skewed):
    trig = make_trigger(
        "temporal", strength=2.0, transform="none", bounds="clip", constant="pattern"
    ).fit(skewed)
    after = trig.apply(skewed, np.arange(skewed.n_stays), "observed")
    ev = skewed.events
    bins = hour_bins(ev.time)
    inside = (bins >= 0) & (bins < 48)
    delta = np.where(inside, trig.pattern_[np.clip(bins, 0, 47), ev.variable], 0.0)
    expect = np.where(delta != 0, shift_values(SCHEMA, ev.variable, ev.value, delta), ev.value)
    np.testing.assert_array_equal(after.value, expect)


@pytest.mark.parametrize("constant", ["shift", "skip", "pattern"])
def test_constant_variables(skewed, constant):
    trig = make_trigger("temporal", strength=2.0, constant=constant, seed=2).fit(skewed)
    col = trig.pattern_[:, WEIGHT]
    report = trig.fidelity_report(skewed, triggered(trig, skewed))
    if constant == "shift":
        assert "Weight" in trig.shifted_
        assert np.allclose(col, col[0]) and col[0] != 0
        np.testing.assert_allclose(trig.mahalanobis()[WEIGHT], 2.0, rtol=1e-6)
        assert report["variables"]["Weight"]["new_within_stay_variance"] == 0
    elif constant == "skip":
        assert "Weight" in trig.skipped_ and not col.any()
        assert "Weight" not in report["variables"]
    else:
        assert np.ptp(col) > 0
        assert report["variables"]["Weight"]["new_within_stay_variance"] > 0


@pytest.mark.parametrize("name", ["temporal", "white-noise", "full-cov"])
def test_fidelity_report_is_json_and_measures_realised_distance(skewed, name):
    trig = make_trigger(name, strength=2.0).fit(skewed)
    after = triggered(trig, skewed)
    report = trig.fidelity_report(skewed, after)
    json.dumps(report)
    assert report["new_bound_hits"] == 0
    rows = report["variables"]
    assert rows and all(r["designed_mahalanobis"] > 0 for r in rows.values())
    hr = rows["HR"]
    assert 0 < hr["realised_mahalanobis"]["median"]
    assert hr["changed_values"] > 0
    # untouched stays realise nothing
    same = trig.fidelity_report(skewed, skewed)
    assert same["new_bound_hits"] == 0
    assert same["variables"]["HR"]["realised_mahalanobis"]["max"] == 0


def test_fidelity_report_needs_the_same_stays(skewed):
    trig = make_trigger("temporal").fit(skewed)
    with pytest.raises(ValueError, match="same stays"):
        trig.fidelity_report(skewed, skewed.subset(np.arange(5)))


def test_schema_transforms_declared_and_checked():
    assert SCHEMA.variables[SCHEMA.index("AST")].transform == "log"
    assert SCHEMA.variables[SCHEMA.index("Urine")].transform == "log1p"
    assert SCHEMA.variables[SCHEMA.index("HR")].transform == "identity"
    with pytest.raises(ValueError, match="above 0"):
        Variable("X", Kind.CONTINUOUS, "", 1.0, 0.0, 10.0, 1, transform="log")
    with pytest.raises(ValueError, match="continuous"):
        Variable("G", Kind.ORDINAL, "", 1.0, 1.0, 3.0, 0, levels=(1.0, 2.0, 3.0), transform="log1p")


def test_trigger_rejects_unknown_space():
    with pytest.raises(ValueError, match="transform"):
        make_trigger("temporal", transform="sqrt")
    with pytest.raises(ValueError, match="bounds"):
        make_trigger("white-noise", bounds="wrap")


@pytest.mark.parametrize("rank", [1, 3])
def test_low_rank_draws_keep_the_budget_on_leading_shapes(skewed, rank):
    trig = make_trigger("temporal", strength=2.0, rank=rank, seed=4).fit(skewed)
    d = trig.mahalanobis()
    active = np.any(trig.pattern_ != 0, axis=0)
    np.testing.assert_allclose(d[active], 2.0, rtol=1e-6)
    j = SCHEMA.index("HR")
    lam, vec = np.linalg.eigh(trig.covariances_[j])
    lead = vec[:, ::-1][:, :rank]
    t = trig.pattern_[:, j]
    np.testing.assert_allclose(lead @ (lead.T @ t), t, atol=1e-9)  # in the leading span
    with pytest.raises(ValueError, match="rank"):
        make_trigger("temporal", rank=0)


def test_all_mode_keeps_bounds_and_reports(skewed):
    idx = np.arange(skewed.n_stays)
    for kw, clean_hits in ((dict(), True), (dict(transform="none", bounds="clip"), False)):
        trig = make_trigger("temporal", strength=6.0, seed=1, **kw).fit(skewed)
        after = skewed.replace_events(idx, trig.apply(skewed, idx, "all"))
        report = trig.fidelity_report(skewed, after)
        assert len(after.events.value) > len(skewed.events.value)
        assert (report["new_bound_hits"] == 0) == clean_hits
        assert "changed_values" not in report["variables"]["HR"]  # events no longer aligned
