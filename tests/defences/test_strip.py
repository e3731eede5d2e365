from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import physionet2012_schema
from ehrbackdoor.defences.strip import no_disk_cache, superimpose, threshold_entropy
from ehrbackdoor.preprocess.cache import ENV_DISABLE
from ehrbackdoor.preprocess.grid import grid_raw


def two_stays() -> Cohort:
    s = physionet2012_schema()
    hr, temp, na, gcs, mv = (s.index(v) for v in ("HR", "Temp", "Na", "GCS", "MechVent"))
    stay = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    time = [0.5, 1.5, 3.5, 4.5, 0.7, 2.5, 3.2, 4.9, 60.0]
    var = [hr, temp, gcs, mv, hr, na, gcs, mv, hr]
    val = [80.0, 37.0, 15.0, 0.0, 101.0, 140.0, 4.0, 1.0, 99.0]
    return Cohort(
        schema=s,
        stay_id=np.array(["a", "b"]),
        label=np.array([0, 1], dtype=np.int8),
        static=np.arange(10, dtype=float).reshape(2, 5),
        events=Events.from_flat(np.array(stay), 2, np.array(time), np.array(var), np.array(val)),
    )


def test_superimpose_unions_masks_and_blends_shared_cells():
    c = two_stays()
    s = c.schema
    blend = superimpose(c, np.array([0]), c, np.array([1]), alpha=0.5)
    assert blend.n_stays == 1
    assert blend.label[0] == 0
    np.testing.assert_array_equal(blend.static[0], c.static[0])
    g, ga, gb = grid_raw(blend, impute="none"), grid_raw(c.subset([0])), grid_raw(c.subset([1]))
    np.testing.assert_array_equal(g.mask[0], ga.mask[0] | gb.mask[0])
    hr, temp, na = s.index("HR"), s.index("Temp"), s.index("Na")
    assert g.values[0, 0, hr] == 90.0  # (80 + 101) / 2 rounded to whole bpm
    assert g.values[0, 1, temp] == 37.0  # only in the stay
    assert g.values[0, 2, na] == 140.0  # only in the donor
    assert g.values[0, 3, s.index("GCS")] in s.variables[s.index("GCS")].levels  # (15+4)/2 -> level
    assert g.values[0, 4, s.index("MechVent")] in (0.0, 1.0)
    # the donor's event outside the observation window is not copied
    assert not np.any(blend.events.time > 48.0)


def test_superimpose_with_alpha_one_keeps_the_stay_values():
    c = two_stays()
    blend = superimpose(c, np.array([0, 1]), c, np.array([1, 0]), alpha=1.0)
    g = grid_raw(blend, impute="none")
    ga = grid_raw(c, impute="none")
    both = ga.mask[0] & ga.mask[1]
    np.testing.assert_array_equal(g.values[0][both], ga.values[0][both])
    np.testing.assert_array_equal(g.values[1][both], ga.values[1][both])
    with pytest.raises(ValueError, match="donors"):
        superimpose(c, np.array([0]), c, np.array([0, 1]))


def test_threshold_entropy_is_maximal_at_the_operating_point():
    h = threshold_entropy(np.array([0.2, 0.01, 0.99, 0.5]), 0.2)
    assert h[0] == pytest.approx(np.log(2))
    assert h[1] < h[0] and h[2] < h[0] and h[3] < h[0]


def test_no_disk_cache_switches_the_victim_cache_off_and_back(monkeypatch):
    import os

    monkeypatch.delenv(ENV_DISABLE, raising=False)

    class V:
        cache = True

    v = V()
    with no_disk_cache(v):
        assert v.cache is False
        assert ENV_DISABLE not in os.environ  # nothing process-wide
    assert v.cache is True
    with no_disk_cache(object()):  # a victim without a cache parameter
        pass
