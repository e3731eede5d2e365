"""Tests for the YAIB reader: the real MIMIC-III demo cohort and small parquet folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.load import detect_format, load_cohort
from ehrbackdoor.data.readers.yaib import is_yaib_dir, read_yaib
from ehrbackdoor.data.schema import get_schema
from ehrbackdoor.data.schema_yaib import yaib_schema

from ..conftest import shared_dir

DEMO = shared_dir() / "data" / "yaib" / "mortality24" / "mimic_demo"
H = 3600  # seconds per hour


def write_cohort(
    root: Path,
    dyn: dict | None = None,
    sta: dict | None = None,
    outc: dict | None = None,
) -> Path:
    """A 3-stay, 25-hour YAIB folder; pass a dict to replace one file's columns."""
    root.mkdir(parents=True, exist_ok=True)
    ids = [11, 12, 13]
    if dyn is None:
        stay = np.repeat([11, 12], 25).astype(np.int32)
        time = np.tile(np.arange(25) * H, 2).astype(np.int64)
        hr = np.full(50, np.nan)
        hr[[0, 1, 23, 24, 25]] = [80.0, 82.0, 90.0, 91.0, 70.0]
        temp = np.full(50, np.nan)
        temp[[0, 30]] = [37.0, np.inf]
        dyn = {
            "stay_id": pa.array(stay),
            "time": pa.array(time, type=pa.duration("s")),
            "hr": pa.array(hr),
            "temp": pa.array(temp),
            "sbp": pa.array(np.where(np.arange(50) == 2, 400.0, np.nan)),
        }
    if sta is None:
        sta = {
            "stay_id": pa.array(ids, type=pa.int32()),
            "age": pa.array([70.5, 130.0, 40.0]),
            "sex": pa.array(["Male", "Female", None]),
            "height": pa.array([170.0, None, 160.0]),
            "weight": pa.array([80.0, 60.0, 70.0]),
        }
    if outc is None:
        outc = {"stay_id": pa.array(ids, type=pa.int32()), "label": pa.array([1, 0, 0], pa.int32())}
    for name, cols in (("dyn", dyn), ("sta", sta), ("outc", outc)):
        pq.write_table(pa.table(cols), root / f"{name}.parquet")
    return root


def test_small_cohort_values_times_and_cleaning(tmp_path):
    root = write_cohort(tmp_path / "c")
    assert is_yaib_dir(root) and detect_format(root) == "yaib"
    c = read_yaib(root)
    assert c.window == 24.0 and c.schema.name == "yaib"
    assert c.stay_id.tolist() == ["11", "12", "13"] and c.label.tolist() == [1, 0, 0]
    s = c.schema
    ev = c.stay_events(0)
    # hour t -> t + 0.5 h; the hour-24 row lies beyond the 24 h window and is dropped
    assert ev["time"].tolist() == [0.5, 0.5, 1.5, 2.5, 23.5]
    assert ev["variable"].tolist() == [
        s.index("hr"),
        s.index("temp"),
        s.index("hr"),
        s.index("sbp"),
        s.index("hr"),
    ]
    assert ev["value"].tolist() == [80.0, 37.0, 82.0, 400.0, 90.0]
    assert c.stay_events(1)["value"].tolist() == [70.0]
    assert c.lengths.tolist() == [5, 1, 0]
    cl = c.meta["cleaning"]
    assert cl["dropped_rows_outside_window"] == 2
    assert cl["dropped_events_outside_window"] == 1
    assert cl["dropped_non_finite"] == {"temp": 1}
    assert cl["out_of_range_kept"] == {"sbp": 1}
    assert cl["empty_stays"] == 1
    # age 130 is out of range: missing, counted; sex coded 1 male / 0 female
    assert cl["static_out_of_range_set_missing"]["age"] == 1
    st = c.static
    assert st[0].tolist() == [70.5, 1.0, 170.0, 80.0]
    assert np.isnan(st[1, 0]) and st[1, 1] == 0.0 and np.isnan(st[1, 2])
    assert np.isnan(st[2, 1])


def test_window_override_and_persistence(tmp_path):
    root = write_cohort(tmp_path / "c")
    c = read_yaib(root, window=25)
    assert c.window == 25.0 and c.meta["cleaning"]["dropped_rows_outside_window"] == 0
    assert c.lengths.tolist() == [6, 1, 0]
    c.save(tmp_path / "c.npz")
    back = Cohort.load(tmp_path / "c.npz")
    assert back.window == 25.0 and back.schema is get_schema("yaib")
    assert back.content_hash() == c.content_hash() != read_yaib(root).content_hash()
    assert back.subset([2, 0]).window == 25.0
    with pytest.raises(ValueError, match="different windows"):
        Cohort.concat([read_yaib(root).subset([0]), c.subset([1])])


def _base(root: Path) -> dict:
    """The default columns of each file, to modify one at a time."""
    write_cohort(root)
    return {n: pq.read_table(root / f"{n}.parquet") for n in ("dyn", "sta", "outc")}


def _case(name: str, t: dict) -> tuple[str, pa.Table]:
    dyn, sta, outc = t["dyn"], t["sta"], t["outc"]
    cases = {
        "dyn missing time": ("dyn", dyn.drop_columns(["time"])),
        "dyn stay_id text": ("dyn", dyn.set_column(0, "stay_id", pc_str(dyn["stay_id"]))),
        "dyn hr text": ("dyn", dyn.set_column(2, "hr", pa.array(["80"] * dyn.num_rows))),
        "dyn unknown concept": ("dyn", dyn.append_column("heart", dyn["hr"])),
        "dyn duplicate stay-hour": ("dyn", pa.concat_tables([dyn, dyn.slice(3, 1)])),
        "dyn time off the hour": (
            "dyn",
            dyn.set_column(1, "time", pa.array(np.arange(dyn.num_rows) * 1800, pa.duration("s"))),
        ),
        "dyn unlabelled stay": (
            "dyn",
            dyn.set_column(0, "stay_id", pa.array(np.full(dyn.num_rows, 99, np.int32))),
        ),
        "sta missing weight": ("sta", sta.drop_columns(["weight"])),
        "sta duplicate stay": ("sta", pa.concat_tables([sta, sta.slice(1, 1)])),
        "sta age text": ("sta", sta.set_column(1, "age", pa.array(["70", "60", "50"]))),
        "sta unknown sex": ("sta", sta.set_column(2, "sex", pa.array(["M", "F", None]))),
        "outc missing label": ("outc", outc.drop_columns(["label"])),
        "outc duplicate stay": ("outc", pa.concat_tables([outc, outc.slice(0, 1)])),
        "outc label 2": ("outc", outc.set_column(1, "label", pa.array([1, 2, 0], pa.int32()))),
        "outc label null": (
            "outc",
            outc.set_column(1, "label", pa.array([1, None, 0], pa.int32())),
        ),
        "outc label 0.5": ("outc", outc.set_column(1, "label", pa.array([1.0, 0.5, 0.0]))),
    }
    return cases[name]


def pc_str(col):
    import pyarrow.compute as pc

    return pc.cast(col, pa.string())


BAD = {
    "dyn missing time": "column 'time' is missing",
    "dyn stay_id text": "column 'stay_id' has type string",
    "dyn hr text": "column 'hr' has type string",
    "dyn unknown concept": "column 'heart' is not a YAIB concept",
    "dyn duplicate stay-hour": "stay 11 has a second row for hour 3",
    "dyn time off the hour": "not a whole hour",
    "dyn unlabelled stay": "stay 99 in row 1 has no label",
    "sta missing weight": "column 'weight' is missing",
    "sta duplicate stay": "duplicate stay 12 in row 4",
    "sta age text": "column 'age' has type string",
    "sta unknown sex": "column 'sex': 'm' in row 1",
    "outc missing label": "column 'label' is missing",
    "outc duplicate stay": "duplicate stay 11 in row 4",
    "outc label 2": r"column 'label': 2 in row 2, expected 0 or 1",
    "outc label null": r"column 'label': None in row 2, expected 0 or 1",
    "outc label 0.5": r"column 'label': 0.5 in row 2",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_parquet_names_file_and_column(tmp_path, case):
    root = tmp_path / "c"
    name, table = _case(case, _base(root))
    pq.write_table(table, root / f"{name}.parquet")
    with pytest.raises(DataFormatError, match=BAD[case]) as e:
        read_yaib(root)
    assert e.value.path == str(root / f"{name}.parquet")


def test_unreadable_and_missing_files(tmp_path):
    root = write_cohort(tmp_path / "c")
    (root / "sta.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataFormatError, match="not a readable parquet file") as e:
        read_yaib(root)
    assert e.value.path.endswith("sta.parquet")
    (root / "sta.parquet").unlink()
    assert not is_yaib_dir(root)
    with pytest.raises(DataFormatError, match="is missing"):
        read_yaib(root)


def test_schema_units_match_the_demo_files():
    """Units in the schema are ricu's, as written in the parquet column attributes."""
    if not (DEMO / "dyn.parquet").is_file():
        pytest.skip(f"YAIB demo cohort not found at {DEMO}")
    meta = pq.read_metadata(DEMO / "dyn.parquet").metadata[b"r"].decode()
    s = yaib_schema()
    assert pq.read_schema(DEMO / "dyn.parquet").names[2:] == s.names
    for v in s.variables:
        if v.unit:  # the R attribute stream holds each unit string
            assert f"\n{v.unit}\n" in meta, v.name


def test_real_demo_cohort():
    if not (DEMO / "dyn.parquet").is_file():
        pytest.skip(f"YAIB demo cohort not found at {DEMO}")
    c = load_cohort(DEMO)
    assert detect_format(DEMO) == "yaib"
    assert c.n_stays == 99 and int(c.label.sum()) == 21 and c.window == 24.0
    dyn = pq.read_table(DEMO / "dyn.parquet").to_pandas()
    measured = int(dyn.drop(columns=["stay_id", "time"]).notna().sum().sum())
    cl = c.meta["cleaning"]
    # every measured cell is an event or a counted drop (the hour-24 row of each stay)
    assert measured == c.n_events + cl["dropped_events_outside_window"]
    assert cl["dropped_rows_outside_window"] == 99
    assert (c.events.time > 0).all() and (c.events.time < 24).all()
    assert np.isin(c.static[:, 1][~np.isnan(c.static[:, 1])], [0.0, 1.0]).all()
    lo, hi = c.schema.lows[c.events.variable], c.schema.highs[c.events.variable]
    assert ((c.events.value >= lo) & (c.events.value <= hi)).all()
