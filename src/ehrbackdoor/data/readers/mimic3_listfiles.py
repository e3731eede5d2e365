"""Listfiles of the MIMIC-III benchmark task directory and the official split they define.

`{split}_listfile.csv` (header `stay,y_true`) names each split's stays and labels; validation stays
live in `train/`. A cohort read by `read_mimic3` keeps the membership in ``meta["split"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.readers._parse import csv_records, read_lines

SPLITS = ("train", "val", "test")
#: Folder holding each split's episode files (validation stays are carved out of train/).
SPLIT_FOLDER = {"train": "train", "val": "train", "test": "test"}
LISTFILE_HEADER = "stay,y_true"


def listfile_path(root: Path, split: str) -> Path:
    return Path(root) / f"{split}_listfile.csv"


def read_listfile(path: Path) -> tuple[list[str], list[int]]:
    """Stay names and labels of one `{split}_listfile.csv`, in file order."""
    path = Path(path)
    lines = read_lines(path, "listfile is missing")
    if not lines or lines[0].strip() != LISTFILE_HEADER:
        got = lines[0][:60] if lines else ""
        raise DataFormatError(f"expected header {LISTFILE_HEADER!r}, got {got!r}", path, 1)
    stays: list[str] = []
    labels: list[int] = []
    first_line: dict[str, int] = {}
    wrong = "expected 2 comma-separated fields stay,y_true, got {got}: {line!r}"
    for n, parts in csv_records(lines, 2, path, wrong):
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


def listfile_line(path: Path, stay: str) -> int | None:
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
