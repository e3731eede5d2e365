from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.attacks import ThreatModel, attack_test, make_trigger, poison
from ehrbackdoor.data.schema import physionet2012_schema

from .conftest import random_cohort


@pytest.fixture()
def train():
    return random_cohort(physionet2012_schema(), n=400, per_stay=40, seed=1)


@pytest.mark.parametrize("target", [0, 1])
def test_exact_count_and_only_non_target_stays(train, target):
    trig = make_trigger("temporal", strength=1.0).fit(train)
    p = poison(train, trig, ThreatModel(target=target, rate=0.05, seed=2))
    assert len(p.indices) == round(0.05 * 400)
    assert (train.label[p.indices] != target).all()
    assert (p.cohort.label[p.indices] == target).all()
    assert np.array_equal(np.flatnonzero(p.cohort.modified), p.indices)
    others = np.setdiff1d(np.arange(400), p.indices)
    assert np.array_equal(p.cohort.label[others], train.label[others])
    assert p.stay_ids.tolist() == train.stay_id[p.indices].tolist()
    assert not train.modified.any()


def test_any_selection_may_pick_target_label(train):
    trig = make_trigger("temporal").fit(train)
    p = poison(train, trig, ThreatModel(target=0, rate=0.5, selection="any", seed=0))
    assert (train.label[p.indices] == 0).any() and (train.label[p.indices] == 1).any()


def test_seeded_selection(train):
    trig = make_trigger("temporal").fit(train)
    a = poison(train, trig, ThreatModel(rate=0.05, seed=1)).indices
    b = poison(train, trig, ThreatModel(rate=0.05, seed=1)).indices
    c = poison(train, trig, ThreatModel(rate=0.05, seed=2)).indices
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_attack_test_leaves_clean_test_untouched(train):
    test = random_cohort(physionet2012_schema(), n=100, per_stay=40, seed=9)
    before = test.content_hash()
    trig = make_trigger("temporal").fit(train)
    attacked, idx = attack_test(test, trig, ThreatModel(target=1))
    assert test.content_hash() == before
    assert np.array_equal(idx, np.flatnonzero(test.label == 0))
    assert np.array_equal(attacked.label, test.label)
    assert np.array_equal(np.flatnonzero(attacked.modified), idx)


def test_threat_model_validation(train):
    for kwargs, msg in [
        ({"target": 2}, "target"),
        ({"rate": 0}, "rate"),
        ({"selection": "x"}, "selection"),
        ({"apply": "x"}, "apply"),
    ]:
        with pytest.raises(ValueError, match=msg):
            ThreatModel(**kwargs)
    trig = make_trigger("temporal").fit(train)
    with pytest.raises(ValueError, match="poisons no stay"):
        poison(train, trig, ThreatModel(rate=0.0001))
