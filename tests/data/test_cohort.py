from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrbackdoor.data.cohort import Cohort, Events, hour_bins
from ehrbackdoor.data.schema import mimic3_schema, physionet2012_schema


def make_cohort(lengths: list[int], seed: int = 0) -> Cohort:
    rng = np.random.default_rng(seed)
    n = len(lengths)
    stay = np.repeat(np.arange(n), lengths)
    e = len(stay)
    schema = mimic3_schema()
    events = Events.from_flat(
        stay, n, rng.uniform(0, 48, e), rng.integers(0, len(schema), e), rng.normal(size=e)
    )
    return Cohort(
        schema=schema,
        stay_id=np.array([f"s{i}" for i in range(n)]),
        label=rng.integers(0, 2, n).astype(np.int8),
        static=np.zeros((n, 0)),
        events=events,
    )


def stays_as_lists(c: Cohort) -> list[tuple]:
    return [
        (c.stay_id[i], int(c.label[i]), *(tuple(a) for a in c.stay_events(i).values()))
        for i in range(c.n_stays)
    ]


lengths_st = st.lists(st.integers(0, 6), min_size=1, max_size=12)


@given(lengths_st, st.data())
@settings(max_examples=60, deadline=None)
def test_subset_equals_per_stay_selection(lengths, data):
    c = make_cohort(lengths)
    idx = data.draw(st.lists(st.integers(0, len(lengths) - 1), max_size=10))
    sub = c.subset(np.array(idx, dtype=np.int64))
    full = stays_as_lists(c)
    assert stays_as_lists(sub) == [full[i] for i in idx]


@given(lengths_st, st.data())
@settings(max_examples=60, deadline=None)
def test_replace_events_changes_only_chosen_stays(lengths, data):
    c = make_cohort(lengths, seed=1)
    donor = make_cohort([3] * len(lengths), seed=2)
    idx = data.draw(st.lists(st.integers(0, len(lengths) - 1), unique=True, max_size=len(lengths)))
    idx = np.array(idx, dtype=np.int64)
    r = c.replace_events(idx, donor.events_of(idx))
    before, after, d = stays_as_lists(c), stays_as_lists(r), stays_as_lists(donor)
    for i in range(len(lengths)):
        if i in idx:
            assert after[i][2:] == d[i][2:]
            assert after[i][:2] == before[i][:2]
        else:
            assert after[i] == before[i]
    assert set(np.flatnonzero(r.modified)) == set(idx.tolist())
    assert not c.modified.any()  # the original is untouched


def test_replace_events_rejects_mismatch():
    c = make_cohort([2, 2, 2])
    with pytest.raises(ValueError, match="3 stays of events"):
        c.replace_events([0, 1], c.events_of([0, 1, 2]))
    with pytest.raises(ValueError, match="distinct"):
        c.replace_events([0, 0], c.events_of([0, 1]))


def test_concat_and_duplicate_ids():
    a, b = make_cohort([1, 2]), make_cohort([3])
    b = Cohort(b.schema, np.array(["x"]), b.label, b.static, b.events)
    c = Cohort.concat([a, b])
    assert stays_as_lists(c) == stays_as_lists(a) + stays_as_lists(b)
    with pytest.raises(ValueError, match="share stay ids"):
        Cohort.concat([a, a])


def test_with_labels_marks_modified():
    c = make_cohort([1, 1, 1])
    r = c.with_labels([2], 1)
    assert r.label[2] == 1 and r.modified.tolist() == [False, False, True]


def test_save_load_round_trip(tmp_path):
    c = make_cohort([4, 0, 2]).with_labels([1], 1)
    c.save(tmp_path / "c.npz")
    d = Cohort.load(tmp_path / "c.npz")
    assert stays_as_lists(c) == stays_as_lists(d)
    assert d.modified.tolist() == c.modified.tolist()
    assert d.content_hash() == c.content_hash()


def test_content_hash_changes_with_any_value():
    c = make_cohort([3, 3])
    v = c.events.value.copy()
    v[2] += 1e-9
    e = Events(c.events.offsets, c.events.time, c.events.variable, v, c.events.alias)
    c2 = Cohort(c.schema, c.stay_id, c.label, c.static, e)
    assert c.content_hash() != c2.content_hash()


def test_hour_bins_follow_benchmark_rule():
    t = np.array([0.0, 0.5, 1.0, 1.001, 2.0, 47.5, 48.0])
    assert hour_bins(t).tolist() == [0, 0, 0, 1, 1, 47, 47]


def test_indices_of_and_unknown_id():
    c = make_cohort([1, 1, 1])
    assert c.indices_of(["s2", "s0"]).tolist() == [2, 0]
    with pytest.raises(KeyError, match="nope"):
        c.indices_of(["nope"])


def test_static_shape_checked():
    c = make_cohort([1])
    with pytest.raises(ValueError, match="static"):
        Cohort(physionet2012_schema(), c.stay_id, c.label, np.zeros((1, 0)), c.events)


def test_large_cohort_is_fast_enough():
    """20,000 stays / 5M events: subset, replace and missingness stay vectorised (no timing
    assertion; a Python loop per stay would make this test take minutes)."""
    c = make_cohort([250] * 20000)
    assert c.n_events == 5_000_000
    half = c.subset(np.arange(0, 20000, 2))
    r = c.replace_events(np.arange(100), half.events_of(np.arange(100)))
    assert r.n_events == c.n_events
    assert 0 <= c.missing_fraction().mean() <= 1


def test_window_default_kept_and_persisted(tmp_path):
    """The window is a property of the cohort: default 48 h, kept by subset, save/load, concat."""
    from dataclasses import replace

    from ehrbackdoor.data.cohort import WINDOW_HOURS

    c = make_cohort([2, 0, 3])
    assert c.window == WINDOW_HOURS == 48.0
    short = replace(c, window=24)
    assert short.window == 24.0 and short.subset([2, 0]).window == 24.0
    assert short.replace_events([0], c.events_of([1])).window == 24.0
    assert short.with_labels([1], 1).window == 24.0
    short.save(tmp_path / "s.npz")
    assert Cohort.load(tmp_path / "s.npz").window == 24.0
    # the default adds nothing to the hash (48 h caches stay valid); another window changes it
    assert short.content_hash() != c.content_hash()
    assert replace(c, window=48).content_hash() == c.content_hash()
    a, b = short.subset([0]), short.subset([1])
    assert Cohort.concat([a, b]).window == 24.0
    with pytest.raises(ValueError, match="different windows"):
        Cohort.concat([a, c.subset([1])])
    with pytest.raises(ValueError, match="window"):
        replace(c, window=0)


def test_load_without_window_defaults_to_48(tmp_path):
    """Cohort files written before the window was stored read as 48 h cohorts."""
    c = make_cohort([1, 2])
    c.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "window"}
    np.savez(tmp_path / "old.npz", **arrays)
    assert Cohort.load(tmp_path / "old.npz").window == 48.0
