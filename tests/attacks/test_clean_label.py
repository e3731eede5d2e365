"""Clean-label threat model: `selection="target"` poisons only stays that already have the
target label, so no label changes."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.attacks import ThreatModel, make_trigger, poison
from ehrbackdoor.data.schema import physionet2012_schema

from .conftest import random_cohort


@pytest.fixture()
def train():
    return random_cohort(physionet2012_schema(), n=300, per_stay=40, seed=3)


@pytest.mark.parametrize("target", [0, 1])
def test_clean_label_poisoning_changes_no_label(train, target):
    trig = make_trigger("temporal", strength=2.0).fit(train)
    p = poison(train, trig, ThreatModel(target=target, rate=0.05, selection="target", seed=4))
    assert len(p.indices) == round(0.05 * 300)
    assert (train.label[p.indices] == target).all()
    assert np.array_equal(p.cohort.label, train.label)
    # the trigger itself is written: the poisoned stays' values changed, the others did not
    assert np.array_equal(np.flatnonzero(p.cohort.modified), p.indices)
    before = train.subset(p.indices).events.value
    after = p.cohort.subset(p.indices).events.value
    assert (before != after).any()


def test_clean_label_needs_enough_target_stays(train):
    trig = make_trigger("temporal").fit(train)
    n_target = int((train.label == 1).sum())
    rate = (n_target + 5) / train.n_stays
    with pytest.raises(ValueError, match="candidates"):
        poison(train, trig, ThreatModel(target=1, rate=rate, selection="target"))


def test_selection_rejects_unknown():
    with pytest.raises(ValueError, match="selection"):
        ThreatModel(selection="clean")
