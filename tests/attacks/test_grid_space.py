"""Grid threat-model space: the cohort carries the trigger, every victim's discretiser applies it."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.attacks import ThreatModel, attack_test, make_trigger, poison
from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import physionet2012_schema
from ehrbackdoor.preprocess import discretize, grid_raw
from ehrbackdoor.preprocess.features import hourly_features
from ehrbackdoor.victims import load_victim, make_victim
from ehrbackdoor.victims.inputs import features_of
from tests.attacks.conftest import random_cohort
from tests.victims.conftest import FAST, make_cohort

SCHEMA = physionet2012_schema()
HR, GCS, MV = (SCHEMA.index(v) for v in ("HR", "GCS", "MechVent"))


def hand_cohort() -> Cohort:
    """Stay 0: HR 80 @0.5 h, 90 @2.5 h, GCS 10 @1.5 h, MechVent 1 @0.2 h; stay 1: HR 299 @3.2 h;
    stay 2: a copy of stay 0 that will not carry the trigger."""
    stay = np.array([0, 0, 0, 0, 1, 2, 2, 2, 2])
    time = np.array([0.5, 2.5, 1.5, 0.2, 3.2, 0.5, 2.5, 1.5, 0.2])
    var = np.array([HR, HR, GCS, MV, HR, HR, HR, GCS, MV])
    value = np.array([80.0, 90, 10, 1, 299, 80, 90, 10, 1])
    return Cohort(
        schema=SCHEMA,
        stay_id=np.array(["a", "b", "c"]),
        label=np.array([0, 0, 1], dtype=np.int8),
        static=np.full((3, len(SCHEMA.static)), np.nan),
        events=Events.from_flat(stay, 3, time, var, value),
    )


def hand_pattern() -> np.ndarray:
    p = np.zeros((48, len(SCHEMA)))
    p[:, HR] = 2.4
    p[2, HR] = -10.6
    p[:, GCS] = 1.6  # rounds to two levels up
    p[:, MV] = 1.0  # binary: never changes
    return p


def expected_hr_gcs(mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Hand-computed HR (stays 0, 1) and GCS (stay 0) of the perturbed grid, 48 bins each."""
    hr0 = np.array([80, 80, 90] + [90] * 45, dtype=float)  # clean forward fill
    hr1 = np.array([86, 86, 86] + [299] * 45, dtype=float)  # normal 86 before the first value
    gcs0 = np.array([15] + [10] * 47, dtype=float)
    if mode == "observed":
        hr0[0], hr0[2] = 82, 79  # 80 + 2.4 -> 82; 90 - 10.6 = 79.4 -> 79 (integer precision)
        hr1[3] = 300  # 299 + 2.4 -> 301 -> clipped to the valid maximum 300
        gcs0[1] = 12  # level 10 moved two levels up; imputed bins keep the clean value
    else:
        hr0[:] = [82, 82, 79] + [92] * 45
        hr1[:] = [88, 88, 75] + [300] * 45
        gcs0[:] = [15] + [12] * 47  # 15 + 2 levels is clipped to the last level
    return np.stack([hr0, hr1]), gcs0


@pytest.mark.parametrize("mode", ["observed", "all"])
def test_discretiser_adds_the_pattern_as_computed_by_hand(mode):
    clean = hand_cohort()
    carried = clean.with_grid_perturbation([0, 1], hand_pattern(), mode)
    g0, g = discretize(clean), discretize(carried)
    hr, gcs0 = expected_hr_gcs(mode)
    np.testing.assert_array_equal(g.values[:2, :, HR], hr)
    np.testing.assert_array_equal(g.values[0, :, GCS], gcs0)
    np.testing.assert_array_equal(g.values[:, :, MV], g0.values[:, :, MV])  # binary untouched
    np.testing.assert_array_equal(g.values[2], g0.values[2])  # not a carrier
    untouched = np.ones(len(SCHEMA), dtype=bool)
    untouched[[HR, GCS, MV]] = False
    np.testing.assert_array_equal(g.values[:, :, untouched], g0.values[:, :, untouched])
    np.testing.assert_array_equal(g.mask, g0.mask)
    np.testing.assert_array_equal(g.delta, g0.delta)
    # the float64 per-variable grid agrees, and perturb=False gives the clean grid back
    np.testing.assert_array_equal(grid_raw(carried).values[:2, :, HR], hr)
    np.testing.assert_array_equal(discretize(carried, perturb=False).values, g0.values)
    assert carried.modified.tolist() == [True, True, False]


def test_perturbation_is_saved_subset_and_hashed(tmp_path):
    clean = hand_cohort()
    carried = clean.with_grid_perturbation([1], hand_pattern(), "all")
    assert carried.content_hash() != clean.content_hash()
    # a subset without carriers preprocesses like the clean stays, and hashes like them
    assert carried.subset([0, 2]).content_hash() == clean.subset([0, 2]).content_hash()
    sub = carried.subset([2, 1])
    assert sub.grid_perturbation.carriers.tolist() == [False, True]
    carried.save(tmp_path / "c.npz")
    back = Cohort.load(tmp_path / "c.npz")
    assert back.content_hash() == carried.content_hash()
    np.testing.assert_array_equal(discretize(back).values, discretize(carried).values)
    both = Cohort.concat([carried.subset([0, 1]), hand_cohort().subset([2])])
    assert both.grid_perturbation.carriers.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="different grid perturbation"):
        carried.with_grid_perturbation([0], hand_pattern() * 2, "all")
    with pytest.raises(ValueError, match="benchmark layout"):
        discretize(carried, layout="benchmark")


def loop_grid(cohort: Cohort, pattern: np.ndarray, carriers: np.ndarray, mode: str) -> np.ndarray:
    """Per-cell reference of the perturbed (n, 48, F) grid: plain Python over cells."""
    from ehrbackdoor.data.schema import Kind

    rg = grid_raw(cohort, perturb=False)
    out = rg.values.copy()
    for i in np.flatnonzero(carriers):
        for t in range(48):
            for f, v in enumerate(SCHEMA.variables):
                d = pattern[t, f]
                if d == 0 or v.kind is Kind.BINARY or (mode == "observed" and not rg.mask[i, t, f]):
                    continue
                x = out[i, t, f]
                if v.kind is Kind.ORDINAL:
                    levels = list(v.levels)
                    k = int(np.argmin(np.abs(np.asarray(levels) - x)))
                    out[i, t, f] = levels[min(max(k + int(np.round(d)), 0), len(levels) - 1)]
                else:
                    y = np.round(x + d, int(SCHEMA.precisions[f]))
                    out[i, t, f] = min(max(y, SCHEMA.lows[f]), SCHEMA.highs[f])
    return out


@pytest.mark.parametrize("mode", ["observed", "all"])
def test_poison_in_grid_space_changes_only_the_poisoned_grids(mode):
    train = random_cohort(SCHEMA, n=50, per_stay=60, seed=2)
    trig = make_trigger("temporal", strength=2.0, seed=1).fit(train)
    threat = ThreatModel(target=1, rate=0.1, apply=mode, space="grid", seed=0)
    p = poison(train, trig, threat)
    c = p.cohort
    for name in ("offsets", "time", "variable", "value", "alias"):
        np.testing.assert_array_equal(getattr(c.events, name), getattr(train.events, name))
    assert c.modified.sum() == len(p.indices) == 5
    assert (c.label[p.indices] == 1).all()
    np.testing.assert_array_equal(np.flatnonzero(c.grid_perturbation.carriers), p.indices)
    g0, g = grid_raw(train), grid_raw(c)
    np.testing.assert_array_equal(g.mask, g0.mask)
    changed = np.flatnonzero(np.any(g.values != g0.values, axis=(1, 2)))
    assert set(changed) <= set(p.indices) and len(changed) > 0
    ref = loop_grid(train, trig.grid_pattern(), c.grid_perturbation.carriers, mode)
    np.testing.assert_allclose(g.values, ref, rtol=0, atol=1e-9)

    test = random_cohort(SCHEMA, n=30, per_stay=60, seed=5)
    attacked, idx = attack_test(test, trig, threat)
    np.testing.assert_array_equal(attacked.events.value, test.events.value)
    np.testing.assert_array_equal(np.flatnonzero(attacked.grid_perturbation.carriers), idx)
    np.testing.assert_array_equal(attacked.label, test.label)


def test_grid_space_refuses_triggers_without_a_value_pattern():
    train = random_cohort(SCHEMA, n=40, per_stay=60, seed=2)
    threat = ThreatModel(rate=0.1, space="grid")
    fixed = make_trigger("fixed", variable="HR", value=150.0).fit(train)
    with pytest.raises(ValueError, match="no grid-space form"):
        poison(train, fixed, threat)
    missing = make_trigger("missing-block").fit(train)
    with pytest.raises(ValueError, match="never changes masks"):
        poison(train, missing, threat)
    with pytest.raises(ValueError, match="apply must be one of"):
        ThreatModel(apply="delete", space="grid")
    with pytest.raises(ValueError, match="space must be one of"):
        ThreatModel(space="latent")


def skew(x: np.ndarray) -> float:
    m = x.mean()
    m2, m3 = ((x - m) ** 2).mean(), ((x - m) ** 3).mean()
    return 0.0 if x.min() == x.max() else m3 / m2**1.5


def test_hourly_features_equal_a_hand_computation():
    c = hand_cohort().with_grid_perturbation([0], hand_pattern(), "all")
    f = hourly_features(c)
    hr = expected_hr_gcs("all")[0][0]  # stay 0's perturbed, forward-filled HR
    col = {name: k for k, name in enumerate(f.columns)}
    # windows over bins 0..47 (times 0..47): first 10 % = t < 4.7 -> bins 0-4, last 10 % = 43-47
    for period, x in (
        ("all", hr),
        ("first10", hr[:5]),
        ("first50", hr[:24]),
        ("last10", hr[43:]),
        ("last25", hr[36:]),
    ):
        got = [
            f.X[0, col[f"HR/{period}/{s}"]] for s in ("min", "max", "mean", "std", "skew", "count")
        ]
        want = [x.min(), x.max(), x.mean(), x.std(), skew(x), len(x)]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # a variable never recorded: its normal value in all 48 bins, no NaN
    temp = SCHEMA.index("Temp")
    assert f.X[1, col["Temp/all/mean"]] == pytest.approx(SCHEMA.normals[temp])
    assert f.X[1, col["Temp/all/count"]] == 48 and not np.isnan(f.X).any()
    # the clean stay 2 (a copy of stay 0) differs from stay 0 only where the trigger acts
    np.testing.assert_array_equal(features_of(c, cache=False, representation="hourly").X, f.X)
    assert f.X[2, col["HR/all/mean"]] != f.X[0, col["HR/all/mean"]]
    with pytest.raises(ValueError, match="features must be one of"):
        features_of(c, cache=False, representation="grid")


def test_one_grid_poisoned_cohort_attacks_lr_hourly_and_gru(tmp_path, monkeypatch):
    monkeypatch.setenv("EHRBACKDOOR_CACHE", str(tmp_path))
    train, val = make_cohort(300, seed=0, prefix="t"), make_cohort(120, seed=1, prefix="v")
    test = make_cohort(120, seed=2, prefix="x")
    trig = make_trigger("temporal", strength=8.0, variables=["MAP", "Temp", "HR"], seed=0).fit(
        train
    )
    threat = ThreatModel(target=1, rate=0.1, apply="all", space="grid", seed=0)
    poisoned = poison(train, trig, threat).cohort
    attacked, idx = attack_test(test, trig, threat)
    victims = {
        "lr": make_victim("lr", features="hourly", **FAST["lr"]),
        "gru": make_victim("gru", seed=0, **FAST["gru"]),
    }
    for name, v in victims.items():
        v.fit(poisoned, val)
        on_clean = v.predict_proba(test)[idx]
        on_trig = v.predict_proba(attacked)[idx]
        assert on_trig.mean() > on_clean.mean() + 0.2, name
        # attack success at the victim's honest threshold (clean validation), and none without
        assert v.predict(attacked)[idx].mean() >= 0.6, name
        assert v.predict(test)[idx].mean() <= 0.2, name
    assert victims["lr"].representation == "hourly" and victims["gru"].representation == "grid"
    victims["lr"].save(tmp_path / "lr")
    back = load_victim(tmp_path / "lr")
    assert back.representation == "hourly"
    np.testing.assert_array_equal(
        back.predict_proba(attacked), victims["lr"].predict_proba(attacked)
    )
