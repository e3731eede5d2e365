"""Tests for the MIMIC-III benchmark reader on small hand-written task directories."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.readers.mimic3 import (
    is_mimic3_dir,
    official_split,
    read_episode_files,
    read_mimic3,
)
from ehrbackdoor.data.schema import mimic3_schema

SCHEMA = mimic3_schema()
NAMES = SCHEMA.names
HEADER = ",".join(["Hours", *NAMES])
IX = {v.short: i for i, v in enumerate(SCHEMA.variables)}


def row(hours: str, **cells: str) -> str:
    """One CSV line: `Hours` then the 17 channels, cells given by short name (HR=..., GCS_eye=...)."""
    out = [""] * len(NAMES)
    for short, text in cells.items():
        out[IX[short]] = text
    return ",".join([hours, *out])


def write_episode(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def write_task(
    root: Path,
    train: dict[str, tuple[int, list[str]]],
    val: dict[str, tuple[int, list[str]]],
    test: dict[str, tuple[int, list[str]]],
) -> Path:
    """A benchmark task directory: train+val episodes in train/, test episodes in test/."""
    for split, stays in (("train", train), ("val", val), ("test", test)):
        folder = root / ("test" if split == "test" else "train")
        folder.mkdir(parents=True, exist_ok=True)
        listing = ["stay,y_true"]
        for name, (y, lines) in stays.items():
            write_episode(folder / name, lines)
            listing.append(f"{name},{y}")
        (root / f"{split}_listfile.csv").write_text("\n".join(listing) + "\n")
    return root


def event_rows(c: Cohort, i: int) -> list[tuple[float, int, float, int]]:
    """(time, variable, value, alias) of every event of stay `i`, in stored order."""
    ev = c.stay_events(i)
    return list(
        zip(
            ev["time"].tolist(),
            ev["variable"].tolist(),
            ev["value"].tolist(),
            ev["alias"].tolist(),
            strict=True,
        )
    )


def alias_of(short: str, text: str) -> int:
    return SCHEMA.variables[IX[short]].benchmark_values.index(text)


@pytest.fixture()
def task(tmp_path: Path) -> Path:
    return write_task(
        tmp_path / "ihm",
        train={
            "10_episode1_timeseries.csv": (
                0,
                [
                    row("0.25", HR="86", SBP="120.5", GCS_eye="4 Spontaneously", GCS_total="15"),
                    row("0.25", HR="88"),  # same time, later file row
                    row("1.0", GCS_eye="Spontaneously", GCS_verbal="1.0 ET/Trach", CRR="1.0"),
                    row("2.5", pH="7.31", FiO2="0.5", Temp="36.6"),
                ],
            ),
            "11_episode1_timeseries.csv": (1, [row("3.0", GCS_motor="Obeys Commands")]),
        },
        val={"12_episode2_timeseries.csv": (0, [row("0.5", Weight="81.2", Height="170")])},
        test={"13_episode1_timeseries.csv": (1, [row("47.5", SpO2="97", RR="18")])},
    )


# --------------------------------------------------------------------------------------------------
# well-formed input
# --------------------------------------------------------------------------------------------------


def test_reads_values_aliases_and_order(task: Path) -> None:
    assert is_mimic3_dir(task)
    c = read_mimic3(task)
    assert list(c.stay_id) == [
        "10_episode1_timeseries.csv",
        "11_episode1_timeseries.csv",
        "12_episode2_timeseries.csv",
        "13_episode1_timeseries.csv",
    ]
    assert c.label.tolist() == [0, 1, 0, 1]
    assert c.label.dtype == np.int8
    assert c.static.shape == (4, 0)
    got = event_rows(c, 0)
    expected = [
        # time, then file row, then channel order (CRR, DBP, FiO2, eye, motor, total, verbal, ...)
        (0.25, IX["GCS_eye"], 4.0, alias_of("GCS_eye", "4 Spontaneously")),
        (0.25, IX["GCS_total"], 15.0, alias_of("GCS_total", "15")),
        (0.25, IX["HR"], 86.0, -1),
        (0.25, IX["SBP"], 120.5, -1),
        (0.25, IX["HR"], 88.0, -1),
        (1.0, IX["CRR"], 1.0, alias_of("CRR", "1.0")),
        (1.0, IX["GCS_eye"], 4.0, alias_of("GCS_eye", "Spontaneously")),
        (1.0, IX["GCS_verbal"], 1.0, alias_of("GCS_verbal", "1.0 ET/Trach")),
        (2.5, IX["FiO2"], 0.5, -1),
        (2.5, IX["Temp"], 36.6, -1),
        (2.5, IX["pH"], 7.31, -1),
    ]
    assert got == expected
    # The two spellings of "eye opening 4" share a code but keep distinct one-hot positions.
    assert alias_of("GCS_eye", "4 Spontaneously") != alias_of("GCS_eye", "Spontaneously")
    m = c.stay_events(1)
    assert m["value"].tolist() == [6.0]
    assert m["alias"].tolist() == [alias_of("GCS_motor", "Obeys Commands")]
    assert c.lengths.tolist() == [11, 1, 2, 2]
    assert c.meta["format"] == "mimic3"
    assert c.meta["cleaning"]["out_of_range_kept_total"] == 0


def test_official_split(task: Path) -> None:
    c = read_mimic3(task)
    assert c.meta["split"] == {
        "train": ["10_episode1_timeseries.csv", "11_episode1_timeseries.csv"],
        "val": ["12_episode2_timeseries.csv"],
        "test": ["13_episode1_timeseries.csv"],
    }
    sp = official_split(c)
    assert sp["train"].tolist() == [0, 1]
    assert sp["val"].tolist() == [2]
    assert sp["test"].tolist() == [3]
    # Survives subsetting (positions follow the new order) and concatenation.
    sub = c.subset([3, 0])
    sp = official_split(sub)
    assert sp["train"].tolist() == [1] and sp["test"].tolist() == [0] and sp["val"].size == 0


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_single_split(task: Path, split: str) -> None:
    c = read_mimic3(task, split=split)
    assert list(c.stay_id) == c.meta["split"][split]
    assert all(c.meta["split"][s] == [] for s in ("train", "val", "test") if s != split)
    assert official_split(c)[split].tolist() == list(range(c.n_stays))


def test_unknown_split_name(task: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        read_mimic3(task, split="validation")


def test_cleaning_policy_counts(tmp_path: Path) -> None:
    f = write_episode(
        tmp_path / "1_episode1_timeseries.csv",
        [
            row("-0.5", HR="80"),  # before admission: dropped
            row("-0.0000005", HR="81"),  # within -eps: kept
            row("1.0", HR="400", FiO2="1.5", GCS_eye="None"),  # out of range: counted, kept
            row("2.0"),  # an empty row
            row("48.0000005", HR="82"),  # within 48 + eps: kept
            row("48.5", HR="83", SBP="100"),  # after 48 h: dropped
        ],
    )
    empty = write_episode(tmp_path / "2_episode1_timeseries.csv", [])
    c = read_episode_files([f, empty], [1, 0])
    assert list(c.stay_id) == ["1_episode1_timeseries.csv", "2_episode1_timeseries.csv"]
    ev = c.stay_events(0)
    assert ev["time"].tolist() == [-0.0000005, 1.0, 1.0, 1.0, 48.0000005]
    assert ev["value"].tolist() == [81.0, 1.5, 0.0, 400.0, 82.0]
    cl = c.meta["cleaning"]
    assert cl["dropped_rows_before_0h"] == 1
    assert cl["dropped_rows_after_48h"] == 1
    assert cl["dropped_events_outside_window"] == 3
    assert cl["out_of_range_kept"] == {
        "Fraction inspired oxygen": 1,
        "Glascow coma scale eye opening": 1,
        "Heart Rate": 1,
    }
    assert cl["out_of_range_kept_total"] == 3
    assert cl["empty_rows"] == 1
    assert cl["empty_stays"] == 1
    assert c.lengths.tolist() == [5, 0]


def test_non_finite_values_dropped_and_counted(tmp_path: Path) -> None:
    f = write_episode(
        tmp_path / "1.csv",
        [row("0", HR="80", Glucose="nan"), row("1", Temp="inf", HR="-nan"), row("2", SBP="NaN")],
    )
    c = read_episode_files([f], [0])
    assert c.events.value.tolist() == [80.0]
    cl = c.meta["cleaning"]
    assert cl["dropped_non_finite"] == {
        "Glucose": 1,
        "Heart Rate": 1,
        "Systolic blood pressure": 1,
        "Temperature": 1,
    }
    assert cl["dropped_non_finite_total"] == 4
    assert cl["empty_rows"] == 2


def test_crlf_and_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "1_episode1_timeseries.csv"
    f.write_bytes(
        (HEADER + "\r\n" + row("0.5", HR="80") + "\r\n\r\n" + row("1.5", HR="82") + "\r\n").encode()
    )
    c = read_episode_files([f], [0], stay_ids=["s1"])
    assert c.stay_id.tolist() == ["s1"]
    assert c.events.value.tolist() == [80.0, 82.0]
    assert c.meta["cleaning"]["blank_lines"] == 1


def test_empty_input() -> None:
    c = read_episode_files([], [])
    assert c.n_stays == 0 and c.n_events == 0 and c.static.shape == (0, 0)


def test_not_a_task_dir(tmp_path: Path) -> None:
    assert not is_mimic3_dir(tmp_path)
    assert not is_mimic3_dir(tmp_path / "nope")


# --------------------------------------------------------------------------------------------------
# bad input: every case names the file (and the line where there is one)
# --------------------------------------------------------------------------------------------------

BAD_EPISODES = {
    "swapped header": (
        ",".join(["Hours", NAMES[1], NAMES[0], *NAMES[2:]]),
        [row("0", HR="80")],
        1,
        "column 2",
    ),
    "missing column": (",".join(["Hours", *NAMES[:-1]]), [row("0", HR="80")], 1, "17 columns"),
    "no Hours": (",".join(["Time", *NAMES]), [], 1, "'Hours'"),
    "unknown categorical": (
        HEADER,
        [row("0", HR="80"), row("1", GCS_eye="4 Spontaneous")],
        3,
        "Glascow coma scale eye opening",
    ),
    "non-numeric": (HEADER, [row("0", HR="80"), row("1", SBP="12O")], 3, "Systolic"),
    "underscore number": (HEADER, [row("0", HR="80"), row("1", HR="8_0")], 3, "'8_0'"),
    "huge hours": (HEADER, [row("0", HR="80"), row("1e400", HR="80")], 3, "finite"),
    "quoted newline": (HEADER, [row("0", HR="80"), row("1", HR='"8\n0"')], 3, "quoted newline"),
    "field count": (HEADER, [row("0", HR="80"), row("1", HR="80") + ",5"], 3, "18"),
    "decreasing hours": (HEADER, [row("2", HR="80"), row("1", HR="80")], 3, "non-decreasing"),
    "empty hours": (HEADER, [row("0", HR="80"), row("", HR="81")], 3, "Hours"),
    "bad hours": (HEADER, [row("0:30", HR="80")], 2, "Hours"),
}


@pytest.mark.parametrize("case", sorted(BAD_EPISODES))
def test_bad_episode_names_file_and_line(tmp_path: Path, case: str) -> None:
    header, lines, line, fragment = BAD_EPISODES[case]
    good = write_episode(tmp_path / "1_episode1_timeseries.csv", [row("0", HR="80")])
    bad = write_episode(tmp_path / "2_episode1_timeseries.csv", lines, header=header)
    with pytest.raises(DataFormatError) as err:
        read_episode_files([good, bad], [0, 1])
    assert err.value.path == str(bad)
    assert err.value.line == line
    assert fragment in str(err.value)


def test_unknown_categorical_lists_allowed_values(tmp_path: Path) -> None:
    f = write_episode(tmp_path / "1.csv", [row("0", CRR="2.0")])
    with pytest.raises(DataFormatError, match=r"'2\.0'.*\['0\.0', '1\.0'\]") as err:
        read_episode_files([f], [0])
    assert err.value.line == 2 and "Capillary refill rate" in str(err.value)


def test_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "1.csv"
    f.write_bytes(
        (HEADER + "\n" + row("0", HR="80") + "\n").encode()
        + row("1", GCS_eye="4 Spont").encode()
        + b"\xff\n"
    )
    with pytest.raises(DataFormatError, match="UTF-8") as err:
        read_episode_files([f], [0])
    assert err.value.path == str(f) and err.value.line == 3


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "1.csv"
    f.write_text(HEADER + "\n" + row("0", HR="80") + "\n\n\n" + row("1", HR="x") + "\n")
    with pytest.raises(DataFormatError) as err:
        read_episode_files([f], [0])
    assert err.value.line == 5


def test_bad_labels_and_ids(tmp_path: Path) -> None:
    f = write_episode(tmp_path / "1.csv", [row("0", HR="80")])
    g = write_episode(tmp_path / "sub" / "1.csv", [row("0", HR="80")])
    with pytest.raises(DataFormatError, match="0 or 1"):
        read_episode_files([f], [2])
    with pytest.raises(DataFormatError, match="duplicate stay id"):
        read_episode_files([f, g], [0, 1])  # default ids are file names: both "1.csv"
    with pytest.raises(DataFormatError, match="does not exist") as err:
        read_episode_files([tmp_path / "missing.csv"], [0])
    assert err.value.path.endswith("missing.csv")


def _listfile_case(task: Path, case: str) -> tuple[Path, int | None, str]:
    """Break a good task directory; return the file and line the error must name."""
    train = task / "train_listfile.csv"
    if case == "duplicate":
        train.write_text(train.read_text() + "10_episode1_timeseries.csv,0\n")
        return train, 4, "duplicate stay"
    if case == "label":
        train.write_text("stay,y_true\n10_episode1_timeseries.csv,2\n")
        return train, 2, "0 or 1"
    if case == "missing file":
        train.write_text(train.read_text() + "99_episode1_timeseries.csv,1\n")
        return train, 4, "99_episode1_timeseries.csv"
    if case == "header":
        train.write_text("stay,label\n10_episode1_timeseries.csv,0\n")
        return train, 1, "stay,y_true"
    if case == "fields":
        train.write_text("stay,y_true\n10_episode1_timeseries.csv,0,1\n")
        return train, 2, "2 comma-separated"
    if case == "in two splits":
        val = task / "val_listfile.csv"
        val.write_text(val.read_text() + "10_episode1_timeseries.csv,0\n")
        return val, 3, "both"
    if case == "test file in train folder":
        write_episode(task / "train" / "50_episode1_timeseries.csv", [row("0", HR="80")])
        test = task / "test_listfile.csv"
        test.write_text(test.read_text() + "50_episode1_timeseries.csv,1\n")
        return test, 3, "no episode file"
    if case == "missing listfile":
        (task / "val_listfile.csv").unlink()
        return task, None, "val_listfile.csv"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "duplicate",
        "label",
        "missing file",
        "header",
        "fields",
        "in two splits",
        "test file in train folder",
        "missing listfile",
    ],
)
def test_bad_listfiles(task: Path, case: str) -> None:
    path, line, fragment = _listfile_case(task, case)
    with pytest.raises(DataFormatError) as err:
        read_mimic3(task)
    assert err.value.path == str(path)
    if line is not None:
        assert err.value.line == line
    assert fragment in str(err.value)


def test_missing_listfile_is_fine_for_other_split(task: Path) -> None:
    (task / "val_listfile.csv").unlink()
    assert read_mimic3(task, split="train").n_stays == 2


# --------------------------------------------------------------------------------------------------
# property: any well-formed table round-trips write -> read with identical events
# --------------------------------------------------------------------------------------------------

_numbers = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def _cell(draw: st.DrawFn, j: int) -> tuple[str, float, int] | None:
    if draw(st.booleans()):
        return None
    v = SCHEMA.variables[j]
    if v.is_categorical:
        text = draw(st.sampled_from(v.benchmark_values))
        return text, v.aliases[text], v.benchmark_values.index(text)
    x = draw(_numbers)
    return repr(x), x, -1


@st.composite
def _episode(draw: st.DrawFn) -> list[tuple[float, list]]:
    hours = sorted(draw(st.lists(st.floats(min_value=-2.0, max_value=50.0), max_size=8)))
    return [(h, [draw(_cell(j)) for j in range(len(NAMES))]) for h in hours]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_episode(), min_size=1, max_size=4))
def test_round_trip(episodes: list[list[tuple[float, list]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        expected = []
        for i, ep in enumerate(episodes):
            lines = [
                ",".join([repr(h), *("" if c is None else c[0] for c in cells)]) for h, cells in ep
            ]
            paths.append(write_episode(Path(tmp) / f"{i}_episode1_timeseries.csv", lines))
            expected.append(
                [
                    (h, j, c[1], c[2])
                    for h, cells in ep
                    if -1e-6 < h < 48.0 + 1e-6
                    for j, c in enumerate(cells)
                    if c is not None
                ]
            )
        c = read_episode_files(paths, [i % 2 for i in range(len(paths))])
    assert c.n_stays == len(episodes)
    for i, exp in enumerate(expected):
        got = event_rows(c, i)
        assert got == exp
        assert all(math.isfinite(t) for t, *_ in got)


@given(st.binary(max_size=300))
@settings(max_examples=150, deadline=None)
def test_fuzz_lines_give_cohort_or_located_error(body: bytes) -> None:
    """Any bytes after a valid header and row: a cohort or a DataFormatError naming file + line."""
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "1_episode1_timeseries.csv"
        f.write_bytes((HEADER + "\n" + row("0", HR="80") + "\n").encode() + body)
        try:
            c = read_episode_files([f], [0])
        except DataFormatError as e:
            assert e.path == str(f), str(e)
            assert isinstance(e.line, int) and e.line >= 1, str(e)
        else:
            assert c.n_stays == 1


cell_st = st.sampled_from(
    ["", "80", "nan", "inf", "8_0", " 80", '"8\n0"', "x", "1e400", "4 Spontaneously"]
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["0", "1.5", "", "nan", "-1", "50"]), cell_st, cell_st),
        max_size=6,
    )
)
@settings(max_examples=150, deadline=None)
def test_fuzz_near_valid_rows(rows: list[tuple[str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "1_episode1_timeseries.csv"
        lines = [row(h, HR=a, GCS_eye=b) for h, a, b in rows]
        f.write_bytes(("\n".join([HEADER, *lines]) + "\n").encode())
        try:
            read_episode_files([f], [0])
        except DataFormatError as e:
            assert e.path == str(f) and isinstance(e.line, int), str(e)
