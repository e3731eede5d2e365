"""Every component at a 24-hour and a 48-hour observation window (`Cohort.window`).

T, the number of hourly bins, comes from the cohort a component is fit on; fitted state records it
and refuses cohorts of another window; saved triggers and victims keep it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ehrbackdoor.attacks import ThreatModel, attack_test, make_trigger, poison
from ehrbackdoor.attacks.mask_vae import MaskVAE
from ehrbackdoor.attacks.masks import observation_masks
from ehrbackdoor.attacks.triggers import TRIGGERS
from ehrbackdoor.attacks.triggers.base import load_trigger
from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import physionet2012_schema
from ehrbackdoor.defences import DEFENCES, make_defence
from ehrbackdoor.defences.strip import superimpose
from ehrbackdoor.preprocess.features import hourly_features, window_features
from ehrbackdoor.preprocess.grid import discretize, grid_raw
from ehrbackdoor.victims import load_victim, make_victim
from tests.attacks.conftest import random_cohort

WINDOWS = (24.0, 48.0)
TINY_VICTIMS = {
    "lr": {},
    "gbdt": {"max_iter": 10},
    "mlp": {"max_epochs": 2, "hidden": 8},
    "gru": {"max_epochs": 1, "hidden": 8},
    "lstm": {"max_epochs": 1, "hidden": 8},
    "grud": {"max_epochs": 1, "hidden": 8},
}


def windowed(window: float, n: int = 90, seed: int = 0, beyond: bool = False) -> Cohort:
    """A random PhysioNet-schema cohort whose events lie in [0, window] (`beyond`: some after)."""
    c = random_cohort(physionet2012_schema(), n=n, per_stay=100, seed=seed)
    top = window * (1.25 if beyond else 1.0)
    time = np.round(c.events.time * (top / 48.0) * 60) / 60
    ev = Events.from_flat(c.events.stay, n, time, c.events.variable, c.events.value)
    return replace(c, events=ev, window=window)


@pytest.fixture(scope="module", params=WINDOWS, ids=lambda w: f"{w:g}h")
def cohort(request) -> Cohort:
    return windowed(request.param)


@pytest.fixture(scope="module")
def other(cohort) -> Cohort:
    """A cohort of the other window (what fitted state must refuse)."""
    return windowed(72.0 - cohort.window, seed=1)


def t_of(c: Cohort) -> int:
    return int(c.window)


# ------------------------------------------------------------------------------ preprocessing
def test_grids_span_the_cohort_window(cohort):
    t, f = t_of(cohort), len(cohort.schema)
    g = discretize(cohort)
    assert g.values.shape == (cohort.n_stays, t, f) and g.hours == cohort.window
    assert grid_raw(cohort).mask.shape == (cohort.n_stays, t, f)
    assert observation_masks(cohort).shape == (cohort.n_stays, t, f)
    assert discretize(cohort, hours=12.0).values.shape[1] == 12  # an explicit window still wins


def test_events_after_the_window_are_left_out():
    c = windowed(24.0, beyond=True)
    assert c.events.time.max() > 25.0
    e = c.events
    keep = e.time < 24.0 + 1e-6
    stay = e.stay[keep]
    inside = replace(
        c, events=Events.from_flat(stay, c.n_stays, e.time[keep], e.variable[keep], e.value[keep])
    )
    np.testing.assert_array_equal(window_features(c).X, window_features(inside).X)
    np.testing.assert_array_equal(discretize(c).values, discretize(inside).values)
    np.testing.assert_array_equal(c.missing_fraction(), inside.missing_fraction())
    assert c.summary()["window_hours"] == 24.0
    # math.inf keeps every event: the late ones then change the statistics
    assert not np.array_equal(
        np.nan_to_num(window_features(c, hours=np.inf).X), np.nan_to_num(window_features(c).X)
    )


def test_first_hours_makes_a_shorter_window():
    c48 = windowed(48.0)
    c24 = c48.first_hours(24)
    assert c24.window == 24.0 and c24.events.time.max() <= 24.0 + 1e-6
    assert c24.n_stays == c48.n_stays and c24.content_hash() != c48.content_hash()
    np.testing.assert_array_equal(discretize(c24).values, discretize(c48, hours=24).values)
    np.testing.assert_array_equal(window_features(c24).X, window_features(c48, hours=24).X)
    with pytest.raises(ValueError, match="hours must be in"):
        c24.first_hours(48)


def test_grid_scaler_refuses_another_window():
    from ehrbackdoor.preprocess.scaling import GridScaler

    g24, g48 = discretize(windowed(24.0)), discretize(windowed(48.0))
    sc = GridScaler().fit(g24)
    back = GridScaler.from_state(sc.get_state())
    np.testing.assert_array_equal(back.transform(g24).values, sc.transform(g24).values)
    for s in (sc, back):
        with pytest.raises(ValueError, match="24-hour window"):
            s.transform(g48)


def test_hourly_sub_windows_scale_with_the_window(cohort):
    f = hourly_features(cohort)
    counts = f.X.reshape(cohort.n_stays, len(cohort.schema), 7, 6)[0, 0, :, 5]
    t = t_of(cohort)
    # all, first 10/25/50 %, last 10/25/50 % of the T bins at times 0..T-1
    expect = {24: [24, 3, 6, 12, 3, 6, 12], 48: [48, 5, 12, 24, 5, 12, 24]}[t]
    assert counts.tolist() == expect
    assert not np.isnan(f.X).any()


# ------------------------------------------------------------------------------ triggers
TRIGGER_PARAMS = {
    "full-cov": {"variables": ["HR", "Temp", "Na"]},
    "missing-vae": {"epochs": 2, "latent_dim": 4, "n_candidates": 40},
}


@pytest.mark.parametrize("name", list(TRIGGERS))
def test_every_trigger_fits_and_poisons_at_the_window(name, cohort, other, tmp_path):
    trig = make_trigger(name, seed=2, **TRIGGER_PARAMS.get(name, {})).fit(cohort)
    assert trig.window_ == cohort.window
    pattern = getattr(trig, "pattern_", None)
    if pattern is not None:
        assert pattern.shape == (t_of(cohort), len(cohort.schema))
    for mode in trig.apply_modes[:2]:
        p = poison(cohort, trig, ThreatModel(rate=0.1, apply=mode))
        assert p.cohort.window == cohort.window and len(p.indices) > 0
        # new observations never fall outside the window
        assert p.cohort.events.time.max() <= cohort.window + 1e-6
    trig.save(tmp_path)
    back = load_trigger(tmp_path)
    assert back.window_ == cohort.window
    idx = np.arange(5)
    a, b = trig.apply(cohort, idx), back.apply(cohort, idx)
    np.testing.assert_array_equal(a.value, b.value)
    with pytest.raises(ValueError, match="window"):
        trig.apply(other, idx)
    with pytest.raises(ValueError, match="window"):
        attack_test(other, trig, ThreatModel(apply=trig.apply_modes[0]))


def test_grid_space_pattern_has_the_window_bins(cohort):
    trig = make_trigger("temporal", seed=1).fit(cohort)
    p = poison(cohort, trig, ThreatModel(rate=0.1, space="grid", apply="all"))
    g0, g = discretize(cohort), discretize(p.cohort)
    assert g.values.shape[1] == t_of(cohort)
    assert not np.array_equal(g0.values[p.indices], g.values[p.indices])


@pytest.mark.parametrize("name", ["fixed", "missing-block"])
def test_hours_beyond_the_window_is_a_clear_error(name):
    c = windowed(24.0)
    make_trigger(name, hours=24).fit(c)
    with pytest.raises(ValueError, match="24 hourly bins"):
        make_trigger(name, hours=30).fit(c)


# ------------------------------------------------------------------------------ mask VAE
@pytest.mark.parametrize("steps", [24, 30, 48])
def test_mask_vae_any_number_of_steps(steps, tmp_path):
    rng = np.random.default_rng(0)
    masks = rng.random((40, steps, 5)) < np.linspace(0.1, 0.9, 5)
    vae = MaskVAE(latent_dim=3, hidden=4, epochs=2, seed=0).fit(masks)
    assert vae.n_steps_ == steps
    assert vae.reconstruct(masks[:3]).shape == (3, steps, 5)
    assert vae.sample_prior(2).shape == (2, steps, 5)
    back = MaskVAE.load(vae.save(tmp_path))
    np.testing.assert_array_equal(back.reconstruct(masks[:3]), vae.reconstruct(masks[:3]))
    wrong = rng.random((4, steps + 4, 5)) < 0.5
    with pytest.raises(ValueError, match="hourly steps"):
        vae.encode(wrong)


# ------------------------------------------------------------------------------ detectors
@pytest.fixture(scope="module")
def poisoned_and_victim(cohort):
    trig = make_trigger("fixed", variable="HR", value=300.0, hours=t_of(cohort)).fit(cohort)
    p = poison(cohort, trig, ThreatModel(rate=0.1, apply="all"))
    victim = make_victim("lr", seed=0).fit(p.cohort, windowed(cohort.window, seed=7))
    return p, victim


@pytest.mark.parametrize("name", list(DEFENCES))
def test_every_detector_scores_at_the_window(name, cohort, poisoned_and_victim):
    p, victim = poisoned_and_victim
    scores = make_defence(name).score(
        p.cohort, victim=victim, reference=windowed(cohort.window, n=40, seed=9)
    )
    assert scores.shape == (cohort.n_stays,) and np.isfinite(scores).all()


def test_strip_refuses_donors_of_another_window(cohort, other):
    with pytest.raises(ValueError, match="window"):
        superimpose(cohort, np.arange(3), other, np.arange(3))


# ------------------------------------------------------------------------------ victims
@pytest.mark.parametrize("name", list(TINY_VICTIMS))
def test_every_victim_fits_and_predicts_at_the_window(name, cohort, other, tmp_path):
    val = windowed(cohort.window, n=60, seed=3)
    v = make_victim(name, seed=0, **TINY_VICTIMS[name]).fit(cohort, val)
    assert v.window_ == cohort.window
    p = v.predict_proba(val)
    assert p.shape == (val.n_stays,) and np.isfinite(p).all()
    with pytest.raises(ValueError, match="window"):
        v.predict_proba(other)
    back = load_victim(v.save(tmp_path))
    assert back.window_ == cohort.window
    np.testing.assert_allclose(back.predict_proba(val), p, rtol=1e-6, atol=1e-9)


def test_victim_refuses_train_and_val_of_different_windows(cohort, other):
    with pytest.raises(ValueError, match="different windows"):
        make_victim("lr").fit(cohort, other)


# ------------------------------------------------------------------------------ device option
@pytest.mark.parametrize("name", ["mlp", "gru", "lstm", "grud"])
def test_device_parameter_is_validated(name):
    assert make_victim(name).device == "auto"
    with pytest.raises(ValueError, match="device must be one of"):
        make_victim(name, device="tpu")


def test_device_cpu_matches_auto_on_a_cpu_machine():
    if torch.cuda.is_available():
        pytest.skip("auto means CUDA here")
    c, val = windowed(24.0), windowed(24.0, n=60, seed=3)
    a = make_victim("gru", hidden=8, max_epochs=1, device="auto").fit(c, val).predict_proba(val)
    b = make_victim("gru", hidden=8, max_epochs=1, device="cpu").fit(c, val).predict_proba(val)
    np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_cuda_is_a_clear_error():
    c, val = windowed(24.0), windowed(24.0, n=60, seed=3)
    with pytest.raises(ValueError, match="device='cuda' was requested"):
        make_victim("mlp", hidden=8, max_epochs=1, device="cuda").fit(c, val)
    with pytest.raises(ValueError, match="device='cuda' was requested"):
        MaskVAE(epochs=1, device="cuda").fit(np.zeros((8, 24, 3), dtype=bool))
    with pytest.raises(ValueError, match="device must be one of"):
        MaskVAE(device="gpu")


def test_cohort_cache_file_keeps_the_window(tmp_path):
    from ehrbackdoor.data.cohort_cache import _arrays
    from ehrbackdoor.io import atomic_savez

    atomic_savez(tmp_path / "c.npz", _arrays(windowed(24.0)))  # what a cached data dir holds
    assert Cohort.load(tmp_path / "c.npz").window == 24.0
