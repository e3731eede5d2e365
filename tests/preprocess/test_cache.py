"""The preprocessing cache: per-stay rows follow content and options; bad files are recomputed;
poisoned cohorts reuse the clean rows; the directory is capped and can be inspected and cleared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ehrbackdoor.cachedir import cache_info, clear_cache, enforce_limit, parse_size
from ehrbackdoor.data.cohort import Events
from ehrbackdoor.data.schema import mimic3_schema
from ehrbackdoor.preprocess import (
    cache_key,
    cached,
    discretize,
    features_cached,
    grid_cached,
    window_features,
)
from ehrbackdoor.preprocess.cache import GRID_ROWS, cached_per_stay
from ehrbackdoor.preprocess.stay_store import stay_digests

from .helpers import random_cohort


@pytest.fixture
def cohort():
    return random_cohort(np.random.default_rng(4), mimic3_schema(), n_stays=40)


@pytest.fixture(autouse=True)
def _cache_enabled(monkeypatch):
    monkeypatch.delenv("EHRBACKDOOR_NO_CACHE", raising=False)
    monkeypatch.delenv("EHRBACKDOOR_CACHE_MAX", raising=False)


def _counting(result: dict[str, np.ndarray]):
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return result

    return compute, calls


def _grid_counting(calls: list[int]):
    def compute(c):
        calls.append(c.n_stays)
        return discretize(c).to_arrays()

    return compute


def _segments(root: Path, kind: str = "grid") -> list[Path]:
    return sorted((root / "preprocess").glob(f"{kind}-*/seg-*.npz"))


def _poison(cohort, idx, shift: float = 3.0):
    e = cohort.events_of(idx)
    new = Events(e.offsets, e.time, e.variable, e.value + shift, e.alias)
    return cohort.replace_events(idx, new).with_labels(idx, 1)


def _same_grid(a, b) -> None:
    for f in ("values", "mask", "delta", "label"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(a.stay_id, b.stay_id)
    assert a.columns == b.columns and a.mask_columns == b.mask_columns


def test_hit_after_miss(cohort, tmp_path: Path) -> None:
    compute, calls = _counting({"a": np.arange(3)})
    first = cached("demo", cohort, {"x": 1}, compute, tmp_path)
    second = cached("demo", cohort, {"x": 1}, compute, tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["a"], second["a"])
    assert len(list((tmp_path / "preprocess" / "whole").glob("demo-*.npz"))) == 1


def test_per_stay_hit_computes_nothing(cohort, tmp_path: Path) -> None:
    calls: list[int] = []
    first = cached_per_stay("grid", cohort, {}, _grid_counting(calls), GRID_ROWS, tmp_path)
    again = cached_per_stay("grid", cohort, {}, _grid_counting(calls), GRID_ROWS, tmp_path)
    sub = cohort.subset(np.array([7, 3, 30]))
    part = cached_per_stay("grid", sub, {}, _grid_counting(calls), GRID_ROWS, tmp_path)
    assert calls == [40]
    for k in GRID_ROWS:
        np.testing.assert_array_equal(first[k], again[k])
        np.testing.assert_array_equal(part[k], first[k][[7, 3, 30]])


def test_changed_value_is_a_new_stay(cohort, tmp_path: Path) -> None:
    e = cohort.events
    value = e.value.copy()
    value[0] += 1.0
    changed = cohort.replace_events(
        np.arange(cohort.n_stays), Events(e.offsets, e.time, e.variable, value, e.alias)
    )
    d0, d1 = stay_digests(cohort), stay_digests(changed)
    assert (d0 != d1).sum() == 1 and d0[0] != d1[0]
    assert cache_key("grid", cohort, {}) != cache_key("grid", changed, {})
    g1 = grid_cached(cohort, cache_dir=tmp_path)
    g2 = grid_cached(changed, cache_dir=tmp_path)  # must not return the stale grid
    _same_grid(g2, discretize(changed))
    _same_grid(g1, discretize(cohort))
    segs = _segments(tmp_path)
    assert len(segs) == 2
    with np.load(segs[0]) as a, np.load(segs[1]) as b:
        assert sorted([len(a["__digest__"]), len(b["__digest__"])]) == [1, 40]


def test_label_time_and_static_changes_are_new_stays(cohort) -> None:
    base = stay_digests(cohort)
    flipped = cohort.with_labels([5], 1 - int(cohort.label[5]))
    assert (stay_digests(flipped) != base).tolist() == [i == 5 for i in range(40)]
    e = cohort.events
    t = e.time.copy()
    t[e.offsets[2]] += 0.25
    moved = cohort.replace_events(np.arange(40), Events(e.offsets, t, e.variable, e.value, e.alias))
    assert (stay_digests(moved) != base).sum() == 1
    static = cohort.static.copy()
    if static.shape[1]:
        static[9, 0] = 1.0 + np.nan_to_num(static[9, 0])
        from dataclasses import replace

        assert (stay_digests(replace(cohort, static=static)) != base).sum() == 1


@pytest.mark.parametrize("kind", ["grid", "features"])
def test_poisoned_cohorts_share_the_clean_rows_and_match_uncached(cohort, tmp_path, kind) -> None:
    fn = grid_cached if kind == "grid" else features_cached
    ref = discretize if kind == "grid" else window_features
    fn(cohort, cache_dir=tmp_path)
    clean_bytes = sum(p.stat().st_size for p in _segments(tmp_path, kind))
    rng = np.random.default_rng(0)
    for rate in (0.025, 0.05, 0.1):
        idx = rng.choice(40, size=max(1, int(rate * 40)), replace=False)
        poisoned = _poison(cohort, idx)
        got, want = fn(poisoned, cache_dir=tmp_path), ref(poisoned)
        if kind == "grid":
            _same_grid(got, want)
        else:
            np.testing.assert_array_equal(got.X, want.X)
            np.testing.assert_array_equal(got.stay_id, want.stay_id)
            assert got.columns == want.columns
    total = sum(p.stat().st_size for p in _segments(tmp_path, kind))
    assert total <= 1.3 * clean_bytes, (total, clean_bytes)


def test_options_change_store(cohort, tmp_path: Path) -> None:
    keys = {
        cache_key("grid", cohort, {"impute": "previous", "layout": "ordinal"}),
        cache_key("grid", cohort, {"impute": "zero", "layout": "ordinal"}),
        cache_key("grid", cohort, {"impute": "previous", "layout": "benchmark"}),
        cache_key("features", cohort, {"impute": "previous", "layout": "ordinal"}),
    }
    assert len(keys) == 4
    assert cache_key("g", cohort, {"a": 1, "b": 2}) == cache_key("g", cohort, {"b": 2, "a": 1})
    a = grid_cached(cohort, impute="zero", cache_dir=tmp_path)
    b = grid_cached(cohort, impute="previous", layout="benchmark", cache_dir=tmp_path)
    assert a.impute == "zero" and b.layout == "benchmark" and b.values.shape[-1] == 59
    np.testing.assert_array_equal(a.values, discretize(cohort, impute="zero").values)
    assert len({p.parent for p in _segments(tmp_path)}) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty", "wrong_store"])
def test_corrupt_segment_is_recomputed(cohort, tmp_path: Path, damage: str) -> None:
    f = features_cached(cohort, cache_dir=tmp_path)
    (path,) = _segments(tmp_path, "features")
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["X"] = np.zeros_like(arrays["X"])
        arrays["__store__"] = np.array("another store")
        np.savez(path, **arrays)  # readable, but not this store's result
    again = features_cached(cohort, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.X, f.X)
    np.testing.assert_array_equal(again.X, window_features(cohort).X)
    # the rewritten segment carries the store key (the bad one is ignored, same name rewritten)
    assert path.is_file()
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["X"], f.X)


def test_disabled_by_env_and_false(cohort, tmp_path: Path, monkeypatch) -> None:
    compute, calls = _counting({"a": np.zeros(1)})
    cached("demo", cohort, {}, compute, cache_dir=False)
    cached("demo", cohort, {}, compute, cache_dir=False)
    assert len(calls) == 2
    monkeypatch.setenv("EHRBACKDOOR_NO_CACHE", "1")
    cached("demo", cohort, {}, compute, tmp_path)
    grid_cached(cohort, cache_dir=tmp_path)
    assert len(calls) == 3 and not list(tmp_path.iterdir())


def test_default_dir_from_env(cohort, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EHRBACKDOOR_CACHE", str(tmp_path / "c"))
    grid_cached(cohort)
    assert len(_segments(tmp_path / "c")) == 1


def test_bad_kind_and_options(cohort, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        cached("../evil", cohort, {}, dict, tmp_path)
    with pytest.raises(TypeError, match="JSON"):
        cached("demo", cohort, {"f": object()}, dict, tmp_path)


def test_size_cap_evicts_least_recently_used(cohort, tmp_path: Path, monkeypatch) -> None:
    grid_cached(cohort.subset(np.arange(0, 10)), cache_dir=tmp_path)
    grid_cached(cohort.subset(np.arange(10, 20)), cache_dir=tmp_path)
    grid_cached(cohort.subset(np.arange(20, 30)), cache_dir=tmp_path)
    segs = sorted(_segments(tmp_path), key=lambda p: p.stat().st_mtime_ns)
    sizes = [p.stat().st_size for p in segs]
    for i, p in enumerate(segs):  # make the order unambiguous: oldest first
        os.utime(p, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))
    grid_cached(cohort.subset(np.arange(0, 10)), cache_dir=tmp_path)  # a hit refreshes the first
    assert segs[0].stat().st_mtime_ns > segs[2].stat().st_mtime_ns
    freed = enforce_limit(tmp_path, limit=sum(sizes) - 1)
    assert freed == sizes[1] and not segs[1].exists() and segs[0].exists() and segs[2].exists()
    monkeypatch.setenv("EHRBACKDOOR_CACHE_MAX", str(max(sizes) + 10))
    grid_cached(cohort.subset(np.arange(30, 40)), cache_dir=tmp_path)  # the write enforces it
    left = _segments(tmp_path)
    assert sum(p.stat().st_size for p in left) <= max(sizes) + 10 and len(left) == 1
    again = grid_cached(cohort.subset(np.arange(0, 10)), cache_dir=tmp_path)  # evicted: recomputed
    _same_grid(again, discretize(cohort.subset(np.arange(0, 10))))


def test_info_and_clear(cohort, tmp_path: Path) -> None:
    (tmp_path / "unrelated.txt").write_text("not ours")
    grid_cached(cohort, cache_dir=tmp_path)
    features_cached(cohort, cache_dir=tmp_path)
    info = cache_info(tmp_path)
    assert info["enabled"] and info["files"] == 4  # per kind: one segment, one shared file
    assert info["bytes"] == sum(p.stat().st_size for p in tmp_path.rglob("*.npz"))
    assert info["areas"]["preprocess"]["files"] == 4 and info["max_bytes"] == 5 * 1000**3
    assert clear_cache(tmp_path) == info["bytes"]
    assert cache_info(tmp_path)["files"] == 0 and (tmp_path / "unrelated.txt").exists()
    assert not (tmp_path / "preprocess").exists()


def test_parse_size() -> None:
    assert parse_size("5G") == 5 * 1000**3 and parse_size("500M") == 500 * 1000**2
    assert parse_size("123") == 123 and parse_size("1.5k") == 1500
    with pytest.raises(ValueError):
        parse_size("lots")


def test_hits_are_private_copy_on_write_maps(cohort, tmp_path: Path) -> None:
    grid_cached(cohort, cache_dir=tmp_path)
    hit = grid_cached(cohort, cache_dir=tmp_path)
    assert type(hit.values) is np.ndarray
    hit.values[0, 0, 0] += 100.0  # a victim may scale in place: that must not reach the cache
    again = grid_cached(cohort, cache_dir=tmp_path)
    _same_grid(again, discretize(cohort))


def test_truncated_segment_that_still_indexes_is_recomputed(cohort, tmp_path: Path) -> None:
    grid_cached(cohort, cache_dir=tmp_path)
    (seg,) = _segments(tmp_path)
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - 5000])  # the zip directory is gone too: index rejects it
    _same_grid(grid_cached(cohort, cache_dir=tmp_path), discretize(cohort))


def test_files_in_use_survive_eviction(cohort, tmp_path: Path) -> None:
    grid_cached(cohort.subset(np.arange(0, 10)), cache_dir=tmp_path)
    grid_cached(cohort.subset(np.arange(10, 20)), cache_dir=tmp_path)
    segs = _segments(tmp_path)
    enforce_limit(tmp_path, limit=1, keep=[segs[1]])
    assert segs[1].exists() and not segs[0].exists()
    # the shared file went too: the kept segment is then unusable, recomputed and repaired
    calls: list[int] = []
    sub = cohort.subset(np.arange(10, 20))
    for _ in range(2):
        got = cached_per_stay(
            "grid",
            sub,
            {"timestep": 1.0, "hours": 48.0, "impute": "previous", "layout": "ordinal"},
            _grid_counting(calls),
            GRID_ROWS,
            tmp_path,
        )
        for k in GRID_ROWS:
            np.testing.assert_array_equal(got[k], discretize(sub).to_arrays()[k])
    assert calls == [10]


def test_grid_space_trigger_is_part_of_each_stays_cache_identity(cohort):
    """A stay carrying a grid-space trigger never gets the clean stay's cached rows."""
    clean = grid_cached(cohort, impute="previous", layout="ordinal")
    pattern = np.zeros((clean.values.shape[1], len(cohort.schema)))
    pattern[:, 0] = 5.0
    carriers = np.array([0, 2])
    poisoned = cohort.with_grid_perturbation(carriers, pattern, "all")
    cached_grid = grid_cached(poisoned, impute="previous", layout="ordinal")
    direct = discretize(poisoned, impute="previous", layout="ordinal")
    np.testing.assert_array_equal(cached_grid.values, direct.values)
    others = np.setdiff1d(np.arange(cohort.n_stays), carriers)
    np.testing.assert_array_equal(cached_grid.values[others], clean.values[others])
    assert not np.array_equal(cached_grid.values[carriers], clean.values[carriers])
