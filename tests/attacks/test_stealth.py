from __future__ import annotations

import json

import numpy as np
import pytest

from ehrbackdoor.attacks import make_trigger
from ehrbackdoor.attacks.masks import observation_masks
from ehrbackdoor.attacks.stealth import mask_rarity_scores, missingness_stealth
from ehrbackdoor.data.schema import physionet2012_schema

from .conftest import random_cohort


@pytest.fixture(scope="module")
def setup():
    schema = physionet2012_schema()
    train = random_cohort(schema, n=120, per_stay=100, seed=0)
    test = random_cohort(schema, n=60, per_stay=100, seed=1)
    trig = make_trigger("missing-vae", latent_dim=4, n_candidates=40, epochs=3, seed=0).fit(train)
    return train, test, trig


def test_rarity_scores_flag_about_five_percent_of_training(setup):
    train, _, trig = setup
    m = observation_masks(train)
    for vae in (None, trig.vae_):
        scores, thr = mask_rarity_scores(m, m, vae)
        assert scores.shape == (len(m),)
        assert 0.02 <= np.mean(scores > thr) <= 0.06
    # a mask with every cell observed is far rarer than any real one
    full = np.ones((1, *m.shape[1:]), dtype=bool)
    s_full, thr = mask_rarity_scores(m, full)
    assert s_full[0] > thr


@pytest.mark.parametrize("mode", ["delete", "exact"])
def test_stealth_report(setup, mode):
    train, test, trig = setup
    idx = np.arange(0, test.n_stays, 2)
    triggered = test.replace_events(idx, trig.apply(test, idx, mode)).subset(idx)
    rep = missingness_stealth(test, triggered, trig.vae_, trig.pattern_, reference=train)
    json.dumps(rep)  # plain JSON
    assert rep["n_triggered"] == len(idx) and rep["n_clean"] == test.n_stays
    assert set(rep) >= {"elbo", "missing_rate", "nn_hamming", "rarity_detector"}
    assert 0 <= rep["elbo"]["pattern_percentile"] <= 1
    assert set(rep["rarity_detector"]) == {"cell_bernoulli", "vae_elbo", "low_density"}
    shifts = [v["shift"] for v in rep["missing_rate"]["per_variable"].values()]
    if mode == "delete":
        assert min(shifts) >= -1e-12  # deleting can only raise missing rates
        assert rep["density"]["triggered"] <= rep["density"]["clean"]
    else:
        assert rep["exact_match_share"] == 1.0
        # every triggered stay has the same mask: its nearest other stay is as far as the pattern's
        assert rep["nn_hamming"]["triggered"]["median"] >= 0


def test_no_trigger_means_no_shift(setup):
    _, test, trig = setup
    rep = missingness_stealth(test, test, None, trig.pattern_)
    assert rep["elbo"] is None
    assert rep["missing_rate"]["max_abs_shift"] == 0.0
    det = rep["rarity_detector"]["cell_bernoulli"]
    assert det["clean_flagged"] == det["triggered_flagged"]
    assert rep["nn_hamming"]["clean"]["median"] == rep["nn_hamming"]["triggered"]["median"]
