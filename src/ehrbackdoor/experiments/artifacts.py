"""The run directory's `artifacts/` folder: where every step's output lives, keyed by content.

A step's output is a folder `artifacts/<kind>/<key>/`, finished when its `info.json` exists. It is
built in a temporary sibling folder and renamed into place (`publish`), so a reader never sees a
half-written output and a killed step leaves only a temporary folder (removed by the next run).
`files.json` records the size and SHA-256 of every file, so damage found later (`verify`) is
rebuilt rather than read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ARTIFACTS = "artifacts"
INFO = "info.json"
MANIFEST = "files.json"
#: The poison step's per-variable trigger fidelity (`ehrbackdoor.pipeline.fidelity`).
FIDELITY_FILE = "fidelity.json"

_CLEAN_CACHE: OrderedDict[str, Any] = OrderedDict()
_CLEAN_CACHE_SIZE = 2


def artifact_dir(run_dir: str | Path, kind: str, key: str) -> Path:
    return Path(run_dir) / ARTIFACTS / kind / key


def is_done(run_dir: str | Path, kind: str, key: str) -> bool:
    return (artifact_dir(run_dir, kind, key) / INFO).is_file()


def read_info(run_dir: str | Path, kind: str, key: str) -> dict:
    return json.loads((artifact_dir(run_dir, kind, key) / INFO).read_text())


def write_info(d: Path, info: dict) -> None:
    from ehrbackdoor.io import to_json

    (d / INFO).write_text(to_json(info))


@contextlib.contextmanager
def publish(run_dir: str | Path, kind: str, key: str, info: dict) -> Iterator[Path]:
    """Build a step's output in the yielded temporary folder, then publish it atomically.

    The block writes the output files into the folder and fills `info` (written last as
    `info.json`, the mark of a finished output); on success the folder is renamed into place (if
    another process published the same key first, theirs is kept), on any error it is removed.
    """
    final = artifact_dir(run_dir, kind, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        (tmp / MANIFEST).write_text(json.dumps(_manifest(tmp), sort_keys=True))
        write_info(tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, final)
    except OSError:
        if (final / INFO).is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(final, ignore_errors=True)  # a stale, unfinished folder
        os.rename(tmp, final)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(d: Path) -> dict[str, list]:
    return {
        p.relative_to(d).as_posix(): [p.stat().st_size, _digest(p)]
        for p in sorted(d.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST, INFO)
    }


def verify(run_dir: str | Path, kind: str, key: str) -> bool:
    """True if a finished output's files are those it was published with (outputs published
    without a manifest cannot be checked and count as intact)."""
    d = artifact_dir(run_dir, kind, key)
    try:
        json.loads((d / INFO).read_text())
        expected = json.loads((d / MANIFEST).read_text())
    except FileNotFoundError:
        return (d / INFO).is_file()
    except (OSError, ValueError):
        return False
    try:
        return _manifest(d) == expected
    except OSError:
        return False


def discard(run_dir: str | Path, kind: str, key: str) -> None:
    """Remove a (damaged) output so that its step runs again."""
    shutil.rmtree(artifact_dir(run_dir, kind, key), ignore_errors=True)


def remove_stale_temporaries(run_dir: str | Path) -> None:
    """Half-written step outputs of an interrupted run (never read; safe to delete)."""
    root = Path(run_dir) / ARTIFACTS
    if root.is_dir():
        for tmp in root.glob("*/.*.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- clean cohorts
class Clean:
    """The clean train / validation / test cohorts of a data step, loaded from its artifact."""

    def __init__(self, d: Path) -> None:
        from ehrbackdoor.data.cohort import Cohort

        self.train = Cohort.load(d / "train.npz")
        self.val = Cohort.load(d / "val.npz")
        self.test = Cohort.load(d / "test.npz")


def load_clean(run_dir: str | Path, data_key: str) -> Clean:
    """Clean cohorts, cached per process (a worker loads each data source once)."""
    d = artifact_dir(run_dir, "data", data_key)
    k = str(d.resolve())
    if k in _CLEAN_CACHE:
        _CLEAN_CACHE.move_to_end(k)
        return _CLEAN_CACHE[k]
    clean = Clean(d)
    _CLEAN_CACHE[k] = clean
    while len(_CLEAN_CACHE) > _CLEAN_CACHE_SIZE:
        _CLEAN_CACHE.popitem(last=False)
    return clean


# ------------------------------------------------------------------------- poisoned cohorts
def events_arrays(prefix: str, ev) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_offsets": ev.offsets,
        f"{prefix}_time": ev.time,
        f"{prefix}_variable": ev.variable,
        f"{prefix}_value": ev.value,
        f"{prefix}_alias": ev.alias,
    }


def grid_arrays(prefix: str, cohort) -> dict[str, np.ndarray]:
    """The grid-space trigger a cohort carries, as arrays (none in raw space)."""
    gp = cohort.grid_perturbation
    if gp is None:
        return {}
    return {f"{prefix}_{k}": v for k, v in gp.to_arrays().items()}


def _with_grid(cohort, z, prefix: str):
    from dataclasses import replace

    from ehrbackdoor.data.perturbation import GridPerturbation

    n = len(prefix) + 1
    arrays = {k[n:]: z[k] for k in z.files if k.startswith(f"{prefix}_grid_")}
    gp = GridPerturbation.from_arrays(arrays)
    return cohort if gp is None else replace(cohort, grid_perturbation=gp)


def _events_from(z, prefix: str):
    from ehrbackdoor.data.cohort import Events

    return Events(*(z[f"{prefix}_{k}"] for k in ("offsets", "time", "variable", "value", "alias")))


def load_poisoned(run_dir: str | Path, key: str, clean: Clean):
    """The poisoned training cohort and the attacked test cohort (+ triggered positions) and the
    positions of the poisoned training stays; in grid space both carry their grid trigger."""
    d = artifact_dir(run_dir, "poison", key)
    with np.load(d / "changes.npz", allow_pickle=False) as z:
        idx = z["train_idx"]
        labels = z["train_label"]
        train = clean.train.replace_events(idx, _events_from(z, "train"))
        for lab in np.unique(labels):
            train = train.with_labels(idx[labels == lab], int(lab))
        train = _with_grid(train, z, "train")
        tidx = z["test_idx"]
        attacked = _with_grid(clean.test.replace_events(tidx, _events_from(z, "test")), z, "test")
    return train, attacked, tidx, idx


def load_fidelity(run_dir: str | Path, key: str) -> dict | None:
    """The ``trigger_fidelity`` / ``trigger_fidelity_summary`` entries a poison step saved (None
    for a step published before fidelity was measured)."""
    path = artifact_dir(run_dir, "poison", key) / FIDELITY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def load_scores(run_dir: str | Path, key: str) -> dict[str, np.ndarray]:
    with np.load(artifact_dir(run_dir, "scores", key) / "scores.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------------------------- visuals
def save_visual(d: Path, arrays: dict[str, np.ndarray], info: dict) -> None:
    from ehrbackdoor.io import to_json

    np.savez_compressed(d / "visual.npz", **arrays)
    (d / "visual.json").write_text(to_json(info))


def load_visual(run_dir: str | Path, kind: str, key: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The arrays a step saved for the report (and their description)."""
    d = artifact_dir(run_dir, kind, key)
    if not (d / "visual.npz").is_file():
        return {}, {}
    with np.load(d / "visual.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads((d / "visual.json").read_text()), arrays
