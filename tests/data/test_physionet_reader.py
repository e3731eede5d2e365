from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.readers.physionet2012 import read_physionet2012

OUTCOMES = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"


def write_dir(root: Path, records: dict[str, str], deaths: dict[str, int] | None = None) -> Path:
    (root / "set-a").mkdir(parents=True, exist_ok=True)
    for rid, body in records.items():
        (root / "set-a" / f"{rid}.txt").write_text(body)
    deaths = deaths if deaths is not None else {rid: 0 for rid in records}
    lines = "".join(f"{rid},1,1,5,-1,{d}\n" for rid, d in deaths.items())
    (root / "Outcomes-a.txt").write_text(OUTCOMES + lines)
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
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, rows, message, line):
    root = write_dir(tmp_path, {"1": record("1", "00:01,HR,80\n" + rows)})
    with pytest.raises(DataFormatError, match=message) as e:
        read_physionet2012(root)
    assert e.value.path.endswith("1.txt") and e.value.line == line


def test_missing_label_and_duplicate_ids(tmp_path):
    root = write_dir(tmp_path / "a", {"1": record("1", ""), "2": record("2", "")}, {"1": 0})
    with pytest.raises(DataFormatError, match="RecordID 2 .* no label"):
        read_physionet2012(root)
    root = write_dir(tmp_path / "b", {"1": record("1", ""), "2": record("1", "")}, {"1": 0})
    with pytest.raises(DataFormatError, match="duplicate RecordID 1"):
        read_physionet2012(root)


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
