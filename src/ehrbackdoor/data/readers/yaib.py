"""Reader for YAIB cohorts (MIMIC-III, MIMIC-IV, eICU, HiRID, AUMCdb), built by ricu.

YAIB (van de Water et al., ICLR 2024) delivers every database in one layout:

- `dyn.parquet`: one row per stay and hour: `stay_id` (integer), `time` (a duration since ICU
  admission, or a number of hours), then ricu concepts (`hr`, `sbp`, ..., see `yaib_schema()`) in
  ricu's units, NaN where nothing was measured;
- `sta.parquet`: one row per stay: `stay_id`, `age`, `sex` ("Female"/"Male"), `height`, `weight`;
- `outc.parquet`: one row per stay: `stay_id`, `label` (0/1).

Time and window. ricu aggregates measurements into hourly rows whose time is the START of the hour
(floored), so the row at hour t holds what was charted in [t, t+1); each of its values becomes an
event at t + 0.5 h, the middle of that interval, which puts every row back in its own hour when the
cohort is binned hourly. The window is the task's: YAIB keeps ricu rows 0..N for an N-hour task
(Mortality24: hours 0-24, 25 rows a stay), so by default it is the hour of the last row in
`dyn.parquet` (24 for Mortality24); pass `window=` to set it.

Cleaning policy (documented, counted in ``cohort.meta["cleaning"]``, never silent):

- rows at or beyond the window (Mortality24's hour-24 row covers [24, 25) h) or before admission
  are dropped; rows and events counted;
- NaN is "not measured" (YAIB's own missing marker); infinite values are dropped and counted;
- values outside the schema's valid range are counted but kept (YAIB feeds them to its models);
- static values outside their valid range are set missing and counted;
- stays with a label but no `dyn` row are kept and counted as empty.

Anything else (a missing or unreadable file, a missing column, a column of the wrong type, an
unknown concept, a null id or time, a time off the hour, duplicate stays or stay-hours, labels
other than 0/1, an unknown sex, stays without a label or static row) raises `DataFormatError`
naming the file, the column and the first offending row. All columns are read with pyarrow and
handled as whole arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.schema import Schema
from ehrbackdoor.data.schema_yaib import yaib_schema

FILES = ("dyn.parquet", "sta.parquet", "outc.parquet")
#: Where an hourly row's values are placed inside their hour (its middle).
ROW_OFFSET_HOURS = 0.5

CLEANING_POLICY = (
    "dyn rows at or beyond the window or before admission are dropped; NaN is not measured; "
    "infinite values are dropped and counted; values outside the schema's valid range are counted "
    "but kept; static values outside their valid range are missing; stays without dyn rows are "
    "kept and counted"
)


def is_yaib_dir(root: str | Path) -> bool:
    """True if `root` holds YAIB's three cohort files."""
    root = Path(root)
    return root.is_dir() and all((root / f).is_file() for f in FILES)


def _read(path: Path) -> pa.Table:
    if not path.is_file():
        raise DataFormatError(f"is missing: a YAIB cohort needs {', '.join(FILES)}", path)
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataFormatError(f"is not a readable parquet file: {exc}", path) from None


def _column(table: pa.Table, name: str, path: Path, kinds: str) -> pa.Array:
    """Column `name`, checked against `kinds` ("int", "num", "time", "sex"); no nulls for ids."""
    if name not in table.column_names:
        raise DataFormatError(
            f"column {name!r} is missing (columns: {table.column_names[:12]})", path
        )
    col = table[name].combine_chunks()
    t = col.type
    ok = {
        "int": pa.types.is_integer(t),
        "num": pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t),
        "time": pa.types.is_duration(t) or pa.types.is_integer(t) or pa.types.is_floating(t),
        "sex": pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_dictionary(t)
        or pa.types.is_null(t),
    }[kinds]
    if not ok:
        want = {
            "int": "an integer",
            "num": "a number",
            "time": "a duration or hours",
            "sex": "text (Female/Male)",
        }[kinds]
        raise DataFormatError(f"column {name!r} has type {t}, expected {want}", path)
    if kinds in ("int", "time") and col.null_count:
        row = int(np.flatnonzero(~col.is_valid().to_numpy(zero_copy_only=False))[0])
        raise DataFormatError(f"column {name!r} is null in row {row + 1}", path)
    return col


def _ids(table: pa.Table, path: Path, unique: bool) -> np.ndarray:
    ids = _column(table, "stay_id", path, "int").to_numpy().astype(np.int64)
    if unique and len(ids):
        order = np.argsort(ids, kind="stable")
        dup = np.flatnonzero(np.diff(ids[order]) == 0)
        if len(dup):
            row = int(order[dup[0] + 1])
            raise DataFormatError(
                f"column 'stay_id': duplicate stay {ids[row]} in row {row + 1} (one row per stay)",
                path,
            )
    return ids


def _hours(col: pa.Array, path: Path) -> np.ndarray:
    if pa.types.is_duration(col.type):
        per_hour = {"s": 3600, "ms": 3.6e6, "us": 3.6e9, "ns": 3.6e12}[col.type.unit]
        hours = pc.cast(col, pa.int64()).to_numpy() / per_hour
    else:
        hours = pc.cast(col, pa.float64()).to_numpy()
    bad = ~np.isfinite(hours) | (hours != np.round(hours))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"column 'time': {float(hours[row])!r} h in row {row + 1} is not a whole hour "
            "(YAIB's rows are hourly)",
            path,
        )
    return hours


def _position(ids: np.ndarray, stays: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Index of each id among the labelled `stays` (sorted); raises on an id without a label."""
    pos = np.clip(np.searchsorted(stays, ids), 0, max(len(stays) - 1, 0))
    found = stays[pos] == ids if len(stays) else np.zeros(len(ids), dtype=bool)
    if not found.all():
        row = int(np.flatnonzero(~found)[0])
        raise DataFormatError(
            f"column 'stay_id': stay {ids[row]} in row {row + 1} has no label in outc.parquet "
            f"({what})",
            path,
        )
    return pos


def _labels(root: Path) -> tuple[np.ndarray, np.ndarray]:
    path = root / "outc.parquet"
    table = _read(path)
    if "time" in table.column_names:
        raise DataFormatError(
            "has a 'time' column: per-hour labels (YAIB's dynamic tasks) are not supported; "
            "expected one label per stay",
            path,
        )
    ids = _ids(table, path, unique=True)
    lab = _column(table, "label", path, "num")
    values = lab.to_numpy(zero_copy_only=False).astype(np.float64)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"column 'label': {lab[row].as_py()!r} in row {row + 1}, expected 0 or 1", path
        )
    order = np.argsort(ids, kind="stable")
    return ids[order], values[order].astype(np.int8)


def _static(root: Path, stays: np.ndarray, schema: Schema, cleaning: dict) -> np.ndarray:
    path = root / "sta.parquet"
    table = _read(path)
    ids = _ids(table, path, unique=True)
    pos = _position(ids, stays, path, "static row")
    if len(np.unique(pos)) != len(stays):
        missing = np.setdiff1d(stays, ids)[0]
        raise DataFormatError(f"column 'stay_id': labelled stay {missing} has no static row", path)
    static = np.full((len(stays), len(schema.static)), np.nan)
    out: dict[str, int] = {}
    for j, v in enumerate(schema.static):
        if v.name == "sex":
            col = _column(table, "sex", path, "sex")
            text = pc.utf8_lower(pc.cast(col, pa.string())).to_numpy(zero_copy_only=False)
            vals = np.full(len(text), np.nan)
            vals[text == "female"] = 0.0
            vals[text == "male"] = 1.0
            unknown = col.is_valid().to_numpy(zero_copy_only=False) & np.isnan(vals)
            if unknown.any():
                row = int(np.flatnonzero(unknown)[0])
                raise DataFormatError(
                    f"column 'sex': {text[row]!r} in row {row + 1}, expected Female or Male", path
                )
        else:
            col = pc.cast(_column(table, v.name, path, "num"), pa.float64())
            vals = col.to_numpy(zero_copy_only=False)
        bad = ~np.isnan(vals) & ~((vals >= v.low) & (vals <= v.high))
        out[v.name] = int(bad.sum())
        static[pos, j] = np.where(bad, np.nan, vals)
    cleaning["static_out_of_range_set_missing"] = out
    return static


def _events(
    root: Path, stays: np.ndarray, schema: Schema, window: float | None, cleaning: dict
) -> tuple[Events, float]:
    path = root / "dyn.parquet"
    table = _read(path)
    known = set(schema.names)
    extra = [c for c in table.column_names if c not in known and c not in ("stay_id", "time")]
    if extra:
        raise DataFormatError(
            f"column {extra[0]!r} is not a YAIB concept (known: {', '.join(schema.names)})", path
        )
    ids = _ids(table, path, unique=False)
    hours = _hours(_column(table, "time", path, "time"), path)
    stay = _position(ids, stays, path, "dyn row")
    order = np.lexsort((hours, stay))
    same = (np.diff(stay[order]) == 0) & (np.diff(hours[order]) == 0)
    if same.any():
        row = int(order[np.flatnonzero(same)[0] + 1])
        raise DataFormatError(
            f"columns 'stay_id', 'time': stay {ids[row]} has a second row for hour "
            f"{hours[row]:g} (row {row + 1})",
            path,
        )
    if window is None:
        window = float(hours.max()) if len(hours) else 24.0
    keep_row = (hours >= 0) & (hours + ROW_OFFSET_HOURS <= window)
    cleaning["dropped_rows_outside_window"] = int((~keep_row).sum())
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    non_finite: dict[str, int] = {}
    out_of_range: dict[str, int] = {}
    dropped_outside = 0
    for j, v in enumerate(schema.variables):
        if v.name not in table.column_names:
            continue
        vals = pc.cast(_column(table, v.name, path, "num"), pa.float64())
        vals = vals.fill_null(np.nan).to_numpy(zero_copy_only=False)
        measured = ~np.isnan(vals)
        dropped_outside += int((measured & ~keep_row).sum())
        inf = measured & keep_row & np.isinf(vals)
        if inf.any():
            non_finite[v.name] = int(inf.sum())
        rows = np.flatnonzero(measured & keep_row & ~inf)
        n_out = int(((vals[rows] < v.low) | (vals[rows] > v.high)).sum())
        if n_out:
            out_of_range[v.name] = n_out
        parts.append((rows, np.full(len(rows), j, dtype=np.int16), vals[rows]))
    cleaning["dropped_events_outside_window"] = dropped_outside
    cleaning["dropped_non_finite"] = non_finite
    cleaning["dropped_non_finite_total"] = int(sum(non_finite.values()))
    cleaning["out_of_range_kept"] = out_of_range
    cleaning["out_of_range_kept_total"] = int(sum(out_of_range.values()))
    rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    var = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int16)
    val = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
    # Concept-major input, stable sort by (stay, time): within a row, events keep concept order.
    events = Events.from_flat(stay[rows], len(stays), hours[rows] + ROW_OFFSET_HOURS, var, val)
    return events, window


def read_yaib(root: str | Path, window: float | None = None) -> Cohort:
    """Read a YAIB cohort folder (`dyn.parquet`, `sta.parquet`, `outc.parquet`) into a cohort.

    Stays are the labelled ones of `outc.parquet`, ordered by `stay_id`. `window` (hours) defaults
    to the hour of the last `dyn` row (24 for Mortality24). See the module docstring for the time
    convention and the cleaning policy; its counts are in ``cohort.meta["cleaning"]``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError("is not a directory", root)
    if window is not None and not (np.isfinite(window) and window > 0):
        raise ValueError(f"window must be a positive number of hours, got {window!r}")
    schema = yaib_schema()
    stays, label = _labels(root)
    cleaning: dict = {"policy": CLEANING_POLICY}
    static = _static(root, stays, schema, cleaning)
    events, window = _events(root, stays, schema, window, cleaning)
    cleaning["empty_stays"] = int((np.diff(events.offsets) == 0).sum())
    meta = {
        "format": "yaib",
        "path": str(root),
        "window_hours": window,
        "row_offset_hours": ROW_OFFSET_HOURS,
        "cleaning": cleaning,
    }
    return Cohort(
        schema=schema,
        stay_id=stays.astype(str),
        label=label,
        static=static,
        events=events,
        meta=meta,
        window=window,
    )
