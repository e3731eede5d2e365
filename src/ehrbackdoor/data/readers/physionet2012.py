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
  counted as empty.

Anything else that does not fit the format (bad header, wrong number of fields, a non-numeric
value, an unknown parameter, a bad time, a duplicate RecordID, a stay without a label) raises
`DataFormatError` naming the file and line.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ehrbackdoor.data.cohort import WINDOW_HOURS, Cohort, Events
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.schema import physionet2012_schema

HEADER = b"Time,Parameter,Value"
OUTCOMES_HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"
STATIC_PARAMETERS = ("Age", "Gender", "Height", "ICUType", "Weight")
SET_PATTERN = re.compile(r"^set-([a-z])$")

CLEANING_POLICY = (
    "time-series values outside the schema's valid range are dropped; observations after 48:00 are "
    "dropped; static descriptors of -1 or outside their valid range are missing; stays without "
    "observations are kept and counted"
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
    if not path.is_file():
        raise DataFormatError("outcomes file is missing: every stay needs a label", path)
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != OUTCOMES_HEADER:
        raise DataFormatError(f"expected header {OUTCOMES_HEADER!r}", path, 1)
    out: dict[str, int] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 6:
            raise DataFormatError(f"expected 6 comma-separated fields, got {len(parts)}", path, n)
        rid, death = parts[0].strip(), parts[5].strip()
        if death not in ("0", "1"):
            raise DataFormatError(f"In-hospital_death must be 0 or 1, got {death!r}", path, n)
        if rid in out:
            raise DataFormatError(f"duplicate RecordID {rid}", path, n)
        out[rid] = int(death)
    return out


def _load_blobs(files: list[Path]) -> tuple[bytes, np.ndarray, int]:
    """Concatenate files without their header; rows per file; number of blank lines removed."""
    parts: list[bytes] = []
    n_rows = np.zeros(len(files), dtype=np.int64)
    blank = 0
    for i, f in enumerate(files):
        b = f.read_bytes()
        if b"\r" in b:
            b = b.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        nl = b.find(b"\n")
        head = b if nl < 0 else b[:nl]
        if head.strip() != HEADER:
            raise DataFormatError(f"expected header {HEADER.decode()!r}, got {head[:60]!r}", f, 1)
        body = b"" if nl < 0 else b[nl + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        if b"\n\n" in body or body.startswith(b"\n"):
            lines = body.split(b"\n")
            kept = [ln for ln in lines if ln.strip()]
            blank += len(lines) - 1 - len(kept)
            body = b"\n".join(kept) + (b"\n" if kept else b"")
        n_rows[i] = body.count(b"\n")
        parts.append(body)
    return b"".join(parts), n_rows, blank


def _locate(row: int, files: list[Path], n_rows: np.ndarray) -> tuple[Path, int]:
    """File and 1-based line number of a global row index (header is line 1)."""
    ends = np.cumsum(n_rows)
    fi = int(np.searchsorted(ends, row, side="right"))
    start = int(ends[fi - 1]) if fi > 0 else 0
    return files[fi], row - start + 2


def _scan_for_field_error(files: list[Path]) -> None:
    """Slow path, only after Arrow failed: find the first line without exactly 3 fields."""
    for f in files:
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), start=1):
            if line.strip() and line.count(",") != 2:
                raise DataFormatError(
                    f"expected 3 comma-separated fields Time,Parameter,Value, got {line!r}", f, n
                )
    raise DataFormatError("could not parse the files as CSV", files[0].parent)


def _parse(data: bytes, files: list[Path], n_rows: np.ndarray) -> pa.Table:
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                column_names=["Time", "Parameter", "Value"], block_size=1 << 26
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={"Time": pa.string(), "Parameter": pa.string(), "Value": pa.string()},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        _scan_for_field_error(files)
        raise


def _parse_times(col: pa.ChunkedArray, files: list[Path], n_rows: np.ndarray) -> np.ndarray:
    """`HH:MM` strings to hours (float64); raises at the first malformed time."""
    parts = pc.split_pattern(col, ":")
    ok = pc.equal(pc.list_value_length(parts), 2).to_numpy(zero_copy_only=False)
    hours = minutes = None
    if ok.all():
        flat = pc.list_flatten(parts)
        digits = pc.match_substring_regex(flat, r"^[0-9]+$").to_numpy(zero_copy_only=False)
        if digits.all():
            nums = pc.cast(flat, pa.int64()).to_numpy().reshape(-1, 2)
            hours, minutes = nums[:, 0], nums[:, 1]
            ok = minutes < 60
    if hours is None or not ok.all():
        if hours is None:
            texts = col.to_numpy(zero_copy_only=False)
            ok = np.array([re.fullmatch(r"[0-9]+:[0-5][0-9]", t) is not None for t in texts])
        bad = int(np.flatnonzero(~ok)[0])
        f, line = _locate(bad, files, n_rows)
        raise DataFormatError(f"expected a time HH:MM, got {col[bad].as_py()!r}", f, line)
    return (hours * 60 + minutes) / 60.0


def _parse_values(col: pa.ChunkedArray, files: list[Path], n_rows: np.ndarray) -> np.ndarray:
    try:
        return pc.cast(col, pa.float64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        texts = col.to_numpy(zero_copy_only=False)
        for i, t in enumerate(texts):
            try:
                float(t)
            except ValueError:
                f, line = _locate(i, files, n_rows)
                raise DataFormatError(f"expected a numeric Value, got {t!r}", f, line) from None
        raise


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

    data, n_rows, blank = _load_blobs(files)
    table = _parse(data, files, n_rows)
    if table.num_rows != int(n_rows.sum()):
        raise DataFormatError("row count mismatch while parsing (embedded quotes?)", root)
    row_file = np.repeat(np.arange(len(files)), n_rows)
    time = _parse_times(table["Time"], files, n_rows)
    value = _parse_values(table["Value"], files, n_rows)

    # Map parameter names to codes: >= 0 series index, -1..-5 static, -6 RecordID.
    param = pc.dictionary_encode(table["Parameter"].combine_chunks())
    names = [str(x) for x in param.dictionary.to_pylist()]
    codes = np.empty(len(names), dtype=np.int64)
    static_names = list(STATIC_PARAMETERS)
    for k, name in enumerate(names):
        if name == "RecordID":
            codes[k] = -6
        elif name in static_names and name != "Weight":
            codes[k] = -1 - static_names.index(name)
        elif name in schema.names:
            codes[k] = schema.index(name)
        else:
            bad = int(np.flatnonzero(param.indices.to_numpy() == k)[0])
            f, line = _locate(bad, files, n_rows)
            raise DataFormatError(
                f"unknown parameter {name!r}; expected one of the 37 series or "
                f"RecordID/{'/'.join(STATIC_PARAMETERS)}",
                f,
                line,
            )
    code = codes[param.indices.to_numpy()]

    # The first Weight row of a file at 00:00 is the static descriptor, not a measurement.
    w = schema.index("Weight")
    weight_rows = np.flatnonzero(code == w)
    first_w = weight_rows[np.unique(row_file[weight_rows], return_index=True)[1]]
    first_w = first_w[time[first_w] == 0.0]
    code[first_w] = -1 - static_names.index("Weight")

    # RecordID per file: exactly one, matching across the file.
    rid_rows = np.flatnonzero(code == -6)
    rid_count = np.bincount(row_file[rid_rows], minlength=len(files))
    if (rid_count != 1).any():
        fi = int(np.flatnonzero(rid_count != 1)[0])
        raise DataFormatError(
            f"expected exactly one RecordID line, found {rid_count[fi]}", files[fi]
        )
    rid_values = value[rid_rows][np.argsort(row_file[rid_rows], kind="stable")]
    if not np.all(rid_values == np.round(rid_values)):
        fi = int(np.flatnonzero(rid_values != np.round(rid_values))[0])
        raise DataFormatError(f"RecordID must be an integer, got {rid_values[fi]}", files[fi])
    stay_id = rid_values.astype(np.int64).astype(str)
    uniq, first, counts = np.unique(stay_id, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1][0]
        where = [str(files[i]) for i in np.flatnonzero(stay_id == dup)]
        raise DataFormatError(f"duplicate RecordID {dup} in {where}")

    # Labels.
    label = np.empty(len(files), dtype=np.int8)
    for si, s in enumerate(sets):
        lab = labels_by_set[si]
        idx = np.flatnonzero(np.asarray(set_of_file) == si)
        for i in idx:
            try:
                label[i] = lab[stay_id[i]]
            except KeyError:
                raise DataFormatError(
                    f"RecordID {stay_id[i]} ({files[i].name}) has no label in Outcomes-{s}.txt",
                    root / f"Outcomes-{s}.txt",
                ) from None

    # Static descriptors (last value wins if repeated).
    cleaning: dict = {"policy": CLEANING_POLICY, "blank_lines": int(blank)}
    static = np.full((len(files), len(static_names)), np.nan)
    static_out: dict[str, int] = {}
    for j, sv in enumerate(schema.static):
        rows = np.flatnonzero(code == -1 - j)
        vals = value[rows]
        present_ = vals != -1
        bad = present_ & ((vals < sv.low) | (vals > sv.high))
        static_out[sv.name] = int(bad.sum())
        keep = present_ & ~bad
        static[row_file[rows[keep]], j] = vals[keep]
    cleaning["static_out_of_range_set_missing"] = static_out

    # Time series with the cleaning policy.
    series = code >= 0
    var = code[series]
    t = time[series]
    v = value[series]
    stay = row_file[series]
    outside = t > WINDOW_HOURS
    out_of_range = (v < schema.lows[var]) | (v > schema.highs[var])
    dropped = np.bincount(var[out_of_range & ~outside], minlength=len(schema))
    cleaning["dropped_outside_window"] = int(outside.sum())
    cleaning["dropped_out_of_range"] = {
        schema.variables[i].name: int(dropped[i]) for i in np.flatnonzero(dropped)
    }
    cleaning["dropped_out_of_range_total"] = int(dropped.sum())
    keep = ~outside & ~out_of_range
    events = Events.from_flat(stay[keep], len(files), t[keep], var[keep], v[keep])
    cleaning["empty_stays"] = int((np.diff(events.offsets) == 0).sum())

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
    )
