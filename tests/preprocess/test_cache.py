"""The preprocessing cache: keys follow content and options; bad files are recomputed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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

from .helpers import random_cohort


@pytest.fixture
def cohort():
    return random_cohort(np.random.default_rng(4), mimic3_schema(), n_stays=8)


@pytest.fixture(autouse=True)
def _cache_enabled(monkeypatch):
    monkeypatch.delenv("EHRBACKDOOR_NO_CACHE", raising=False)


def _counting(result: dict[str, np.ndarray]):
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return result

    return compute, calls


def test_hit_after_miss(cohort, tmp_path: Path) -> None:
    compute, calls = _counting({"a": np.arange(3)})
    first = cached("demo", cohort, {"x": 1}, compute, tmp_path)
    second = cached("demo", cohort, {"x": 1}, compute, tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["a"], second["a"])
    assert len(list(tmp_path.glob("demo-*.npz"))) == 1


def test_changed_value_changes_key(cohort, tmp_path: Path) -> None:
    e = cohort.events
    value = e.value.copy()
    value[0] += 1.0
    changed = cohort.replace_events(np.arange(cohort.n_stays),
                                    Events(e.offsets, e.time, e.variable, value, e.alias))
    assert cache_key("grid", cohort, {}) != cache_key("grid", changed, {})
    g1 = grid_cached(cohort, cache_dir=tmp_path)
    g2 = grid_cached(changed, cache_dir=tmp_path)  # must not return the stale grid
    np.testing.assert_array_equal(g2.values, discretize(changed).values)
    np.testing.assert_array_equal(g1.values, discretize(cohort).values)
    assert len(list(tmp_path.glob("grid-*.npz"))) == 2


def test_options_change_key(cohort, tmp_path: Path) -> None:
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


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty", "wrong_key"])
def test_corrupt_file_is_recomputed(cohort, tmp_path: Path, damage: str) -> None:
    f = features_cached(cohort, cache_dir=tmp_path)
    (path,) = tmp_path.glob("features-*.npz")
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.savez(path, X=np.zeros(3))  # readable, but not this key's result
    again = features_cached(cohort, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.X, f.X)
    np.testing.assert_array_equal(again.X, window_features(cohort).X)
    # the bad file was replaced by a good one, carrying its key
    key = cache_key("features", cohort, {"hours": 48.0})
    assert path.name == f"features-{key}.npz"
    with np.load(path, allow_pickle=False) as z:
        assert str(z["__cache_key__"]) == key
        np.testing.assert_array_equal(z["X"], f.X)


def test_disabled_by_env_and_false(cohort, tmp_path: Path, monkeypatch) -> None:
    compute, calls = _counting({"a": np.zeros(1)})
    cached("demo", cohort, {}, compute, cache_dir=False)
    cached("demo", cohort, {}, compute, cache_dir=False)
    assert len(calls) == 2
    monkeypatch.setenv("EHRBACKDOOR_NO_CACHE", "1")
    cached("demo", cohort, {}, compute, tmp_path)
    assert len(calls) == 3 and not list(tmp_path.iterdir())


def test_default_dir_from_env(cohort, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EHRBACKDOOR_CACHE", str(tmp_path / "c"))
    grid_cached(cohort)
    assert len(list((tmp_path / "c").glob("grid-*.npz"))) == 1


def test_bad_kind_and_options(cohort, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        cached("../evil", cohort, {}, dict, tmp_path)
    with pytest.raises(TypeError, match="JSON"):
        cached("demo", cohort, {"f": object()}, dict, tmp_path)
