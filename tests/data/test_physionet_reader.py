from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.readers.physionet2012 import read_physionet2012

OUTCOMES = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"


def write_dir(
    root: Path,
    records: dict[str, str | bytes],
    deaths: dict[str, int] | None = None,
    set_name: str = "a",
) -> Path:
    (root / f"set-{set_name}").mkdir(parents=True, exist_ok=True)
    for rid, body in records.items():
        raw = body if isinstance(body, bytes) else body.encode()
        (root / f"set-{set_name}" / f"{rid}.txt").write_bytes(raw)
    deaths = deaths if deaths is not None else {rid: 0 for rid in records}
    lines = "".join(f"{rid},1,1,5,-1,{d}\n" for rid, d in deaths.items())
    (root / f"Outcomes-{set_name}.txt").write_text(OUTCOMES + lines)
    return root


def record(rid: str, rows: str, height: str = "170", weight: str = "80") -> str:
    return (
        "Time,Parameter,Value\n"
        f"00:00,RecordID,{rid}\n00:00,Age,60\n00:00,Gender,1\n00:00,Height,{height}\n"
        f"00:00,ICUType,3\n00:00,Weight,{weight}\n" + rows
    )


def test_real_copy_counts(physionet_cohort):
    c = physionet_cohort
    assert c.n_stays == 8000
    assert int(c.label.sum()) == 1122
    assert c.meta["cleaning"]["empty_stays"] == 10
    # nothing vanishes: every raw row is an event, a counted drop or one of 6 descriptor lines
    dropped = c.meta["cleaning"]["dropped_out_of_range_total"]
    assert c.meta["n_raw_rows"] == 3520512 == c.n_events + dropped + 8000 * 6
    # every kept value respects its valid range
    lo, hi = c.schema.lows[c.events.variable], c.schema.highs[c.events.variable]
    assert ((c.events.value >= lo) & (c.events.value <= hi)).all()
    assert c.meta["cleaning"]["dropped_out_of_range"]["pH"] > 0


def test_small_record_parsed(tmp_path):
    body = record("1", "00:07,HR,73\n00:37,HR,300.5\n01:37,HR,0\n02:00,Weight,81.5\n48:00,GCS,9\n")
    c = read_physionet2012(write_dir(tmp_path, {"1": body}, {"1": 1}))
    ev = c.stay_events(0)
    hr = c.schema.index("HR")
    assert ev["time"].tolist() == pytest.approx([7 / 60, 2.0, 48.0])
    assert ev["variable"].tolist() == [hr, c.schema.index("Weight"), c.schema.index("GCS")]
    assert c.static[0].tolist() == [60, 1, 170, 3, 80]
    assert c.label.tolist() == [1]
    # 300.5 and 0 are outside HR's valid range: dropped and counted
    assert c.meta["cleaning"]["dropped_out_of_range"] == {"HR": 2}


def test_static_missing_and_out_of_range(tmp_path):
    c = read_physionet2012(write_dir(tmp_path, {"1": record("1", "", "462.3", "-1")}))
    assert np.isnan(c.static[0, 2]) and np.isnan(c.static[0, 4])
    assert c.meta["cleaning"]["static_out_of_range_set_missing"]["Height"] == 1
    assert c.meta["cleaning"]["empty_stays"] == 1


@pytest.mark.parametrize(
    ("rows", "message", "line"),
    [
        ("00:07,HR,abc\n", "numeric Value", 9),
        ("00:07,HR\n", "3 comma-separated fields", 9),
        ("00:07,Foo,1\n", "unknown parameter 'Foo'", 9),
        ("0:7:1,HR,1\n", "HH:MM", 9),
        ("00:70,HR,1\n", "HH:MM", 9),
        ("00:07,HR,8_0\n", "numeric Value, got '8_0'", 9),
        ("00:07,HR, 80\n", "numeric Value, got ' 80'", 9),
        ("99999999999999999999:00,HR,80\n", "HH:MM", 9),
        ("00:07,HR,8\xe90\n", "not UTF-8", 9),
        ('00:07,HR,"8\n0"\n', "quote", 9),
        ("00:07,HR,1\n\n00:08,Foo,1\n", "unknown parameter 'Foo'", 11),
        ('00:07,HR,1\n\n00:08,HR,"1"\n', "quote", 11),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, rows, message, line):
    body = (record("1", "00:01,HR,80\n") + rows).encode("latin-1")
    root = write_dir(tmp_path, {"1": body})
    with pytest.raises(DataFormatError, match=message) as e:
        read_physionet2012(root)
    assert e.value.path.endswith("1.txt") and e.value.line == line


def test_missing_label_and_duplicate_ids(tmp_path):
    root = write_dir(tmp_path / "a", {"1": record("1", ""), "2": record("2", "")}, {"1": 0})
    with pytest.raises(DataFormatError, match="RecordID 2 .* no label"):
        read_physionet2012(root)
    root = write_dir(tmp_path / "b", {"1": record("1", "")}, {"1": 0})
    write_dir(root, {"1": record("1", "")}, {"1": 1}, set_name="b")
    with pytest.raises(DataFormatError, match="duplicate RecordID 1") as e:
        read_physionet2012(root)
    assert e.value.path.endswith("set-b/1.txt")


def test_record_id_must_match_file_name(tmp_path):
    """A RecordID differing from its file name would silently take another stay's label."""
    root = write_dir(tmp_path, {"1": record("1", ""), "2": record("1", "")}, {"1": 0, "2": 1})
    with pytest.raises(DataFormatError, match="RecordID 1 differs from the file name 2.txt") as e:
        read_physionet2012(root)
    assert e.value.path.endswith("2.txt") and e.value.line == 2
    root = write_dir(tmp_path / "x", {"1": record("1", "00:05,RecordID,1\n")})
    with pytest.raises(DataFormatError, match="second RecordID") as e:
        read_physionet2012(root)
    assert e.value.line == 8


def test_set_c_empty_parameter_lines_dropped_and_counted(tmp_path):
    """Set-c has lines like `10:45,,1.9` (no parameter): dropped, counted per file and in total."""
    recs = {
        "300001": record("300001", "00:10,HR,80\n10:45,,1.9\n11:00,,\n12:00,HR,82\n"),
        "300002": record("300002", "01:00,Temp,37.1\n"),
        "300003": record("300003", "02:00,,7\n"),
    }
    root = write_dir(tmp_path, recs, {"300001": 1, "300002": 0, "300003": 0}, set_name="c")
    c = read_physionet2012(root)
    assert c.n_stays == 3 and c.label.tolist() == [1, 0, 0] and c.meta["sets"] == ["c"]
    assert c.lengths.tolist() == [2, 1, 0]
    assert c.n_events == 3 and c.meta["n_raw_rows"] == 3 * 6 + 6
    assert c.meta["cleaning"]["dropped_empty_parameter"] == {
        "total": 3,
        "files": 2,
        "per_file": {"set-c/300001.txt": 2, "set-c/300003.txt": 1},
    }
    assert c.meta["cleaning"]["empty_stays"] == 1


def test_non_finite_values_dropped_and_counted(tmp_path):
    rows = "00:07,HR,nan\n00:08,HR,NaN\n00:09,Temp,-nan\n00:10,Temp,inf\n00:11,HR,81\n"
    c = read_physionet2012(write_dir(tmp_path, {"1": record("1", rows, height="nan")}))
    assert c.events.value.tolist() == [81.0]
    cl = c.meta["cleaning"]
    assert cl["dropped_non_finite"] == {"HR": 2, "Temp": 2}
    assert cl["dropped_non_finite_total"] == 4
    assert cl["dropped_out_of_range_total"] == 0
    assert np.isnan(c.static[0, 2]) and cl["static_non_finite_set_missing"] == 1


def test_window_is_48_hours(tmp_path):
    c = read_physionet2012(write_dir(tmp_path, {"1": record("1", "48:00,HR,80\n48:01,HR,80\n")}))
    assert c.window == 48.0 and c.n_events == 1
    assert c.meta["cleaning"]["dropped_outside_window"] == 1


def test_wrong_directory(tmp_path):
    with pytest.raises(DataFormatError, match="not a PhysioNet 2012 directory"):
        read_physionet2012(tmp_path)
    (tmp_path / "set-a").mkdir()
    (tmp_path / "set-a" / "1.txt").write_text("Hours,Heart Rate\n0,80\n")
    (tmp_path / "Outcomes-a.txt").write_text(OUTCOMES + "1,1,1,5,-1,0\n")
    with pytest.raises(DataFormatError, match="expected header"):
        read_physionet2012(tmp_path)


PARAMS = ["HR", "Temp", "GCS", "pH", "Urine"]
row_st = st.tuples(
    st.integers(0, 48 * 60), st.sampled_from(PARAMS), st.floats(-50, 1000, allow_nan=False)
)


@given(st.lists(row_st, max_size=30))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_parser_property(tmp_path_factory, rows):
    """Every well-formed row is either kept with its exact value and time or counted as dropped."""
    root = tmp_path_factory.mktemp("p")
    rows = sorted(rows, key=lambda r: r[0])
    body = "".join(f"{m // 60:02d}:{m % 60:02d},{p},{round(v, 2)}\n" for m, p, v in rows)
    c = read_physionet2012(write_dir(root, {"7": record("7", body)}))
    from ehrbackdoor.data.schema import physionet2012_schema

    s = physionet2012_schema()
    expected = [
        (m / 60, s.index(p), round(v, 2))
        for m, p, v in rows
        if s.variables[s.index(p)].low <= round(v, 2) <= s.variables[s.index(p)].high
    ]
    ev = c.stay_events(0)
    got = list(zip(ev["time"].tolist(), ev["variable"].tolist(), ev["value"].tolist(), strict=True))
    assert sorted(got) == sorted(expected)
    assert len(rows) - len(expected) == c.meta["cleaning"]["dropped_out_of_range_total"]


#: Settings of the fuzz tests (one tmp_path_factory serves all examples of a test on purpose).
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _read_fuzzed(tmp_path_factory, first_lines: str, body: bytes):
    """Read a directory of one record, "5": a valid start with `first_lines`, then `body`."""
    root = tmp_path_factory.mktemp("fuzz")
    write_dir(root, {"5": record("5", first_lines).encode() + body})
    return read_physionet2012(root)


@given(st.binary(max_size=200))
@FUZZ
def test_fuzz_lines_give_cohort_or_located_error(tmp_path_factory, body):
    """Any bytes after a valid record start: a cohort or a DataFormatError naming file + line."""
    try:
        c = _read_fuzzed(tmp_path_factory, "00:01,HR,80\n", body)
    except DataFormatError as e:
        assert e.path is not None and e.path.endswith("5.txt"), str(e)
        assert isinstance(e.line, int) and e.line >= 1, str(e)
    else:
        assert c.n_stays == 1 and c.stay_id.tolist() == ["5"]


line_st = st.lists(
    st.tuples(
        st.sampled_from(["00:00", "12:30", "48:00", "49:00", "1:5", "7", "", "99:99"]),
        st.sampled_from(["HR", "", "Temp", "RecordID", "Weight", "Foo", "GCS"]),
        st.sampled_from(["80", "nan", "-inf", "1e400", "", "x", "8_0", " 80", "-1", "7.4"]),
    ),
    max_size=8,
).map(lambda rows: "".join(f"{t},{p},{v}\n" for t, p, v in rows).encode())


@given(line_st)
@FUZZ
def test_fuzz_near_valid_lines(tmp_path_factory, body):
    """Lines built from plausible and broken parts: same contract as random bytes."""
    try:
        _read_fuzzed(tmp_path_factory, "", body)
    except DataFormatError as e:
        assert e.path.endswith("5.txt") and isinstance(e.line, int), str(e)


def test_set_c_like_copy_of_real_set_a(physionet_dir, tmp_path):
    """Set-a copied as set-c with set-c's empty-parameter lines (2,403 in 1,594 files) added:
    the same cohort as set-a alone, every added line counted, per file and in total."""
    src = physionet_dir / "set-a"
    dst = tmp_path / "set-c"
    dst.mkdir()
    rng = np.random.default_rng(0)
    files = sorted(src.glob("*.txt"))
    hit = rng.choice(len(files), 1594, replace=False)
    extra = np.zeros(len(files), dtype=int)
    extra[hit] = 1
    extra[rng.choice(hit, 2403 - 1594, replace=False)] += 1
    for f, k in zip(files, extra, strict=True):
        lines = f.read_bytes().splitlines(keepends=True)
        for _ in range(k):
            lines.insert(int(rng.integers(7, len(lines) + 1)), b"10:45,,1.9\n")
        (dst / f.name).write_bytes(b"".join(lines))
    outcomes = (physionet_dir / "Outcomes-a.txt").read_bytes()
    (tmp_path / "Outcomes-c.txt").write_bytes(outcomes)
    c = read_physionet2012(tmp_path)
    a = read_physionet2012(physionet_dir, sets=["a"])
    assert c.n_stays == 4000 and int(c.label.sum()) == int(a.label.sum()) == 554
    assert c.content_hash() == a.content_hash()
    drop = c.meta["cleaning"]["dropped_empty_parameter"]
    assert drop["total"] == 2403 and drop["files"] == 1594
    assert sum(drop["per_file"].values()) == 2403
    assert c.meta["n_raw_rows"] == a.meta["n_raw_rows"] + 2403
