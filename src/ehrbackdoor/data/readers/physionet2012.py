"""Reader for the PhysioNet/Computing in Cardiology Challenge 2012 directory layout.

`set-a/`, `set-b/`, `set-c/` hold one `RecordID.txt` per ICU stay with lines `Time,Parameter,Value`
(`HH:MM` since admission); `Outcomes-a.txt` etc. give `In-hospital_death`. Any subset of sets may
be present. All files are parsed in one pass with Arrow's CSV reader, not one DataFrame per stay.

Cleaning policy (documented, counted in ``cohort.meta["cleaning"]``, never silent):

- time-series values outside the variable's valid range (schema `low`..`high`: zeros of blood
  pressure or heart rate, negative temperatures, pH 735 written for 7.35, ...) are dropped;
- observations after 48:00 are dropped;
- static descriptors equal to -1 are missing (NaN); descriptors outside their valid range
  (e.g. Height 462.3 cm) are set missing too;
- stays without any time-series observation are kept (they have static data and a label) and
  counted as empty;
- lines with an empty parameter name (`10:45,,1.9`: 2,403 lines in 1,594 files of the published
  set-c) carry no variable and are dropped, counted in total and per file
  (``cleaning["dropped_empty_parameter"]``);
- non-finite values (`nan`, `NaN`, `-nan`, `inf`, any case) are not measurements: time-series
  values are dropped and counted per variable (``dropped_non_finite``), static ones are missing.
  The MIMIC-III reader treats them the same way.

Anything else that does not fit the format (bad header, wrong number of fields, a non-numeric
value, an unknown parameter, a bad or overlong time, a quote, text that is not UTF-8, a RecordID
that differs from its file name, a duplicate RecordID, a stay without a label) raises
`DataFormatError` naming the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.readers._parse import (
    NUMBER_PATTERN,
    Blobs,
    csv_records,
    first_line_of,
    load_blobs,
    parse,
    read_lines,
)
from ehrbackdoor.data.schema import Schema, physionet2012_schema

HEADER = b"Time,Parameter,Value"
OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"
STATIC_PARAMETERS = ("Age", "Gender", "Height", "ICUType", "Weight")
SET_PATTERN = re.compile(r"^set-([a-z])$")
COLUMNS = ["Time", "Parameter", "Value"]
#: The challenge's window: the first 48 hours of the ICU stay (observations at 48:00 included).
WINDOW_HOURS = 48.0
#: Hours (up to 6 digits: no overflow) and minutes 0-59.
TIME_PATTERN = r"^[0-9]{1,6}:[0-5]?[0-9]$"
RECORD_ID = -6
NO_PARAMETER = -7

CLEANING_POLICY = (
    "lines with an empty parameter name are dropped; non-finite time-series values (nan, inf) are "
    "dropped; time-series values outside the schema's valid range are dropped; observations after "
    "48:00 are dropped; static descriptors of -1, non-finite or outside their valid range are "
    "missing; stays without observations are kept and counted"
)


def find_sets(root: Path) -> list[str]:
    """Letters of the `set-x` folders present under `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError("is not a directory", root)
    sets = sorted(
        m.group(1) for p in root.iterdir() if p.is_dir() and (m := SET_PATTERN.match(p.name))
    )
    if not sets:
        raise DataFormatError(
            "is not a PhysioNet 2012 directory: expected folders set-a/, set-b/ or set-c/ of "
            "RecordID.txt files with Outcomes-a.txt etc.",
            root,
        )
    return sets


def is_physionet2012_dir(root: Path) -> bool:
    try:
        find_sets(root)
        return True
    except DataFormatError:
        return False


def read_outcomes(path: Path) -> dict[str, int]:
    """RecordID -> in-hospital death (0/1) from an Outcomes-x.txt file."""
    lines = read_lines(path, "outcomes file is missing: every stay needs a label")
    if not lines or lines[0].strip() != OUTCOMES_HEADER:
        raise DataFormatError(f"expected header {OUTCOMES_HEADER!r}", path, 1)
    out: dict[str, int] = {}
    for n, parts in csv_records(lines, 6, path, "expected 6 comma-separated fields, got {got}"):
        rid, death = parts[0].strip(), parts[5].strip()
        if death not in ("0", "1"):
            raise DataFormatError(f"In-hospital_death must be 0 or 1, got {death!r}", path, n)
        if rid in out:
            raise DataFormatError(f"duplicate RecordID {rid}", path, n)
        out[rid] = int(death)
    return out


def _header_error(head: bytes) -> str:
    return f"expected header {HEADER.decode()!r}, got {head[:60]!r}"


def _parse(blobs: Blobs) -> pa.Table:
    """All lines as text columns in one Arrow pass (errors name file and line)."""
    return parse(
        blobs,
        COLUMNS,
        {c: pa.string() for c in COLUMNS},
        nulls=False,
        describe="Time,Parameter,Value",
    )


def _parse_times(col: pa.ChunkedArray, blobs: Blobs) -> np.ndarray:
    """`HH:MM` strings to hours (float64); raises at the first malformed time."""
    ok = pc.match_substring_regex(col, TIME_PATTERN).to_numpy(zero_copy_only=False)
    if not ok.all():
        bad = first_line_of(~ok)
        raise blobs.fail(bad, f"expected a time HH:MM, got {col[bad].as_py()!r}")
    nums = pc.cast(pc.list_flatten(pc.split_pattern(col, ":")), pa.int64()).to_numpy()
    nums = nums.reshape(-1, 2)
    return (nums[:, 0] * 60 + nums[:, 1]) / 60.0


def _parse_values(col: pa.ChunkedArray, blobs: Blobs) -> np.ndarray:
    """Value texts to float64; `nan`/`inf` spellings become non-finite numbers (dropped later)."""
    try:
        return pc.cast(col, pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        ok = pc.match_substring_regex(col, NUMBER_PATTERN, ignore_case=True)
        bad = ~ok.to_numpy(zero_copy_only=False)
        if not bad.any():  # a spelling the pattern allows but Arrow refuses: find it by value
            bad = np.array([_refused(t) for t in col.to_pylist()], dtype=bool)
        if bad.any():
            k = first_line_of(bad)
            raise blobs.fail(k, f"expected a numeric Value, got {col[k].as_py()!r}") from None
        raise DataFormatError(f"could not read the values: {exc}", blobs.files[0], 1) from exc


def _refused(text: str) -> bool:
    try:
        pc.cast(pa.array([text]), pa.float64())
        return False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return True


def _parameter_codes(col: pa.ChunkedArray, blobs: Blobs, schema: Schema) -> np.ndarray:
    """Per row: >= 0 series index, -1..-5 static descriptor, RECORD_ID, or NO_PARAMETER."""
    param = pc.dictionary_encode(col.combine_chunks())
    names = [str(x) for x in param.dictionary.to_pylist()]
    codes = np.empty(len(names), dtype=np.int64)
    static_names = list(STATIC_PARAMETERS)
    for k, name in enumerate(names):
        if name == "RecordID":
            codes[k] = RECORD_ID
        elif name == "":
            codes[k] = NO_PARAMETER
        elif name in static_names and name != "Weight":
            codes[k] = -1 - static_names.index(name)
        elif name in schema.names:
            codes[k] = schema.index(name)
        else:
            bad = first_line_of(param.indices.to_numpy() == k)
            raise blobs.fail(
                bad,
                f"unknown parameter {name!r}; expected one of the 37 series or "
                f"RecordID/{'/'.join(STATIC_PARAMETERS)}",
            )
    return codes[param.indices.to_numpy()]


def _record_ids(code: np.ndarray, value: np.ndarray, blobs: Blobs, files: list[Path]) -> np.ndarray:
    """The RecordID of each file: exactly one line, an integer, the file's own name."""
    row_file = blobs.row_file
    rid_rows = np.flatnonzero(code == RECORD_ID)
    rid_count = np.bincount(row_file[rid_rows], minlength=len(files))
    if (rid_count > 1).any():
        fi = first_line_of(rid_count > 1)
        second = rid_rows[row_file[rid_rows] == fi][1]
        raise blobs.fail(int(second), "a second RecordID line; each file holds one stay")
    if (rid_count == 0).any():
        fi = first_line_of(rid_count == 0)
        raise DataFormatError("has no RecordID line", files[fi], 1)
    rid_rows = rid_rows[np.argsort(row_file[rid_rows], kind="stable")]
    rid_values = value[rid_rows]
    whole = np.isfinite(rid_values) & (rid_values == np.round(rid_values))
    whole &= np.abs(np.nan_to_num(rid_values)) < 2**53
    if not whole.all():
        k = first_line_of(~whole)
        raise blobs.fail(int(rid_rows[k]), f"RecordID must be an integer, got {rid_values[k]}")
    stay_id = rid_values.astype(np.int64).astype(str)
    stems = np.array([f.stem for f in files], dtype=str)
    wrong = stay_id != stems
    if wrong.any():
        k = first_line_of(wrong)
        raise blobs.fail(
            int(rid_rows[k]),
            f"RecordID {stay_id[k]} differs from the file name {files[k].name}: a file must be "
            "named after its own RecordID (its label is looked up by that id)",
        )
    return stay_id


def _labels(
    stay_id: np.ndarray,
    set_of_file: np.ndarray,
    sets: Sequence[str],
    root: Path,
    labels_by_set: list[dict[str, int]],
    files: list[Path],
) -> np.ndarray:
    label = np.empty(len(files), dtype=np.int8)
    for si, s in enumerate(sets):
        lab = labels_by_set[si]
        for i in np.flatnonzero(set_of_file == si):
            try:
                label[i] = lab[stay_id[i]]
            except KeyError:
                raise DataFormatError(
                    f"RecordID {stay_id[i]} ({files[i].name}) has no label in Outcomes-{s}.txt",
                    root / f"Outcomes-{s}.txt",
                ) from None
    return label


def _static(
    code: np.ndarray,
    value: np.ndarray,
    row_file: np.ndarray,
    n: int,
    schema: Schema,
    cleaning: dict,
) -> np.ndarray:
    """Static descriptors (last value wins if repeated); -1, non-finite, out of range: missing."""
    static = np.full((n, len(schema.static)), np.nan)
    out: dict[str, int] = {}
    non_finite = 0
    for j, sv in enumerate(schema.static):
        rows = np.flatnonzero(code == -1 - j)
        vals = value[rows]
        finite = np.isfinite(vals)
        non_finite += int((~finite).sum())
        present = finite & (vals != -1)
        bad = present & ((vals < sv.low) | (vals > sv.high))
        out[sv.name] = int(bad.sum())
        keep = present & ~bad
        static[row_file[rows[keep]], j] = vals[keep]
    cleaning["static_out_of_range_set_missing"] = out
    cleaning["static_non_finite_set_missing"] = non_finite
    return static


def _per_file(mask: np.ndarray, row_file: np.ndarray, files: list[Path]) -> dict:
    """Total and per-file counts of the rows in `mask` (files named set-x/RecordID.txt)."""
    counts = np.bincount(row_file[mask], minlength=len(files))
    hit = np.flatnonzero(counts)
    return {
        "total": int(counts.sum()),
        "files": len(hit),
        "per_file": {f"{files[i].parent.name}/{files[i].name}": int(counts[i]) for i in hit},
    }


def _by_var(mask: np.ndarray, var: np.ndarray, schema: Schema) -> dict[str, int]:
    counts = np.bincount(var[mask], minlength=len(schema))
    return {schema.variables[i].name: int(counts[i]) for i in np.flatnonzero(counts)}


def _set_files(
    root: Path, sets: Sequence[str]
) -> tuple[list[Path], np.ndarray, list[dict[str, int]]]:
    """The record files of each set (sorted by name), the set of each file and each set's labels."""
    files: list[Path] = []
    labels_by_set: list[dict[str, int]] = []
    set_of_file: list[int] = []
    for si, s in enumerate(sets):
        fs = sorted((root / f"set-{s}").glob("*.txt"))
        if not fs:
            raise DataFormatError("contains no RecordID.txt files", root / f"set-{s}")
        files += fs
        set_of_file += [si] * len(fs)
        labels_by_set.append(read_outcomes(root / f"Outcomes-{s}.txt"))

    return files, np.asarray(set_of_file, dtype=np.int64), labels_by_set


def _series(
    code: np.ndarray,
    time: np.ndarray,
    value: np.ndarray,
    row_file: np.ndarray,
    n_files: int,
    schema: Schema,
    cleaning: dict,
) -> Events:
    """Time-series events under the cleaning policy (non-finite, outside window, out of range)."""
    series = code >= 0
    var, t, v, stay = code[series], time[series], value[series], row_file[series]
    non_finite = ~np.isfinite(v)
    outside = ~non_finite & (t > WINDOW_HOURS)
    with np.errstate(invalid="ignore"):
        outside_range = (v < schema.lows[var]) | (v > schema.highs[var])
        out_of_range = ~non_finite & ~outside & outside_range
    cleaning["dropped_non_finite"] = _by_var(non_finite, var, schema)
    cleaning["dropped_non_finite_total"] = int(non_finite.sum())
    cleaning["dropped_outside_window"] = int(outside.sum())
    cleaning["dropped_out_of_range"] = _by_var(out_of_range, var, schema)
    cleaning["dropped_out_of_range_total"] = int(out_of_range.sum())
    keep = ~non_finite & ~outside & ~out_of_range
    events = Events.from_flat(stay[keep], n_files, t[keep], var[keep], v[keep])
    cleaning["empty_stays"] = int((np.diff(events.offsets) == 0).sum())

    return events


def _mark_static_weight(
    code: np.ndarray, time: np.ndarray, row_file: np.ndarray, schema: Schema
) -> None:
    """The first Weight row of a file at 00:00 is the static descriptor, not a measurement."""
    weight_rows = np.flatnonzero(code == schema.index("Weight"))
    first_w = weight_rows[np.unique(row_file[weight_rows], return_index=True)[1]]
    first_w = first_w[time[first_w] == 0.0]
    code[first_w] = -1 - list(STATIC_PARAMETERS).index("Weight")


def read_physionet2012(root: str | Path, sets: Sequence[str] | None = None) -> Cohort:
    """Read a PhysioNet 2012 challenge directory (any of set-a/b/c) into one cohort.

    Stays are ordered by set, then file name. `stay_id` is the RecordID. See the module docstring
    for the cleaning policy; its counts are in ``cohort.meta["cleaning"]``.
    """
    root = Path(root)
    present = find_sets(root)
    if sets is None:
        sets = present
    missing = [s for s in sets if s not in present]
    if missing:
        raise DataFormatError(f"set(s) {missing} not found (present: {present})", root)
    schema = physionet2012_schema()

    files, set_of_file, labels_by_set = _set_files(root, sets)
    blobs = load_blobs([str(f) for f in files], HEADER, _header_error, quotes=False)
    table = _parse(blobs)
    row_file = blobs.row_file
    code = _parameter_codes(table["Parameter"], blobs, schema)
    # A line without a parameter carries no variable: its Time and Value are not read at all.
    no_param = code == NO_PARAMETER
    time_col, value_col = table["Time"], table["Value"]
    if no_param.any():
        mask = pa.array(no_param)
        time_col = pc.if_else(mask, "00:00", time_col.combine_chunks())
        value_col = pc.if_else(mask, "0", value_col.combine_chunks())
    time = _parse_times(time_col, blobs)
    value = _parse_values(value_col, blobs)

    _mark_static_weight(code, time, row_file, schema)
    stay_id = _record_ids(code, value, blobs, files)
    uniq, counts = np.unique(stay_id, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        where = [str(files[i]) for i in np.flatnonzero(stay_id == dup)]
        raise DataFormatError(f"duplicate RecordID {dup} in {where}", where[-1])
    label = _labels(stay_id, set_of_file, sets, root, labels_by_set, files)

    cleaning: dict = {"policy": CLEANING_POLICY, "blank_lines": int(blobs.blank)}
    cleaning["dropped_empty_parameter"] = _per_file(no_param, row_file, files)
    static = _static(code, value, row_file, len(files), schema, cleaning)

    events = _series(code, time, value, row_file, len(files), schema, cleaning)

    meta = {
        "format": "physionet2012",
        "path": str(root),
        "sets": list(sets),
        "n_raw_rows": int(len(time)),
        "cleaning": cleaning,
    }
    return Cohort(
        schema=schema,
        stay_id=stay_id,
        label=label,
        static=static,
        events=events,
        meta=meta,
        window=WINDOW_HOURS,
    )
