"""Per-stay preprocessing store: every stay's rows are stored once, whatever cohort it came in.

Grids and window features are computed stay by stay (no cohort-wide statistic), so a result can be
assembled from rows computed earlier for the same stay content. A poisoned cohort differs from the
clean one in a few percent of its stays: only those are computed and stored, the rest is read
from the clean cohort's rows, and a whole sweep of attacks stores the clean representation once.

A stay is identified by a blake2b-128 digest of its full content (stay id, label, static row and
every event: time, variable, value, alias, with the number of events), so a changed value, event
or label is a different stay - content addressing cannot serve stale rows. A store directory holds
one kind of result with one set of options for one schema (``preprocess/{kind}-{key}/``);
its segments ``seg-{hash}.npz`` each hold the digests of some stays and their rows, and name the
``shared-{hash}.npz`` file of the row-independent fields (column names ...), stored once. Segments are written atomically and verified on load; a
bad one is ignored (recomputed), never trusted and never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ehrbackdoor.cachedir import enforce_limit, touch
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.cohort_cache import stay_digests_of as stay_digests
from ehrbackdoor.io import atomic_savez

_DIGEST = "__digest__"
_STORE = "__store__"
_SHARED = "__shared__"
_RESERVED = (_DIGEST, _STORE, _SHARED)
DIGEST_BYTES = 16

log = logging.getLogger(__name__)


class StayStore:
    """Segments of one (kind, options, schema) result under `directory`."""

    def __init__(self, directory: Path, store_key: str) -> None:
        self.directory = Path(directory)
        self.store_key = store_key

    def segments(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("seg-*.npz"))

    def index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Path]]:
        """(sorted digests, their segment number, their row, segment paths) of valid segments."""
        digests, seg_of, row_of, paths = [], [], [], []
        for p in self.segments():
            try:
                with np.load(p, allow_pickle=False) as z:
                    if _STORE not in z.files or str(z[_STORE]) != self.store_key:
                        raise ValueError("belongs to another store")
                    d = z[_DIGEST]
                if d.dtype != np.dtype(f"S{DIGEST_BYTES}") or d.ndim != 1:
                    raise ValueError("bad digests")
            except Exception as exc:  # never fatal: its stays are recomputed
                log.warning("ignoring preprocessing cache segment %s (%s)", p, exc)
                continue
            digests.append(d)
            seg_of.append(np.full(len(d), len(paths), dtype=np.int64))
            row_of.append(np.arange(len(d), dtype=np.int64))
            paths.append(p)
        if not paths:
            e = np.empty(0, dtype=np.int64)
            return np.empty(0, f"S{DIGEST_BYTES}"), e, e, []
        d = np.concatenate(digests)
        order = np.argsort(d, kind="stable")
        return d[order], np.concatenate(seg_of)[order], np.concatenate(row_of)[order], paths

    def write(
        self, digests: np.ndarray, arrays: dict[str, np.ndarray], row_fields: Sequence[str]
    ) -> list[Path]:
        """Store rows of `digests` (a new segment) and the shared fields (once); paths written."""
        shared = {k: v for k, v in arrays.items() if k not in row_fields}
        h = hashlib.sha256(self.store_key.encode())
        for k in sorted(shared):
            v = np.ascontiguousarray(shared[k])
            h.update(f"{k}\0{v.dtype.str}\0{v.shape}\0".encode() + v.tobytes())
        shared_path = self.directory / f"shared-{h.hexdigest()[:40]}.npz"
        if not shared_path.is_file():
            atomic_savez(shared_path, {**shared, _STORE: np.array(self.store_key)})
        name = hashlib.sha256(digests.tobytes() + self.store_key.encode()).hexdigest()[:40]
        path = self.directory / f"seg-{name}.npz"
        rows = {k: arrays[k] for k in row_fields}
        atomic_savez(
            path,
            {
                **rows,
                _DIGEST: digests,
                _STORE: np.array(self.store_key),
                _SHARED: np.array(shared_path.name),
            },
        )
        return [path, shared_path]

    def read(self, path: Path) -> tuple[dict[str, np.ndarray], Path]:
        """Rows (memory-mapped copy-on-write) and shared fields of one segment of this store."""
        with np.load(path, allow_pickle=False) as z:
            if str(z[_STORE]) != self.store_key:
                raise ValueError(f"{path} belongs to another store")
            names = [k for k in z.files if k not in _RESERVED]
            shared_name = str(z[_SHARED])
        arrays = _map_members(path, names)
        if not re.fullmatch(r"shared-[0-9a-f]{40}\.npz", shared_name):
            raise ValueError(f"{path} names a bad shared file")
        shared_path = self.directory / shared_name
        with np.load(shared_path, allow_pickle=False) as z:
            if str(z[_STORE]) != self.store_key:
                raise ValueError(f"{shared_path} belongs to another store")
            for k in z.files:
                if k not in _RESERVED:
                    arrays[k] = z[k]
        return arrays, shared_path


def _map_members(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Members of an uncompressed .npz as copy-on-write memory maps (no read, no copy).

    Writes to the arrays stay private to the process. A member that is compressed or holds
    objects is refused (ValueError), a truncated file fails to map.
    """
    out = {}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        for name in names:
            info = zf.getinfo(name + ".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{path}: {name} is compressed")
            fh.seek(info.header_offset)
            local = fh.read(30)
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"{path}: bad local header for {name}")
            n_name, n_extra = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + n_name + n_extra)
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            if dtype.hasobject:
                raise ValueError(f"{path}: {name} holds objects")
            if int(np.prod(shape)) == 0:
                out[name] = np.empty(shape, dtype=dtype)
                continue
            mapped = np.memmap(
                path,
                dtype=dtype,
                mode="c",
                offset=fh.tell(),
                shape=shape,
                order="F" if fortran else "C",
            )
            out[name] = mapped.view(np.ndarray)  # a plain array; the map lives on as its base
    return out


def _rows(arrays: dict[str, np.ndarray], fields: Sequence[str], n: int) -> None:
    for f in fields:
        if f not in arrays or len(arrays[f]) != n:
            raise ValueError(f"row field {f!r} must have one row per stay ({n})")


def cached_rows(
    store: StayStore,
    cohort: Cohort,
    compute: Callable[[Cohort], dict[str, np.ndarray]],
    row_fields: Sequence[str],
) -> dict[str, np.ndarray]:
    """`compute(cohort)`, assembled from stored rows of known stays plus the others computed.

    `compute` must be row-separable: its `row_fields` (first axis = stays) for a subset of stays
    equal the rows of those stays computed in any other cohort; every other field is the same for
    every cohort. Identical to `compute(cohort)` (tested).
    """
    n = cohort.n_stays
    if n == 0:
        return compute(cohort)
    digests = stay_digests(cohort)
    sorted_d, seg_of, row_of, paths = store.index()
    if len(sorted_d):
        pos = np.minimum(np.searchsorted(sorted_d, digests), len(sorted_d) - 1)
        found = sorted_d[pos] == digests
    else:
        pos = np.zeros(n, dtype=np.int64)
        found = np.zeros(n, dtype=bool)
    missing = np.flatnonzero(~found)
    fresh = None
    used: list[Path] = []
    if len(missing):
        sub = cohort if len(missing) == n else cohort.subset(missing)
        fresh = compute(sub)
        if any(k in fresh for k in _RESERVED):
            raise ValueError(f"{_RESERVED} are reserved in cached results")
        _rows(fresh, row_fields, len(missing))
        try:
            used = store.write(digests[missing], fresh, row_fields)
        except OSError as exc:  # read-only or full disk: the result is still good
            warnings.warn(
                f"could not write preprocessing cache in {store.directory}: {exc}", stacklevel=3
            )
    if fresh is not None and len(missing) == n:
        result = fresh
    else:
        try:
            result = _assemble(
                store,
                cohort,
                row_fields,
                found,
                seg_of[pos],
                row_of[pos],
                paths,
                missing,
                fresh,
                used,
            )
        except Exception as exc:  # an unreadable or inconsistent segment: compute everything
            log.warning(
                "preprocessing cache in %s unusable (%s): recomputing", store.directory, exc
            )
            result = compute(cohort)
            try:
                used = store.write(digests, result, row_fields)
            except OSError:
                used = []
            fresh = result
    if fresh is not None:
        enforce_limit(store.directory.parent.parent, keep=used)
    return result


def _assemble(
    store: StayStore,
    cohort: Cohort,
    row_fields: Sequence[str],
    found: np.ndarray,
    seg: np.ndarray,
    row: np.ndarray,
    paths: list[Path],
    missing: np.ndarray,
    fresh: dict[str, np.ndarray] | None,
    used: list[Path],
) -> dict[str, np.ndarray]:
    n = cohort.n_stays
    out: dict[str, np.ndarray] = {}
    for j in np.unique(seg[found]):
        take = np.flatnonzero(found & (seg == j))
        try:
            parts, shared_path = store.read(paths[j])
        except Exception:
            paths[j].unlink(missing_ok=True)  # unusable (e.g. its shared file was evicted)
            raise
        touch(shared_path)
        used += [paths[j], shared_path]
        _rows(parts, row_fields, len(parts[row_fields[0]]) if row_fields else 0)
        for k, v in parts.items():
            if k not in row_fields:
                if k in out:
                    if not np.array_equal(out[k], v):
                        raise ValueError(f"segments disagree on {k!r}")
                else:
                    out[k] = v
                continue
            if len(take) == n and len(v) == n and np.array_equal(row[take], np.arange(n)):
                out[k] = v  # the segment is exactly this cohort, in order: no copy
                continue
            if k not in out:
                out[k] = np.empty((n, *v.shape[1:]), dtype=v.dtype)
            elif out[k].shape[1:] != v.shape[1:] or out[k].dtype != v.dtype:
                raise ValueError(f"segments disagree on the shape of {k!r}")
            out[k][take] = v[row[take]]
        touch(paths[j])
    if fresh is not None:
        for k, v in fresh.items():
            if k not in row_fields:
                if k in out and not np.array_equal(out[k], v):
                    raise ValueError(f"stored and computed {k!r} differ")
                out[k] = v
            else:
                if k not in out or out[k].shape[1:] != v.shape[1:] or out[k].dtype != v.dtype:
                    raise ValueError(f"stored and computed {k!r} differ in shape")
                out[k][missing] = v
    for k in row_fields:
        if k not in out:
            raise ValueError(f"row field {k!r} missing from the cache")
    return out
