from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.data.schema import mimic3_schema
from ehrbackdoor.defences import DEFENCES, FAMILIES, make_defence, parse_defences
from ehrbackdoor.defences.evaluate import detection_metrics
from tests.attacks.conftest import random_cohort
from tests.defences.conftest import structured_cohort

DATA_LEVEL = [n for n, c in DEFENCES.items() if not c.needs_victim]
#: Lighter settings where the defaults only cost time (the known-answer tests use the defaults).
LIGHT = {
    "isolation-forest": {"n_estimators": 20},
    "two-sample": {"n_folds": 3, "n_components": 20},
    "mask-rarity": {"n_folds": 3, "n_iter": 30},
}
MODEL_LEVEL = [n for n, c in DEFENCES.items() if c.needs_victim]


# ------------------------------------------------------------------------------ registry
def test_registry_names_families_and_params_round_trip():
    assert {"isolation-forest", "lof", "range-check", "mask-rarity", "two-sample"} <= set(DEFENCES)
    assert {"spectral", "activation-clustering", "strip", "perfect", "random"} <= set(DEFENCES)
    for name, cls in DEFENCES.items():
        det = make_defence(name, seed=3)
        assert det.name == name and cls.family in FAMILIES
        params = det.get_params()
        assert params["seed"] == 3
        again = make_defence(name, **params)
        assert again.get_params() == params
    assert set(MODEL_LEVEL) == {"spectral", "activation-clustering", "strip"}


def test_make_defence_rejects_unknown_names_and_bad_params():
    with pytest.raises(ValueError, match="unknown defence 'nope'"):
        make_defence("nope")
    with pytest.raises(ValueError, match="view"):
        make_defence("isolation-forest", view="pixels")
    with pytest.raises(ValueError, match="seed"):
        make_defence("range-check", seed=-1)
    with pytest.raises(
        ValueError,
        match="unknown parameter 'colour' for defence 'lof'; valid parameters: view, n_neighbors",
    ):
        make_defence("lof", colour="red")


def test_parse_defences():
    assert parse_defences("all") == list(DEFENCES)
    assert parse_defences("range-check, perfect,range-check") == ["range-check", "perfect"]
    assert parse_defences("model") == MODEL_LEVEL
    assert parse_defences(["reference"]) == ["perfect", "random"]
    with pytest.raises(ValueError, match="unknown defence 'pixels'"):
        parse_defences("range-check,pixels")
    with pytest.raises(ValueError, match="no defence"):
        parse_defences(" , ")


# ------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("name", DATA_LEVEL)
def test_data_level_scores_are_per_stay_finite_and_deterministic(name, blatant):
    cohort = blatant.cohort
    a = make_defence(name, seed=1, **LIGHT.get(name, {})).score(cohort)
    b = make_defence(name, seed=1, **LIGHT.get(name, {})).score(cohort)
    assert a.shape == (cohort.n_stays,) and a.dtype == np.float64
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", MODEL_LEVEL)
def test_model_level_scores_are_deterministic_and_need_a_victim(
    name, blatant, stub_victim, clean_reference
):
    cohort = blatant.cohort
    with pytest.raises(ValueError, match="inspects a model"):
        make_defence(name).score(cohort)
    a = make_defence(name, seed=2).score(cohort, stub_victim, reference=clean_reference)
    b = make_defence(name, seed=2).score(cohort, stub_victim, reference=clean_reference)
    assert a.shape == (cohort.n_stays,) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


def test_score_validates_its_inputs(blatant):
    det = make_defence("range-check")
    with pytest.raises(ValueError, match="must be a Cohort"):
        det.score("not a cohort")
    other = random_cohort(mimic3_schema(), n=5)
    with pytest.raises(ValueError, match="reference cohort uses schema 'mimic3'"):
        det.score(blatant.cohort, reference=other)


# ------------------------------------------------------------------------------ known answers
def test_blatant_trigger_is_found_by_range_check_and_isolation_forest(blatant):
    y = blatant.cohort.modified
    for name in ("range-check", "isolation-forest"):
        m = detection_metrics(y, make_defence(name).score(blatant.cohort))
        assert m["auroc"] >= 0.99, (name, m)


def test_range_check_ignores_plausible_values_and_counts_implausible_ones(blatant):
    det = make_defence("range-check")
    clean = blatant.cohort.subset(np.flatnonzero(~blatant.cohort.modified))
    s = det.score(clean)
    # Values of the random cohort are plausible normal draws: few stays score at all.
    assert np.mean(s > 0) < 0.2
    s_poison = det.score(blatant.cohort)[blatant.cohort.modified]
    assert s_poison.min() >= 48  # every hour's HR = 300 hits the (extreme) valid bound
    assert det.info_["variables"]["HR"]["high_bound_extreme"]
    assert not det.info_["variables"]["HR"]["low_bound_extreme"]


def test_reference_filters(blatant):
    cohort = blatant.cohort
    y = cohort.modified
    perfect = make_defence("perfect")
    m = detection_metrics(y, perfect.score(cohort))
    assert m == {"auroc": 1.0, "tpr_at_5fpr": 1.0, "precision_at_k": 1.0}
    assert perfect.removal_count(cohort, 100) == int(y.sum())
    aurocs = [
        detection_metrics(y, make_defence("random", seed=s).score(cohort))["auroc"]
        for s in range(30)
    ]
    assert abs(np.mean(aurocs) - 0.5) < 0.05
    assert make_defence("random").removal_count(cohort, 100) == int(y.sum())


@pytest.mark.parametrize("name", ["spectral", "activation-clustering", "strip"])
def test_model_level_detectors_find_a_learned_blatant_trigger(
    name, blatant, stub_victim, clean_reference
):
    s = make_defence(name).score(blatant.cohort, stub_victim, reference=clean_reference)
    assert detection_metrics(blatant.cohort.modified, s)["auroc"] >= 0.9


@pytest.mark.parametrize("name", ["mask-rarity", "isolation-forest-mask"])
def test_mask_detectors_flag_a_missingness_pattern_no_normal_stay_has(name):
    cohort = structured_cohort()
    s = make_defence(name).score(cohort)
    assert detection_metrics(cohort.modified, s)["auroc"] >= 0.95


def test_mask_rarity_keeps_only_components_shared_by_many_stays():
    cohort = structured_cohort(n_poison=16)  # 8 % poison: below the 10 % floor
    det = make_defence("mask-rarity", n_components=6)
    s = det.score(cohort)
    assert det.info_["n_components_kept"] <= 6
    assert detection_metrics(cohort.modified, s)["auroc"] >= 0.95
    # without the floor the poison claims a component of its own and hides
    loose = make_defence("mask-rarity", n_components=6, min_weight=0.0).score(cohort)
    assert detection_metrics(cohort.modified, loose)["auroc"] < 0.9


def test_two_sample_reports_its_statistic(blatant):
    det = make_defence("two-sample", n_folds=3, n_components=20)
    s = det.score(blatant.cohort)
    assert 0.0 <= s.min() and s.max() <= 1.0
    assert 0.0 <= det.info_["c2st_auroc"] <= 1.0
