"""One entry point for every data source: detect the format of a path and read it as a cohort."""

from __future__ import annotations

from pathlib import Path

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.splits import Split, split_from_meta, stratified_split

FORMATS = ("physionet2012", "mimic3", "yaib", "cohort-npz")


def detect_format(path: str | Path) -> str:
    """Name of the format at `path`; raises a DataFormatError that says what was expected."""
    from ehrbackdoor.data.readers.mimic3 import is_mimic3_dir
    from ehrbackdoor.data.readers.physionet2012 import is_physionet2012_dir
    from ehrbackdoor.data.readers.yaib import is_yaib_dir

    p = Path(path)
    if not p.exists():
        raise DataFormatError("does not exist", p)
    if p.is_file() and p.suffix == ".npz":
        return "cohort-npz"
    if p.is_dir():
        if is_mimic3_dir(p):
            return "mimic3"
        if is_physionet2012_dir(p):
            return "physionet2012"
        if is_yaib_dir(p):
            return "yaib"
    raise DataFormatError(
        "is not a recognised data source: expected a MIMIC-III in-hospital-mortality benchmark "
        "directory (train/, test/, *_listfile.csv), a PhysioNet 2012 directory (set-a/ ..., "
        "Outcomes-a.txt ...), a YAIB cohort folder (dyn.parquet, sta.parquet, outc.parquet) or a "
        "cohort .npz written by ehrbackdoor",
        p,
    )


def load_cohort(path: str | Path) -> Cohort:
    """Read any supported data source into a cohort (format detected from its layout).

    Data directories are cached once parsed (`ehrbackdoor.data.cohort_cache`): an unchanged
    source is read back from one .npz instead of being detected and parsed again.
    """
    if Path(path).is_dir():
        from ehrbackdoor.data.cohort_cache import cached_cohort

        return cached_cohort(path, lambda: _read(path))
    return _read(path)


def _read(path: str | Path) -> Cohort:
    from ehrbackdoor.data.readers.mimic3 import read_mimic3
    from ehrbackdoor.data.readers.physionet2012 import read_physionet2012
    from ehrbackdoor.data.readers.yaib import read_yaib

    fmt = detect_format(path)
    if fmt == "physionet2012":
        return read_physionet2012(path)
    if fmt == "mimic3":
        return read_mimic3(path)
    if fmt == "yaib":
        return read_yaib(path)
    return Cohort.load(path)


def resolve_split(
    cohort: Cohort,
    split_file: str | Path | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> Split:
    """The split to use: a saved split file if given, else the source's official split (MIMIC-III
    benchmark listfiles), else a seeded stratified split. Callers save it with their results."""
    if split_file is not None:
        return Split.load(split_file)
    official = split_from_meta(cohort)
    if official is not None:
        return official
    return stratified_split(cohort, fractions, seed)
