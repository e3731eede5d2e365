"""Imputation consistency: known answers on clean, raw-poisoned and grid-poisoned cohorts."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.attacks import ThreatModel, make_trigger, poison
from ehrbackdoor.data.schema import physionet2012_schema
from ehrbackdoor.defences import DEFENCES, make_defence
from ehrbackdoor.metrics import auroc
from ehrbackdoor.preprocess import grid_raw
from tests.attacks.conftest import random_cohort

SCHEMA = physionet2012_schema()


@pytest.fixture(scope="module")
def clean():
    return random_cohort(SCHEMA, n=80, per_stay=100, seed=4)


def test_registered_as_a_data_detector():
    assert DEFENCES["imputation-consistency"].family == "data"
    with pytest.raises(ValueError, match="impute"):
        make_defence("imputation-consistency", impute="mean")


@pytest.mark.parametrize("impute", ["previous", "normal", "zero"])
def test_clean_cohort_scores_zero_everywhere(clean, impute):
    det = make_defence("imputation-consistency", impute=impute)
    np.testing.assert_array_equal(det.score(clean), np.zeros(clean.n_stays))
    assert det.info_["n_stays_flagged"] == 0


def test_raw_space_poison_is_invisible(clean):
    trig = make_trigger("temporal", strength=3.0, seed=0).fit(clean)
    p = poison(clean, trig, ThreatModel(rate=0.1, apply="all", seed=0))
    assert p.cohort.grid_perturbation is None
    for measure in ("count", "magnitude"):
        det = make_defence("imputation-consistency", measure=measure)
        assert np.all(det.score(p.cohort) == 0)


def one_cell(clean, observed: bool):
    """A grid perturbation of exactly one (stay, hour, HR) cell, observed or imputed."""
    hr = SCHEMA.index("HR")
    mask = grid_raw(clean).mask[:, :, hr]
    stay, hour = np.argwhere(mask if observed else ~mask)[7]
    pattern = np.zeros((48, len(SCHEMA)))
    pattern[hour, hr] = 5.0
    mode = "observed" if observed else "all"
    return clean.with_grid_perturbation([stay], pattern, mode), stay, hour, hr


@pytest.mark.parametrize("observed", [False, True])
def test_one_perturbed_cell_is_found(clean, observed):
    cohort, stay, hour, hr = one_cell(clean, observed)
    det = make_defence("imputation-consistency")
    s = det.score(cohort)
    want = np.zeros(clean.n_stays)
    want[stay] = 1.0  # counted once, where it was changed
    np.testing.assert_array_equal(s, want)
    bad_obs, bad_imp, deviation = det.cell_violations(cohort)
    bad = bad_obs if observed else bad_imp
    assert np.argwhere(bad).tolist() == [[stay, hour, hr]]
    assert not (bad_imp if observed else bad_obs).any()
    assert deviation[stay, hour, hr] == pytest.approx(5.0)
    assert det.info_["top_variables"] == {"HR": 1}
    mag = make_defence("imputation-consistency", measure="magnitude").score(cohort)
    assert mag[stay] > 0 and np.count_nonzero(mag) == 1


@pytest.mark.parametrize("mode", ["observed", "all"])
def test_grid_space_poison_is_separated(clean, mode):
    trig = make_trigger("temporal", strength=2.0, seed=0).fit(clean)
    p = poison(clean, trig, ThreatModel(rate=0.1, apply=mode, space="grid", seed=0))
    s = make_defence("imputation-consistency").score(p.cohort)
    truth = np.zeros(clean.n_stays, dtype=int)
    truth[p.indices] = 1
    assert auroc(truth, s) >= 0.99
    assert np.all(s[truth == 0] == 0)
