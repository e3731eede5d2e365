"""The parsed-cohort cache: a hit equals a fresh parse; any change to a source file re-parses."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ehrbackdoor.data import cohort_cache
from ehrbackdoor.data.load import load_cohort

from .test_physionet_reader import record, write_dir

ROWS = "00:30,HR,80\n01:00,HR,85\n02:00,Temp,37.1\n"


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path):
    monkeypatch.delenv("EHRBACKDOOR_NO_CACHE", raising=False)
    monkeypatch.delenv("EHRBACKDOOR_CACHE_MAX", raising=False)
    monkeypatch.setenv("EHRBACKDOOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cohort_cache, "RACY_SECONDS", 0.0)


@pytest.fixture
def source(tmp_path) -> Path:
    return write_dir(
        tmp_path / "src",
        {str(100 + i): record(str(100 + i), ROWS) for i in range(5)},
        {str(100 + i): i % 2 for i in range(5)},
    )


@pytest.fixture
def parses(monkeypatch):
    from ehrbackdoor.data.readers import physionet2012

    calls: list[int] = []
    real = physionet2012.read_physionet2012

    def counting(path, *a, **k):
        calls.append(1)
        return real(path, *a, **k)

    monkeypatch.setattr(physionet2012, "read_physionet2012", counting)
    return calls


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.stay_id, b.stay_id)
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.static, b.static)
    for f in ("offsets", "time", "variable", "value", "alias"):
        np.testing.assert_array_equal(getattr(a.events, f), getattr(b.events, f))
    assert a.meta == b.meta and a.schema.name == b.schema.name
    assert a.content_hash() == b.content_hash()


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "cohort").glob("*.npz"))


def test_second_load_is_a_hit_equal_to_the_parse(source, parses, tmp_path) -> None:
    first = load_cohort(source)
    second = load_cohort(source)
    assert parses == [1] and len(_entries(tmp_path)) == 1
    _same(first, second)
    assert cohort_cache.content_hash_of(second) == second.content_hash()
    with pytest.raises(ValueError):
        second.label[0] = 1  # cached cohorts are read-only: the remembered hash stays true


def _bump(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


@pytest.mark.parametrize(
    "change", ["modify_same_size", "touch", "add", "remove", "outcomes", "replace_same_stat"]
)
def test_any_source_change_reparses(source, parses, tmp_path, change) -> None:
    load_cohort(source)
    f = source / "set-a" / "102.txt"
    if change == "modify_same_size":
        st = f.stat()
        f.write_text(f.read_text().replace("HR,85", "HR,86"))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime restored
    elif change == "touch":
        _bump(f)
    elif change == "add":
        (source / "set-a" / "200.txt").write_text(record("200", ROWS))
        outcomes = source / "Outcomes-a.txt"
        outcomes.write_text(outcomes.read_text() + "200,1,1,5,-1,1\n")
    elif change == "remove":
        f.unlink()
        outcomes = source / "Outcomes-a.txt"
        outcomes.write_text(
            "".join(
                ln
                for ln in outcomes.read_text().splitlines(keepends=True)
                if not ln.startswith("102")
            )
        )
    elif change == "outcomes":
        outcomes = source / "Outcomes-a.txt"
        st = outcomes.stat()
        outcomes.write_text(outcomes.read_text().replace("102,1,1,5,-1,0", "102,1,1,5,-1,1"))
        os.utime(outcomes, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:  # a different file renamed into place with identical size and mtime
        tmp = source / "set-a" / "102.new"
        tmp.write_text(f.read_text().replace("HR,85", "HR,86"))
        st = f.stat()
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, f)
    again = load_cohort(source)
    assert parses == [1, 1]
    from ehrbackdoor.data.readers.physionet2012 import read_physionet2012

    _same(again, read_physionet2012(source))


def test_fresh_files_are_not_cached(source, parses, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(cohort_cache, "RACY_SECONDS", 3600.0)
    load_cohort(source)
    load_cohort(source)
    assert parses == [1, 1] and not _entries(tmp_path)


def test_change_during_parse_is_not_cached(source, monkeypatch, tmp_path) -> None:
    from ehrbackdoor.data.readers import physionet2012

    real = physionet2012.read_physionet2012

    def racing(path, *a, **k):
        c = real(path, *a, **k)
        _bump(source / "set-a" / "101.txt")
        return c

    monkeypatch.setattr(physionet2012, "read_physionet2012", racing)
    load_cohort(source)
    assert not _entries(tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "wrong_key"])
def test_corrupt_entry_is_reparsed(source, parses, tmp_path, damage) -> None:
    first = load_cohort(source)
    (entry,) = _entries(tmp_path)
    if damage == "garbage":
        entry.write_bytes(b"junk")
    elif damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:100])
    else:
        with np.load(entry) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["__cache_key__"] = np.array("0" * 64)
        np.savez(entry, **arrays)
    again = load_cohort(source)
    assert parses == [1, 1]
    _same(first, again)
    assert load_cohort(source) is not None and parses == [1, 1]  # rewritten, a hit again


def test_disabled(source, parses, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("EHRBACKDOOR_NO_CACHE", "1")
    load_cohort(source)
    load_cohort(source)
    assert parses == [1, 1] and not (tmp_path / "cache").exists()


def test_remembered_digests_are_true_and_only_for_read_only_cohorts(source, tmp_path) -> None:
    load_cohort(source)
    hit = load_cohort(source)
    assert hit in cohort_cache._DIGESTS
    np.testing.assert_array_equal(cohort_cache.stay_digests_of(hit), cohort_cache.stay_digests(hit))
    from ehrbackdoor.data.readers.physionet2012 import read_physionet2012

    mutable = read_physionet2012(source)
    before = cohort_cache.stay_digests_of(mutable)
    h0 = cohort_cache.content_hash_of(mutable)
    mutable.events.value[0] += 1.0  # in-place change of a writeable cohort: never a stale memo
    assert cohort_cache.stay_digests_of(mutable)[0] != before[0]
    assert cohort_cache.content_hash_of(mutable) != h0


def test_files_behind_a_linked_set_are_watched(tmp_path, parses) -> None:
    real = write_dir(tmp_path / "real", {"100": record("100", ROWS)})
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "set-a").symlink_to(real / "set-a", target_is_directory=True)
    (linked / "Outcomes-a.txt").symlink_to(real / "Outcomes-a.txt")
    (linked / "set-a" / "loop").symlink_to(linked, target_is_directory=True)  # no endless walk
    first = load_cohort(linked)
    f = real / "set-a" / "100.txt"
    f.write_text(f.read_text().replace("HR,85", "HR,99"))
    _bump(f)
    second = load_cohort(linked)
    assert parses == [1, 1]
    assert not np.array_equal(first.events.value, second.events.value)
