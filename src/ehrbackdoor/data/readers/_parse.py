"""The parse skeleton shared by the text readers (PhysioNet 2012, MIMIC-III benchmark).

Both formats are many small CSV files with one fixed header. They are read as bytes, normalised
(CRLF, a UTF-8 byte-order mark, blank lines), concatenated without their headers and parsed in ONE
Arrow CSV pass. Any failure is traced back to the file and line that caused it: `Blobs.locate`
maps a row of the concatenated parse to its file and original line, and `find_parse_error` re-reads
only the files that failed to say what is wrong where (invalid UTF-8, a wrong number of fields, a
quoted newline, a cell Arrow could not convert).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ehrbackdoor.data.errors import DataFormatError

BOM = b"\xef\xbb\xbf"
#: Arrow's CSV reader on the concatenated files: one block holds a whole data set in one go.
BLOCK_SIZE = 1 << 26
#: Plain decimal numbers and the spellings of NaN and infinity (case-insensitive). Stricter than
#: Python's float(), which also takes `8_0`.
NUMBER_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(nan|inf|infinity)$"
_NUMBER = re.compile(NUMBER_PATTERN, re.IGNORECASE)


def is_number(text: str) -> bool:
    """True for a number as the readers accept it (see NUMBER_PATTERN)."""
    return _NUMBER.match(text) is not None


def first_line_of(mask: np.ndarray) -> int:
    """Index of the first True of a boolean mask (callers check `mask.any()` first)."""
    return int(np.flatnonzero(mask)[0])


@dataclass(frozen=True)
class Blobs:
    """Bodies of many files, concatenated, with the map from parsed rows back to file and line."""

    data: bytes
    files: list[str]
    n_rows: np.ndarray  # rows (non-blank lines after the header) per file
    blank: int  # blank lines removed
    line_maps: dict[int, np.ndarray]  # file index -> original line of each kept row (if blanks)
    byte_offsets: np.ndarray  # (files + 1,) where each file's body starts in `data`

    @property
    def total_rows(self) -> int:
        return int(self.n_rows.sum())

    @property
    def row_file(self) -> np.ndarray:
        """File index of every parsed row."""
        return np.repeat(np.arange(len(self.files), dtype=np.int64), self.n_rows)

    def locate(self, row: int) -> tuple[Path, int]:
        """File and 1-based line of a global row index (the header is line 1)."""
        ends = np.cumsum(self.n_rows)
        fi = int(np.searchsorted(ends, row, side="right"))
        k = row - (int(ends[fi - 1]) if fi > 0 else 0)
        if fi in self.line_maps:
            return Path(self.files[fi]), int(self.line_maps[fi][k])
        return Path(self.files[fi]), k + 2

    def fail(self, row: int, message: str) -> DataFormatError:
        """An error naming the file and line of a global row."""
        f, line = self.locate(row)
        return DataFormatError(message, f, line)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            b = fh.read()
    except FileNotFoundError:
        raise DataFormatError("file does not exist", path) from None
    if b"\r" in b:
        b = b.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return b[3:] if b.startswith(BOM) else b


def _check_quotes(body: bytes, path: str, quotes: bool, line_map: np.ndarray | None) -> None:
    """Quotes: refused where the format never has them, else no quoted field may span lines."""

    def line_of(row: int) -> int:  # body row -> line in the file (header = 1, blanks counted)
        return int(line_map[row]) if line_map is not None else row + 2

    q = body.find(b'"')
    if q < 0:
        return
    if not quotes:
        line = line_of(body[:q].count(b"\n"))
        raise DataFormatError(
            "unexpected quote character '\"' (this format has no quoting)", path, line
        )
    text = body.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text))
    start = 0  # body row where the current record starts
    try:
        for fields in reader:
            if any("\n" in f for f in fields):
                raise DataFormatError(
                    "a quoted value spans lines (quoted newline)", path, line_of(start)
                )
            start = reader.line_num
    except csv.Error as exc:
        raise DataFormatError(f"malformed CSV: {exc}", path, line_of(start)) from None


def load_blobs(
    files: Sequence[str],
    header: bytes,
    header_error: Callable[[bytes], str],
    *,
    quotes: bool,
) -> Blobs:
    """Read and concatenate files without their header (which must equal `header`).

    `header_error(got)` says what is wrong with a header that differs. `quotes=False` refuses any
    quote character (PhysioNet files never quote); otherwise quoted fields must not span lines.
    """
    parts: list[bytes] = []
    n_rows = np.zeros(len(files), dtype=np.int64)
    blank = 0
    line_maps: dict[int, np.ndarray] = {}
    for i, f in enumerate(files):
        b = _read(f)
        nl = b.find(b"\n")
        head = (b if nl < 0 else b[:nl]).strip()
        if head != header:
            raise DataFormatError(header_error(head), f, 1)
        body = b"" if nl < 0 else b[nl + 1 :]
        if body and not body.endswith(b"\n"):
            body += b"\n"
        if b"\n\n" in body or body.startswith(b"\n") or b"\n \n" in body:
            lines = body.split(b"\n")[:-1]
            kept = [k for k, ln in enumerate(lines) if ln.strip()]
            blank += len(lines) - len(kept)
            line_maps[i] = np.asarray(kept, dtype=np.int64) + 2
            body = b"".join(lines[k] + b"\n" for k in kept)
        _check_quotes(body, f, quotes, line_maps.get(i))
        n_rows[i] = body.count(b"\n")
        parts.append(body)
    offsets = np.zeros(len(files) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return Blobs(b"".join(parts), list(files), n_rows, blank, line_maps, offsets)


def read_csv(
    data: bytes, columns: list[str], types: dict[str, pa.DataType], nulls: bool
) -> pa.Table:
    """One Arrow parse; `nulls=True` reads empty cells as null, else as empty strings."""
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=columns, block_size=BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""] if nulls else [],
            strings_can_be_null=nulls,
            quoted_strings_can_be_null=nulls,
        ),
    )


def decode_utf8(raw: bytes, path: str | Path) -> str:
    """`raw` as text; invalid UTF-8 is a DataFormatError naming the line where it starts."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"is not UTF-8 text: {exc.reason}", path, line) from None


def read_lines(path: Path, missing: str) -> list[str]:
    """Lines of a small text file read whole (listfiles, outcomes); `missing` says why a file
    that is not there is an error."""
    if not path.is_file():
        raise DataFormatError(missing, path)
    return decode_utf8(path.read_bytes(), path).splitlines()


def csv_records(
    lines: list[str], n_fields: int, path: Path, wrong_count: str
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank line after the header of a small CSV file; a line
    of another number of fields is an error, `wrong_count` formatted with ``got`` (the number)
    and ``line`` (its start)."""
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != n_fields:
            raise DataFormatError(wrong_count.format(got=len(parts), line=line[:80]), path, n)
        yield n, parts


def _scan_text(path: str, n_fields: int, describe: str) -> None:
    """Invalid UTF-8 or a line with the wrong number of fields in one file, by line."""
    reader = csv.reader(io.StringIO(decode_utf8(_read(path), path)))
    try:
        for fields in reader:
            if fields and any(x.strip() for x in fields) and len(fields) != n_fields:
                raise DataFormatError(
                    f"expected {n_fields} comma-separated fields ({describe}), got {len(fields)}",
                    path,
                    reader.line_num,
                )
    except csv.Error as exc:
        raise DataFormatError(f"malformed CSV: {exc}", path, reader.line_num) from None


def find_parse_error(
    blobs: Blobs,
    columns: list[str],
    types: dict[str, pa.DataType],
    nulls: bool,
    describe: str,
    exc: Exception,
) -> DataFormatError:
    """After the one-pass parse failed: the first file and line at fault and what is wrong there.

    Files are re-parsed one by one, then the failing file line by line, so the answer always names
    a line; the message is Arrow's own when no more specific reason (bad text, field count) applies.
    """
    starts = np.cumsum(blobs.n_rows) - blobs.n_rows
    for fi, f in enumerate(blobs.files):
        body = blobs.data[blobs.byte_offsets[fi] : blobs.byte_offsets[fi + 1]]
        if not body:
            continue
        try:
            if read_csv(body, columns, types, nulls).num_rows == blobs.n_rows[fi]:
                continue
            file_exc: Exception = ValueError("row count mismatch")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            file_exc = e
        _scan_text(f, len(columns), describe)
        for k, ln in enumerate(body.split(b"\n")[:-1]):
            try:
                ok = read_csv(ln + b"\n", columns, types, nulls).num_rows == 1
                reason = "not one row"
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as line_exc:
                ok, reason = False, _short(line_exc)
            if not ok:
                return blobs.fail(int(starts[fi]) + k, f"could not parse the line: {reason}")
        return DataFormatError(f"could not parse the file: {_short(file_exc)}", f, 1)
    where = blobs.files[0] if blobs.files else None
    return DataFormatError(f"could not parse the files as CSV: {_short(exc)}", where, 1)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def parse(
    blobs: Blobs,
    columns: list[str],
    types: dict[str, pa.DataType],
    *,
    nulls: bool,
    describe: str,
    on_fail: Callable[[], None] | None = None,
) -> pa.Table:
    """Parse all rows in one pass; any failure becomes a DataFormatError naming file and line.

    `on_fail` may raise a more specific error first (e.g. which column holds a non-number).
    """
    if not blobs.total_rows:
        return pa.table({c: pa.array([], type=t) for c, t in types.items()})
    try:
        table = read_csv(blobs.data, columns, types, nulls)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        _first_bad_text(blobs, len(columns), describe)
        if on_fail is not None:
            on_fail()
        raise find_parse_error(blobs, columns, types, nulls, describe, exc) from exc
    if table.num_rows != blobs.total_rows:
        raise find_parse_error(
            blobs, columns, types, nulls, describe, ValueError("row count mismatch")
        )
    return table


def _first_bad_text(blobs: Blobs, n_fields: int, describe: str) -> None:
    for f in blobs.files:
        _scan_text(f, n_fields, describe)
