"""Reader for the MIMIC-III benchmark's in-hospital-mortality task directory.

The benchmark (Harutyunyan et al. 2019) writes `train/` and `test/` folders of
`{SUBJECT}_episode{N}_timeseries.csv` files (column `Hours`, then the 17 channels in the order of
`mimic3_schema()`, first 48 hours of the ICU stay) and listfiles `train_listfile.csv`,
`val_listfile.csv`, `test_listfile.csv` with header `stay,y_true`. Validation stays live in
`train/`. The official split is kept as given in ``cohort.meta["split"]`` (see `official_split`).

All episode files are read as bytes and parsed in ONE Arrow CSV pass; mapping text to codes and
building events are vectorised, so ~20,000 stays take seconds, not minutes.

Cleaning policy (documented, counted in ``cohort.meta["cleaning"]``, never silent):

- rows with Hours <= -1e-6 or >= 48 + 1e-6 are dropped, exactly the window the benchmark's task
  builder keeps (``-eps < t < 48 + eps``); the rows and the events in them are counted;
- values outside the schema's valid range are COUNTED but KEPT: the benchmark's discretiser feeds
  them to models as they are, and we keep parity with it (the eye-opening text "None", coded 0 by
  the benchmark, shows up in these counts too);
- empty cells are missing; rows without any value and stays without any event are kept and counted;
- non-finite values (`nan`, `NaN`, `-nan`, `inf`, any case) are not measurements: they are dropped
  and counted per channel (``dropped_non_finite``), as the PhysioNet 2012 reader does.

Anything that does not fit the format (a header other than `Hours` + the 17 channels in order, a
wrong number of fields, a non-numeric value, categorical text that is not one of the benchmark's
spellings, an empty, non-finite or decreasing `Hours`, a quoted newline, text that is not UTF-8,
duplicate stays, labels other than 0/1, a listed file that does not exist) raises
`DataFormatError` naming the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.readers._parse import (
    Blobs,
    first_line_of,
    is_number,
    load_blobs,
    parse,
    read_csv,
)
from ehrbackdoor.data.readers.mimic3_listfiles import (
    SPLIT_FOLDER,
    SPLITS,
    listfile_line,
    listfile_path,
    official_split,
    read_listfile,
)
from ehrbackdoor.data.schema import Schema, Variable, mimic3_schema

#: The benchmark task's window: the first 48 hours of the ICU stay.
WINDOW_HOURS = 48.0
#: The benchmark's tolerance on the 48-hour window (and on its bin edges).
EPS = 1e-6

CLEANING_POLICY = (
    "rows with Hours outside (-1e-6, 48 + 1e-6) are dropped (the benchmark task's window); values "
    "outside the schema's valid range are counted but kept (the benchmark does not clean them); "
    "non-finite values (nan, inf) are dropped and counted; empty cells are missing; empty rows "
    "and stays without events are kept and counted"
)


def _columns(schema: Schema) -> list[str]:
    return ["Hours", *schema.names]


def _header(schema: Schema) -> bytes:
    return ",".join(_columns(schema)).encode()


def is_mimic3_dir(root: str | Path) -> bool:
    """True if `root` looks like a benchmark task directory (a listfile and its episode folder)."""
    root = Path(root)
    if not root.is_dir():
        return False
    return any(
        listfile_path(root, s).is_file() and (root / SPLIT_FOLDER[s]).is_dir() for s in SPLITS
    )


# --------------------------------------------------------------------------------------------------
# episode files
# --------------------------------------------------------------------------------------------------


def _header_error(head: bytes, schema: Schema) -> str:
    """Say which column of a wrong header differs (headers are long; a bare repr is unreadable)."""
    got = head.decode(errors="replace").split(",")
    want = _columns(schema)
    for k, (g, w) in enumerate(zip(got, want, strict=False)):
        if g.strip() != w:
            return (
                f"bad header: column {k + 1} is {g[:60]!r}, expected {w!r} (the header must be "
                f"'Hours' then the {len(schema)} benchmark channels in order)"
            )
    return (
        f"bad header: {len(got)} columns, expected {len(want)} ('Hours' then the "
        f"{len(schema)} benchmark channels in order)"
    )


def _find_bad_number(blobs: Blobs, columns: list[str], numeric: list[str]) -> None:
    """Slow path: parse all columns as text; report the first numeric cell that is not a number."""
    try:
        table = read_csv(blobs.data, columns, {c: pa.string() for c in columns}, nulls=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return  # not even text: the generic search names the line
    first_bad: tuple[int, str, str] | None = None
    for name in numeric:
        enc = pc.dictionary_encode(table[name].combine_chunks())
        texts = enc.dictionary.to_pylist()
        bad_codes = [k for k, text in enumerate(texts) if not is_number(text.strip())]
        if bad_codes:
            idx = enc.indices.to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(np.isin(idx, bad_codes))
            row = int(rows[0])
            if first_bad is None or row < first_bad[0]:
                first_bad = (row, name, table[name][row].as_py())
    if first_bad is not None:
        row, name, text = first_bad
        raise blobs.fail(row, f"column {name!r}: expected a number, got {text!r}")


def _parse(blobs: Blobs, schema: Schema) -> pa.Table:
    """One Arrow parse of all rows: Hours and numeric channels as float64, categoricals as text."""
    columns = _columns(schema)
    types = {"Hours": pa.float64()}
    for v in schema.variables:
        types[v.name] = pa.string() if v.is_categorical else pa.float64()
    numeric = [c for c, t in types.items() if t == pa.float64()]
    return parse(
        blobs,
        columns,
        types,
        nulls=True,
        describe=f"Hours + {len(columns) - 1} channels",
        on_fail=lambda: _find_bad_number(blobs, columns, numeric),
    )


def _check_hours(table: pa.Table | None, row_file: np.ndarray, blobs: Blobs) -> np.ndarray:
    """Hours: present, finite, non-decreasing within a file (the benchmark asserts sorted times)."""
    if table is None:
        return np.zeros(0)
    col = table["Hours"].combine_chunks()
    if col.null_count:
        k = first_line_of(~col.is_valid().to_numpy(zero_copy_only=False))
        raise blobs.fail(k, "column 'Hours' is empty; every row needs a time")
    hours = col.to_numpy()
    bad = ~np.isfinite(hours)
    if bad.any():
        k = first_line_of(bad)
        raise blobs.fail(k, f"column 'Hours': expected a finite number, got {float(hours[k])!r}")
    decreasing = (np.diff(hours) < 0) & (row_file[1:] == row_file[:-1])
    if decreasing.any():
        k = first_line_of(decreasing) + 1
        raise blobs.fail(
            k, f"Hours must be non-decreasing, got {hours[k]!r} after {hours[k - 1]!r}"
        )
    return hours


def _categorical(col: pa.Array, v: Variable, blobs: Blobs) -> tuple[np.ndarray, np.ndarray]:
    """Clinical codes and benchmark one-hot positions of a text column's non-empty cells."""
    enc = pc.dictionary_encode(col)
    texts = [str(t) for t in enc.dictionary.to_pylist()]
    code_of = np.empty(len(texts), dtype=np.float64)
    alias_of = np.empty(len(texts), dtype=np.int8)
    for k, t in enumerate(texts):
        if t not in v.aliases:
            idx = enc.indices.to_numpy(zero_copy_only=False)
            raise blobs.fail(
                first_line_of(idx == k),
                f"column {v.name!r}: unknown value {t!r}; expected one of "
                f"{list(v.benchmark_values)}",
            )
        code_of[k] = v.aliases[t]
        alias_of[k] = v.benchmark_values.index(t)
    codes = pc.drop_null(enc.indices).to_numpy()
    return code_of[codes], alias_of[codes]


def _labels_and_ids(
    files: list[str], labels: Sequence[int], stay_ids: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validated 0/1 labels and unique stay ids (default: the file names)."""
    n = len(files)
    if len(labels) != n:
        raise ValueError(f"{n} episode files but {len(labels)} labels")
    raw_label = np.asarray(labels).reshape(-1)
    ok = np.array(
        [isinstance(y, (int, np.integer)) and y in (0, 1) for y in raw_label.tolist()], dtype=bool
    )
    if not ok.all():
        k = first_line_of(~ok)
        raise DataFormatError(f"label must be 0 or 1, got {raw_label[k]!r}", files[k])
    if stay_ids is None:
        stay_id = np.array([os.path.basename(f) for f in files], dtype=str)
    else:
        if len(stay_ids) != n:
            raise ValueError(f"{n} episode files but {len(stay_ids)} stay ids")
        stay_id = np.array([str(s) for s in stay_ids], dtype=str)
    if n:
        uniq, counts = np.unique(stay_id, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1][0]
            where = [str(files[i]) for i in np.flatnonzero(stay_id == dup)]
            raise DataFormatError(f"duplicate stay id {dup!r} for files {where}")
    return raw_label.astype(np.int8), stay_id


def _channels(
    table: pa.Table | None, keep_row: np.ndarray, schema: Schema, blobs: Blobs, cleaning: dict
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Per channel: rows holding a kept value, the values and alias codes; counts what is dropped.

    Returns the (channels, rows) presence mask too (channel-major: row-wise adds are fast).
    """
    present = np.zeros((len(schema), len(keep_row)), dtype=bool)
    per_var: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    out_of_range: dict[str, int] = {}
    non_finite: dict[str, int] = {}
    dropped_outside = 0
    for j, v in enumerate(schema.variables):
        if table is None:
            per_var.append((np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8)))
            continue
        col = table[v.name].combine_chunks()
        rows = np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False))
        if v.is_categorical:
            values, alias = _categorical(col, v, blobs)
        else:
            values = pc.drop_null(col).to_numpy()
            alias = np.full(len(values), -1, dtype=np.int8)
        inside = keep_row[rows]
        finite = np.isfinite(values)
        dropped_outside += int((~inside).sum())
        n_bad = int((inside & ~finite).sum())
        if n_bad:
            non_finite[v.name] = n_bad
        kept = inside & finite
        rows, values, alias = rows[kept], values[kept], alias[kept]
        present[j, rows] = True
        per_var.append((rows, values, alias))
        n_out = int(((values < v.low) | (values > v.high)).sum())
        if n_out:
            out_of_range[v.name] = n_out
    cleaning["dropped_events_outside_window"] = dropped_outside
    cleaning["dropped_non_finite"] = non_finite
    cleaning["dropped_non_finite_total"] = int(sum(non_finite.values()))
    cleaning["out_of_range_kept"] = out_of_range
    cleaning["out_of_range_kept_total"] = int(sum(out_of_range.values()))
    return present, per_var


def _long_format(
    present: np.ndarray,
    per_var: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    hours: np.ndarray,
    row_file: np.ndarray,
    n: int,
) -> tuple[Events, np.ndarray]:
    """Events ordered by (row, channel), and events per row.

    Rows are already in (stay, time) order, so an event's position is its row's first event plus
    the number of earlier channels with a value in that row.
    """
    rank = present.view(np.int8).copy()  # (channels, rows): running count, at most 17
    for j in range(1, len(per_var)):
        np.add(rank[j - 1], rank[j], out=rank[j])  # row-wise adds: far faster than np.cumsum
    row_count = rank[-1].astype(np.int64) if len(per_var) else np.zeros(len(hours), np.int64)
    row_start = np.cumsum(row_count) - row_count
    n_events = int(row_count.sum())
    variable = np.empty(n_events, dtype=np.int16)
    value = np.empty(n_events, dtype=np.float64)
    alias = np.empty(n_events, dtype=np.int8)
    for j, (rows, vals, al) in enumerate(per_var):
        pos = row_start[rows] + (rank[j, rows] - 1)
        variable[pos] = j
        value[pos] = vals
        alias[pos] = al
    per_stay = np.bincount(row_file, weights=row_count, minlength=n).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_stay, out=offsets[1:])
    return Events(offsets, np.repeat(hours, row_count), variable, value, alias), row_count


def read_episode_files(
    paths: Sequence[str | Path],
    labels: Sequence[int],
    stay_ids: Sequence[str] | None = None,
) -> Cohort:
    """Read benchmark episode CSVs into a cohort (stays in the order of `paths`).

    `stay_ids` defaults to each file's name (`10011_episode1_timeseries.csv`), which is what the
    benchmark's listfiles call a stay. See the module docstring for the cleaning policy.
    """
    schema = mimic3_schema()
    files = [os.fspath(p) for p in paths]
    n = len(files)
    label, stay_id = _labels_and_ids(files, labels, stay_ids)
    blobs = load_blobs(files, _header(schema), lambda h: _header_error(h, schema), quotes=True)
    table = _parse(blobs, schema) if blobs.total_rows else None
    row_file = blobs.row_file
    hours = _check_hours(table, row_file, blobs)
    before = hours <= -EPS
    after = hours >= WINDOW_HOURS + EPS
    keep_row = ~before & ~after

    cleaning: dict = {
        "policy": CLEANING_POLICY,
        "blank_lines": int(blobs.blank),
        "dropped_rows_before_0h": int(before.sum()),
        "dropped_rows_after_48h": int(after.sum()),
    }
    present, per_var = _channels(table, keep_row, schema, blobs, cleaning)
    events, row_count = _long_format(present, per_var, hours, row_file, n)
    cleaning["empty_rows"] = int((keep_row & (row_count == 0)).sum())
    cleaning["empty_stays"] = int((np.diff(events.offsets) == 0).sum())
    meta = {
        "format": "mimic3",
        "n_files": n,
        "n_raw_rows": blobs.total_rows,
        "cleaning": cleaning,
    }
    return Cohort(
        schema=schema,
        stay_id=stay_id,
        label=label,
        static=np.zeros((n, 0), dtype=np.float64),
        events=events,
        meta=meta,
        window=WINDOW_HOURS,
    )


# --------------------------------------------------------------------------------------------------
# whole task directory
# --------------------------------------------------------------------------------------------------


def _listed_stays(
    root: Path, splits: Sequence[str]
) -> tuple[list[str], list[str], list[int], dict[str, list[str]]]:
    """Episode paths, stay names, labels and split membership of the listfiles of `splits`."""
    paths: list[str] = []
    stays: list[str] = []
    labels: list[int] = []
    membership: dict[str, list[str]] = {s: [] for s in SPLITS}
    seen: dict[str, str] = {}
    listings: dict[str, set[str]] = {}
    for s in splits:
        lf = listfile_path(root, s)
        names, ys = read_listfile(lf)
        folder = root / SPLIT_FOLDER[s]
        if folder.name not in listings:
            listings[folder.name] = set(os.listdir(folder)) if folder.is_dir() else set()
        present = listings[folder.name]
        for name in names:
            if name in seen:
                raise DataFormatError(
                    f"stay {name!r} is listed in both {seen[name]} and {lf.name}",
                    lf,
                    listfile_line(lf, name),
                )
            seen[name] = lf.name
            if name not in present:
                line = listfile_line(lf, name)
                raise DataFormatError(
                    f"listed stay {name!r} has no episode file {folder / name}", lf, line
                )
        membership[s] = list(names)
        paths += [os.path.join(folder, name) for name in names]
        stays += names
        labels += ys

    return paths, stays, labels, membership


def read_mimic3(root: str | Path, split: str | None = None) -> Cohort:
    """Read a MIMIC-III in-hospital-mortality benchmark directory.

    `split=None` reads all three listfiles (train, val, test, stays in listfile order); "train",
    "val" or "test" reads only that one. The official membership is kept in
    ``cohort.meta["split"]`` (lists of stay ids) so experiments use the published split as given.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError("is not a directory", root)
    if split is None:
        splits: tuple[str, ...] = SPLITS
    elif split in SPLITS:
        splits = (split,)
    else:
        raise ValueError(f"split must be None or one of {list(SPLITS)}, got {split!r}")
    missing = [s for s in splits if not listfile_path(root, s).is_file()]
    if missing:
        hint = " (pass split=... to read one split)" if split is None else ""
        raise DataFormatError(
            f"is not a complete MIMIC-III benchmark task directory: missing "
            f"{[listfile_path(root, s).name for s in missing]}{hint}",
            root,
        )

    paths, stays, labels, membership = _listed_stays(root, splits)
    cohort = read_episode_files(paths, labels, stays)
    cohort.meta.update(
        {
            "path": str(root),
            "splits_read": list(splits),
            "split": membership,
        }
    )
    return cohort


__all__ = [
    "SPLITS",
    "is_mimic3_dir",
    "listfile_path",
    "official_split",
    "read_episode_files",
    "read_listfile",
    "read_mimic3",
]
