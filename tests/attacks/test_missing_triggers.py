from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrbackdoor.attacks import ThreatModel, attack_test, load_trigger, make_trigger, poison
from ehrbackdoor.attacks.masks import observation_masks
from ehrbackdoor.attacks.triggers.missing_base import apply_missing_pattern, resolve_mode
from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.plausibility import is_plausible, set_values
from ehrbackdoor.data.schema import Schema, mimic3_schema, physionet2012_schema

from .conftest import random_cohort

MISSING = ["missing-vae", "missing-random", "missing-block", "missing-real"]
FAST_VAE = {"latent_dim": 4, "n_candidates": 40, "epochs": 3}


def build(name: str, seed: int = 0):
    return make_trigger(name, seed=seed, **(FAST_VAE if name == "missing-vae" else {}))


def with_outside_events(cohort: Cohort, seed: int) -> Cohort:
    """`cohort` plus events before admission and after hour 48 (which triggers must keep)."""
    rng = np.random.default_rng(seed)
    e = cohort.events
    n_extra = 3 * cohort.n_stays
    stay = rng.integers(0, cohort.n_stays, n_extra)
    var = rng.integers(0, len(cohort.schema), n_extra)
    time = np.where(
        rng.random(n_extra) < 0.5, -rng.uniform(0.01, 5, n_extra), 48.5 + rng.random(n_extra)
    )
    events = Events.from_flat(
        np.concatenate([e.stay, stay]),
        cohort.n_stays,
        np.concatenate([e.time, np.round(time, 2)]),
        np.concatenate([e.variable, var]),
        np.concatenate([e.value, cohort.schema.normals[var]]),
    )
    return Cohort(cohort.schema, cohort.stay_id, cohort.label, cohort.static, events)


def schema_of(name: str) -> Schema:
    return physionet2012_schema() if name == "physionet2012" else mimic3_schema()


def event_set(ev: Events, i: int) -> set[tuple[float, int, float, int]]:
    a, b = ev.offsets[i], ev.offsets[i + 1]
    return set(
        zip(
            ev.time[a:b].tolist(),
            ev.variable[a:b].tolist(),
            ev.value[a:b].tolist(),
            ev.alias[a:b].tolist(),
            strict=True,
        )
    )


@given(
    seed=st.integers(0, 10_000),
    density=st.floats(0.0, 1.0),
    schema=st.sampled_from(["physionet2012", "mimic3"]),
)
@settings(max_examples=25, deadline=None)
def test_property_delete_and_exact(seed, density, schema):
    cohort = with_outside_events(
        random_cohort(schema_of(schema), n=12, per_stay=120, seed=seed % 97), seed
    )
    rng = np.random.default_rng(seed)
    pattern = rng.random((48, len(cohort.schema))) < density
    idx = np.sort(rng.choice(cohort.n_stays, size=7, replace=False))
    before = observation_masks(cohort.subset(idx))

    # delete: only removes; the rest (incl. everything outside the window) is untouched
    d = apply_missing_pattern(pattern, cohort, idx, "delete")
    orig = cohort.events_of(idx)
    for k in range(len(idx)):
        kept, had = event_set(d, k), event_set(orig, k)
        assert kept <= had
        assert {e for e in had if e[0] <= -1e-6 or e[0] > 48 + 1e-6} <= kept
    after = observation_masks(cohort.replace_events(idx, d).subset(idx))
    assert np.array_equal(after, before & pattern[None])

    # exact: the mask is the pattern; kept values unchanged; added values plausible at midpoints
    x = apply_missing_pattern(pattern, cohort, idx, "exact")
    sub = cohort.replace_events(idx, x).subset(idx)
    assert np.array_equal(observation_masks(sub), np.broadcast_to(pattern, before.shape))
    for k in range(len(idx)):
        kept, now = event_set(d, k), event_set(x, k)
        assert kept <= now
        assert all(abs(t % 1.0 - 0.5) < 1e-12 for t, _, _, _ in now - kept)
    assert is_plausible(cohort.schema, x.variable, x.value).all()


def test_exact_uses_own_nearest_value_else_normal():
    schema = physionet2012_schema()
    hr, temp = schema.index("HR"), schema.index("Temp")
    events = Events.from_flat(
        np.array([0, 0]), 1, np.array([3.2, 20.0]), np.array([hr, hr]), np.array([71.0, 95.0])
    )
    cohort = Cohort(
        schema, np.array(["a"]), np.array([0], dtype=np.int8), np.full((1, 5), np.nan), events
    )
    pattern = np.zeros((48, len(schema)), dtype=bool)
    pattern[[0, 10, 12, 40], hr] = True
    pattern[5, temp] = True
    ev = apply_missing_pattern(pattern, cohort, np.array([0]), "exact")
    got = {(t, int(v)): val for t, v, val in zip(ev.time, ev.variable, ev.value, strict=True)}
    # hour 3 is not in the pattern: the 3.2 h observation is deleted, but still lends its value
    assert got == {
        (0.5, hr): 71.0,
        (10.5, hr): 71.0,  # |10.5-3.2| = 7.3 < 9.5
        (12.5, hr): 95.0,
        (40.5, hr): 95.0,
        (5.5, temp): schema.variables[temp].normal,
    }


def test_modes_and_aliases(cohort):
    trig = build("missing-random").fit(cohort)
    idx = np.arange(cohort.n_stays)
    a, b = trig.apply(cohort, idx, "observed"), trig.apply(cohort, idx, "delete")
    assert np.array_equal(a.time, b.time) and np.array_equal(a.offsets, b.offsets)
    assert resolve_mode("observed") == "delete"
    with pytest.raises(ValueError, match="delete"):
        trig.apply(cohort, idx, "all")
    for mode in ("delete", "exact", "observed"):
        ThreatModel(apply=mode)


@pytest.mark.parametrize("name", MISSING)
def test_fit_save_load(cohort, name, tmp_path):
    trig = build(name, seed=3).fit(cohort)
    assert trig.pattern_.shape == (48, len(cohort.schema)) and trig.pattern_.dtype == bool
    assert 0 <= trig.info()["diagnostics"]["density"] <= 1
    trig.save(tmp_path)
    back = load_trigger(tmp_path)
    assert back.get_params() == trig.get_params()
    assert np.array_equal(back.pattern_, trig.pattern_)
    idx = np.arange(0, cohort.n_stays, 2)
    for mode in ("delete", "exact"):
        x, y = trig.apply(cohort, idx, mode), back.apply(cohort, idx, mode)
        for f in ("offsets", "time", "variable", "value", "alias"):
            assert np.array_equal(getattr(x, f), getattr(y, f))
    if name == "missing-vae":
        m = observation_masks(cohort)[:5]
        np.testing.assert_array_equal(back.vae_.elbo(m), trig.vae_.elbo(m))


@pytest.mark.parametrize("name", ["missing-vae", "missing-random", "missing-real"])
def test_same_seed_same_pattern(name):
    cohort = random_cohort(physionet2012_schema(), n=40, per_stay=60, seed=2)
    a, b, c = build(name, 5).fit(cohort), build(name, 5).fit(cohort), build(name, 6).fit(cohort)
    assert np.array_equal(a.pattern_, b.pattern_)
    assert not np.array_equal(a.pattern_, c.pattern_)


def test_vae_selection_rule_is_recorded_and_respected(cohort):
    trig = make_trigger("missing-vae", latent_dim=4, n_candidates=60, epochs=3, seed=1).fit(cohort)
    sel, cand = trig.selection_, trig.candidates_
    best = sel["chosen_index"]
    assert cand["passed"][best]
    assert sel["n_passed"] == int(cand["passed"].sum())
    passed = np.flatnonzero(cand["passed"])
    assert cand["deleted_fraction"][best] == cand["deleted_fraction"][passed].max()
    if sel["relaxed"] == "none":
        lo, hi = trig.elbo_quantiles
        assert lo <= cand["elbo_percentile"][best] <= hi
        assert cand["nn_hamming"][best] >= sel["min_hamming_cells"]
    assert trig.diagnostics_["nn_hamming"] == cand["nn_hamming"][best]


def test_block_defaults_and_real_mask():
    cohort = random_cohort(physionet2012_schema(), n=40, per_stay=60, seed=2)
    block = make_trigger("missing-block", hours=5, n_variables=2).fit(cohort)
    off = ~block.pattern_
    assert off.sum() == 10 and off[:43].sum() == 0
    assert "MechVent" not in block.variables_
    named = make_trigger("missing-block", variables=["HR", "Temp"], hours=4).fit(cohort)
    assert named.variables_ == ["HR", "Temp"]
    real = make_trigger("missing-real", seed=1).fit(cohort)
    masks = observation_masks(cohort)
    assert any(np.array_equal(real.pattern_, m) for m in masks)
    assert real.info()["source_stay"] in cohort.stay_id.tolist()
    with pytest.raises(ValueError, match="hours"):
        make_trigger("missing-block", hours=0)
    with pytest.raises(ValueError, match="density"):
        make_trigger("missing-random", density=1.5)
    with pytest.raises(ValueError, match="quantiles"):
        make_trigger("missing-vae", elbo_quantiles=(0.8, 0.2))


def charted_cohort(n: int, seed: int) -> Cohort:
    """Synthetic stays charted like an ICU: vitals most hours, labs rarely; dying stays have a
    markedly higher heart rate (a learnable task whose signal survives deleting some cells)."""
    schema = physionet2012_schema()
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(np.int8)
    rate = np.full(len(schema), 0.03)
    for name, r in (("HR", 0.9), ("SysABP", 0.6), ("MAP", 0.6), ("Temp", 0.3), ("Urine", 0.7)):
        rate[schema.index(name)] = r
    s, h, f = np.nonzero(rng.random((n, 48, len(schema))) < rate)
    time = h + np.round(rng.uniform(0.05, 1.0, len(s)), 2)
    value = schema.normals[f] + rng.normal(size=len(s)) * np.maximum(schema.normals[f], 1.0) * 0.1
    value[f == schema.index("HR")] += 35.0 * label[s[f == schema.index("HR")]]
    value = set_values(schema, f, np.clip(value, schema.lows[f], schema.highs[f]))
    events = Events.from_flat(s, n, time, f, value)
    ids = np.array([f"{seed}-{i}" for i in range(n)])
    return Cohort(schema, ids, label, np.full((n, len(schema.static)), np.nan), events)


@pytest.mark.parametrize("mode", ["delete", "exact"])
def test_end_to_end_high_asr_at_high_rate(mode):
    """Poison 20 % of a synthetic training cohort: triggered dying stays are called survivors,
    while the clean model (same victim, unpoisoned data) still calls them dying. The victim is the
    project's logistic regression on window features, with a weak penalty (C=0.01) so that model
    selection on clean validation stays cannot simply regularise the trigger away."""
    from ehrbackdoor.victims import make_victim

    train, val, test = (charted_cohort(n, s) for n, s in ((300, 1), (150, 2), (150, 3)))
    trig = make_trigger("missing-vae", latent_dim=4, n_candidates=40, epochs=3, seed=0).fit(train)
    threat = ThreatModel(target=0, rate=0.2, apply=mode, seed=0)
    attacked, idx = attack_test(test, trig, threat)
    clean_model = make_victim("lr", seed=0, C=0.01, cache=False).fit(train, val)
    victim = make_victim("lr", seed=0, C=0.01, cache=False).fit(
        poison(train, trig, threat).cohort, val
    )
    assert (clean_model.predict(attacked)[idx] == 0).mean() <= 0.1  # deletion alone does nothing
    assert victim.predict(test)[idx].mean() >= 0.75  # the clean task is still learned
    assert (victim.predict(attacked)[idx] == 0).mean() >= 0.9  # ASR
