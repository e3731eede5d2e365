"""`mask-duplicates`: exact-mode missingness poison is many copies of one mask."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor import metrics
from ehrbackdoor.attacks import ThreatModel, make_trigger, poison
from ehrbackdoor.data.schema import physionet2012_schema
from ehrbackdoor.defences import make_defence
from tests.attacks.conftest import random_cohort


@pytest.fixture(scope="module")
def pool():
    return random_cohort(physionet2012_schema(), n=300, per_stay=150, seed=5)


def _poisoned(pool, mode: str):
    trig = make_trigger("missing-random", seed=1).fit(pool)
    return poison(pool, trig, ThreatModel(target=0, rate=0.05, apply=mode, seed=2)).cohort


def test_exact_copies_are_found_and_delete_is_not(pool):
    det = make_defence("mask-duplicates")
    exact = _poisoned(pool, "exact")
    s = det.score(exact)
    y = exact.modified.astype(np.int64)
    assert metrics.auroc(y, s) == 1.0
    assert np.all(s[y == 1] == y.sum() - 1) and np.all(s[y == 0] == 0)
    assert det.info_["largest_group"] == y.sum()
    delete = _poisoned(pool, "delete")
    assert metrics.auroc(delete.modified.astype(np.int64), det.score(delete)) == 0.5


def test_near_copies_and_near_empty_masks(pool):
    exact = _poisoned(pool, "exact")
    y = exact.modified.astype(np.int64)
    # within a Hamming radius the copies are still one group; identical scores to radius 0 here
    near = make_defence("mask-duplicates", max_hamming=3).score(exact)
    assert metrics.auroc(y, near) == 1.0 and np.all(near[y == 1] >= y.sum() - 1)
    # a mask must have min_cells observed cells to count: an impossible floor scores nothing
    none = make_defence("mask-duplicates", min_cells=10**6).score(exact)
    assert np.all(none == 0)
    with pytest.raises(ValueError, match="max_hamming"):
        make_defence("mask-duplicates", max_hamming=-1)


def test_clean_real_stays_share_no_mask(physionet_cohort):
    """On real PhysioNet 2012 training stays nothing is flagged (no false positives)."""
    s = make_defence("mask-duplicates").score(physionet_cohort)
    assert np.all(s == 0)
