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
- empty cells are missing; rows without any value and stays without any event are kept and counted.

Anything that does not fit the format (a header other than `Hours` + the 17 channels in order, a
wrong number of fields, a non-numeric or non-finite numeric value, categorical text that is not
one of the benchmark's spellings, an empty or decreasing `Hours`, duplicate stays, labels other
than 0/1, a listed file that does not exist) raises `DataFormatError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ehrbackdoor.data.cohort import WINDOW_HOURS, Cohort, Events
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.schema import Schema, Variable, mimic3_schema

#: The benchmark's tolerance on the 48-hour window (and on its bin edges).
EPS = 1e-6
SPLITS = ("train", "val", "test")
#: Folder holding each split's episode files (validation stays are carved out of train/).
SPLIT_FOLDER = {"train": "train", "val": "train", "test": "test"}
LISTFILE_HEADER = "stay,y_true"

CLEANING_POLICY = (
    "rows with Hours outside (-1e-6, 48 + 1e-6) are dropped (the benchmark task's window); values "
    "outside the schema's valid range are counted but kept (the benchmark does not clean them); "
    "empty cells are missing; empty rows and stays without events are kept and counted"
)


def _columns(schema: Schema) -> list[str]:
    return ["Hours", *schema.names]


def _header(schema: Schema) -> bytes:
    return ",".join(_columns(schema)).encode()


def listfile_path(root: Path, split: str) -> Path:
    return Path(root) / f"{split}_listfile.csv"


def is_mimic3_dir(root: str | Path) -> bool:
    """True if `root` looks like a benchmark task directory (a listfile and its episode folder)."""
    root = Path(root)
    if not root.is_dir():
        return False
    return any(
        listfile_path(root, s).is_file() and (root / SPLIT_FOLDER[s]).is_dir() for s in SPLITS
    )


# --------------------------------------------------------------------------------------------------
# listfiles
# --------------------------------------------------------------------------------------------------


def read_listfile(path: Path) -> tuple[list[str], list[int]]:
    """Stay names and labels of one `{split}_listfile.csv`, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError("listfile is missing", path)
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != LISTFILE_HEADER:
        got = lines[0][:60] if lines else ""
        raise DataFormatError(f"expected header {LISTFILE_HEADER!r}, got {got!r}", path, 1)
    stays: list[str] = []
    labels: list[int] = []
    first_line: dict[str, int] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 2:
            raise DataFormatError(
                f"expected 2 comma-separated fields stay,y_true, got {len(parts)}: {line[:80]!r}",
                path,
                n,
            )
        stay, y = parts[0].strip(), parts[1].strip()
        if not stay:
            raise DataFormatError("empty stay name", path, n)
        if y not in ("0", "1"):
            raise DataFormatError(f"y_true must be 0 or 1, got {y!r}", path, n)
        if stay in first_line:
            raise DataFormatError(
                f"duplicate stay {stay!r} (first listed on line {first_line[stay]})", path, n
            )
        first_line[stay] = n
        stays.append(stay)
        labels.append(int(y))
    return stays, labels


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


def _load_blobs(
    files: Sequence[str], schema: Schema
) -> tuple[bytes, np.ndarray, int, dict[int, np.ndarray]]:
    """Concatenate files without their header.

    Returns the bytes, rows per file, the number of blank lines removed and, for files that had
    blank lines, the original line number of each kept row (so errors still name the right line).
    """
    header = _header(schema)
    parts: list[bytes] = []
    n_rows = np.zeros(len(files), dtype=np.int64)
    blank = 0
    line_maps: dict[int, np.ndarray] = {}
    for i, f in enumerate(files):
        try:
            with open(f, "rb") as fh:
                b = fh.read()
        except FileNotFoundError:
            raise DataFormatError("episode file does not exist", f) from None
        if b"\r" in b:
            b = b.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b.startswith(b"\xef\xbb\xbf"):
            b = b[3:]
        nl = b.find(b"\n")
        head = b if nl < 0 else b[:nl]
        if head.strip() != header:
            raise DataFormatError(_header_error(head.strip(), schema), f, 1)
        body = b"" if nl < 0 else b[nl + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        if b"\n\n" in body or body.startswith(b"\n"):
            lines = body.split(b"\n")[:-1]
            kept = [k for k, ln in enumerate(lines) if ln.strip()]
            blank += len(lines) - len(kept)
            line_maps[i] = np.asarray(kept, dtype=np.int64) + 2
            body = b"".join(lines[k] + b"\n" for k in kept)
        n_rows[i] = body.count(b"\n")
        parts.append(body)
    return b"".join(parts), n_rows, blank, line_maps


class _Locator:
    """Maps a global row index of the concatenated parse back to its file and line."""

    def __init__(self, files: Sequence[str], n_rows: np.ndarray, line_maps: dict[int, np.ndarray]):
        self.files = list(files)
        self.ends = np.cumsum(n_rows)
        self.line_maps = line_maps

    def __call__(self, row: int) -> tuple[Path, int]:
        fi = int(np.searchsorted(self.ends, row, side="right"))
        start = int(self.ends[fi - 1]) if fi > 0 else 0
        k = row - start
        if fi in self.line_maps:
            return Path(self.files[fi]), int(self.line_maps[fi][k])
        return Path(self.files[fi]), k + 2  # the header is line 1


def _scan_for_field_error(files: Sequence[str], n_fields: int) -> None:
    """Slow path, only after Arrow failed: the first non-UTF-8 text or line with a wrong field count."""
    for f in files:
        raw = Path(f).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DataFormatError(f"is not UTF-8 text: {exc.reason}", f, line) from None
        for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if row and len(row) != n_fields:
                raise DataFormatError(
                    f"expected {n_fields} comma-separated fields (Hours + {n_fields - 1} "
                    f"channels), got {len(row)}",
                    f,
                    n,
                )


def _find_bad_number(data: bytes, columns: list[str], numeric: list[str], loc: _Locator) -> None:
    """Slow path: parse all columns as text; report the first numeric cell that is not a number."""
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=columns, block_size=1 << 26),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in columns},
            null_values=[""],
            strings_can_be_null=True,
        ),
    )
    first_bad: tuple[int, str, str] | None = None
    for name in numeric:
        enc = pc.dictionary_encode(table[name].combine_chunks())
        bad_codes = []
        for k, text in enumerate(enc.dictionary.to_pylist()):
            try:
                float(text)
            except ValueError:
                bad_codes.append(k)
        if bad_codes:
            idx = enc.indices.to_numpy(zero_copy_only=False)
            rows = np.flatnonzero(np.isin(idx, bad_codes))
            row = int(rows[0])
            if first_bad is None or row < first_bad[0]:
                first_bad = (row, name, table[name][row].as_py())
    if first_bad is not None:
        row, name, text = first_bad
        f, line = loc(row)
        raise DataFormatError(f"column {name!r}: expected a number, got {text!r}", f, line)


def _parse(data: bytes, files: Sequence[str], schema: Schema, loc: _Locator) -> pa.Table:
    """One Arrow parse of all rows: Hours and numeric channels as float64, categoricals as text."""
    columns = _columns(schema)
    types = {"Hours": pa.float64()}
    for v in schema.variables:
        types[v.name] = pa.string() if v.is_categorical else pa.float64()
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=columns, block_size=1 << 26),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        _scan_for_field_error(files, len(columns))
        numeric = [c for c, t in types.items() if t == pa.float64()]
        try:
            _find_bad_number(data, columns, numeric, loc)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        where = os.path.dirname(files[0]) if files else None
        raise DataFormatError(f"could not parse the episode files as CSV: {exc}", where) from exc


def _check_finite(values: np.ndarray, rows: np.ndarray, name: str, loc: _Locator) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        f, line = loc(int(rows[k]))
        raise DataFormatError(
            f"column {name!r}: expected a finite number, got {values[k]!r}", f, line
        )


def _categorical(col: pa.Array, v: Variable, loc: _Locator) -> tuple[np.ndarray, np.ndarray]:
    """Clinical codes and benchmark one-hot positions of a text column's non-empty cells."""
    enc = pc.dictionary_encode(col)
    texts = [str(t) for t in enc.dictionary.to_pylist()]
    code_of = np.empty(len(texts), dtype=np.float64)
    alias_of = np.empty(len(texts), dtype=np.int8)
    for k, t in enumerate(texts):
        if t not in v.aliases:
            idx = enc.indices.to_numpy(zero_copy_only=False)
            f, line = loc(int(np.flatnonzero(idx == k)[0]))
            raise DataFormatError(
                f"column {v.name!r}: unknown value {t!r}; expected one of "
                f"{list(v.benchmark_values)}",
                f,
                line,
            )
        code_of[k] = v.aliases[t]
        alias_of[k] = v.benchmark_values.index(t)
    codes = pc.drop_null(enc.indices).to_numpy()
    return code_of[codes], alias_of[codes]


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
    if len(labels) != n:
        raise ValueError(f"{n} episode files but {len(labels)} labels")
    raw_label = np.asarray(labels).reshape(-1)
    ok = np.array(
        [isinstance(y, (int, np.integer)) and y in (0, 1) for y in raw_label.tolist()], dtype=bool
    )
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        raise DataFormatError(f"label must be 0 or 1, got {raw_label[k]!r}", files[k])
    label = raw_label.astype(np.int8)
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

    data, n_rows, blank, line_maps = _load_blobs(files, schema)
    loc = _Locator(files, n_rows, line_maps)
    total_rows = int(n_rows.sum())
    if total_rows:
        table = _parse(data, files, schema, loc)
        if table.num_rows != total_rows:
            raise DataFormatError(
                f"parsed {table.num_rows} rows but the files hold {total_rows} lines "
                "(quoted newlines?)"
            )
    else:
        table = None
    row_file = np.repeat(np.arange(n, dtype=np.int64), n_rows)

    # Hours: present, finite, non-decreasing within a file (the benchmark asserts sorted times).
    if table is not None:
        hours_col = table["Hours"].combine_chunks()
        if hours_col.null_count:
            k = int(np.flatnonzero(~hours_col.is_valid().to_numpy(zero_copy_only=False))[0])
            f, line = loc(k)
            raise DataFormatError("column 'Hours' is empty; every row needs a time", f, line)
        hours = hours_col.to_numpy()
    else:
        hours = np.zeros(0)
    _check_finite(hours, np.arange(len(hours)), "Hours", loc)
    decreasing = (np.diff(hours) < 0) & (row_file[1:] == row_file[:-1])
    if decreasing.any():
        k = int(np.flatnonzero(decreasing)[0]) + 1
        f, line = loc(k)
        raise DataFormatError(
            f"Hours must be non-decreasing, got {hours[k]!r} after {hours[k - 1]!r}", f, line
        )
    before = hours <= -EPS
    after = hours >= WINDOW_HOURS + EPS
    keep_row = ~before & ~after

    # Per column: rows holding a value (inside the window), and its value / alias code.
    n_var = len(schema)
    present = np.zeros((n_var, len(hours)), dtype=bool)  # channel-major: row-wise adds below
    per_var: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    out_of_range: dict[str, int] = {}
    dropped_events = 0
    for j, v in enumerate(schema.variables):
        if table is None:
            per_var.append((np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int8)))
            continue
        col = table[v.name].combine_chunks()
        rows = np.flatnonzero(col.is_valid().to_numpy(zero_copy_only=False))
        if v.is_categorical:
            values, alias = _categorical(col, v, loc)
        else:
            values = pc.drop_null(col).to_numpy()
            _check_finite(values, rows, v.name, loc)
            alias = np.full(len(values), -1, dtype=np.int8)
        inside = keep_row[rows]
        if not inside.all():
            dropped_events += int(len(rows) - inside.sum())
            rows, values, alias = rows[inside], values[inside], alias[inside]
        present[j, rows] = True
        per_var.append((rows, values, alias))
        n_out = int(((values < v.low) | (values > v.high)).sum())
        if n_out:
            out_of_range[v.name] = n_out

    # Long format ordered by (row, channel): rows are already in (stay, time) order, so an
    # event's position is its row's first event plus the number of earlier channels with a value.
    rank = present.view(np.int8).copy()  # (channels, rows): running count, at most 17
    for j in range(1, n_var):
        np.add(rank[j - 1], rank[j], out=rank[j])  # row-wise adds: far faster than np.cumsum
    row_count = rank[-1].astype(np.int64)
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
    events = Events(offsets, np.repeat(hours, row_count), variable, value, alias)

    cleaning = {
        "policy": CLEANING_POLICY,
        "blank_lines": int(blank),
        "dropped_rows_before_0h": int(before.sum()),
        "dropped_rows_after_48h": int(after.sum()),
        "dropped_events_outside_window": int(dropped_events),
        "out_of_range_kept": out_of_range,
        "out_of_range_kept_total": int(sum(out_of_range.values())),
        "empty_rows": int((keep_row & (row_count == 0)).sum()),
        "empty_stays": int((per_stay == 0).sum()),
    }
    meta = {
        "format": "mimic3",
        "n_files": n,
        "n_raw_rows": total_rows,
        "cleaning": cleaning,
    }
    return Cohort(
        schema=schema,
        stay_id=stay_id,
        label=label,
        static=np.zeros((n, 0), dtype=np.float64),
        events=events,
        meta=meta,
    )


# --------------------------------------------------------------------------------------------------
# whole task directory
# --------------------------------------------------------------------------------------------------


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
                    _listfile_line(lf, name),
                )
            seen[name] = lf.name
            if name not in present:
                line = _listfile_line(lf, name)
                raise DataFormatError(
                    f"listed stay {name!r} has no episode file {folder / name}", lf, line
                )
        membership[s] = list(names)
        paths += [os.path.join(folder, name) for name in names]
        stays += names
        labels += ys

    cohort = read_episode_files(paths, labels, stays)
    cohort.meta.update(
        {
            "path": str(root),
            "splits_read": list(splits),
            "split": membership,
        }
    )
    return cohort


def _listfile_line(path: Path, stay: str) -> int | None:
    """Line of `stay` in a listfile (error path only)."""
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.split(",")[0].strip() == stay:
            return n
    return None


def _split_lists(meta: dict) -> dict[str, list[str]] | None:
    """The official split in `meta`, merging the sources of concatenated cohorts."""
    if "split" in meta:
        return {s: list(meta["split"].get(s, [])) for s in SPLITS}
    sources = meta.get("sources")
    if not sources:
        return None
    merged: dict[str, list[str]] = {s: [] for s in SPLITS}
    found = False
    for m in sources:
        part = _split_lists(m)
        if part is not None:
            found = True
            for s in SPLITS:
                merged[s] += part[s]
    return merged if found else None


def official_split(cohort: Cohort) -> dict[str, np.ndarray]:
    """Positions (in cohort order) of the stays of each official split: train, val, test.

    Stays that were removed from the cohort (e.g. by `subset`) are simply absent.
    """
    lists = _split_lists(cohort.meta)
    if lists is None:
        raise ValueError(
            "this cohort has no official split in meta['split'] (read it with read_mimic3)"
        )
    out = {}
    for s in SPLITS:
        ids = np.asarray(lists[s], dtype=str)
        out[s] = np.flatnonzero(np.isin(cohort.stay_id, ids)) if len(ids) else np.zeros(0, np.int64)
    assigned = sum(len(p) for p in out.values())
    if assigned != len(np.unique(np.concatenate(list(out.values())))):
        raise ValueError("a stay belongs to more than one official split")
    return out
