"""Parsed-cohort cache: a data directory is parsed once, later commands read one .npz.

Parsing thousands of text files costs seconds in every command; the parsed cohort, stored
column-wise as an uncompressed .npz (the `Cohort.save` arrays, read back with `Cohort.load`, never
unpickled), loads in tens of milliseconds.

Key (never a stale cohort): sha256 over the resolved source path, every file under it (relative
path, size, mtime_ns, ctime_ns, inode; any added, removed, replaced or modified file - data or
outcomes - changes it), the ehrbackdoor version and the source text of the data readers (a change
to parsing invalidates too). The sources are fingerprinted before and after parsing and the result
is stored only if nothing changed meanwhile and no file was modified in the last 2 seconds (a later
write within the file system's timestamp granularity could otherwise go unseen). Files are written
atomically (temporary file + rename), so concurrent processes never see a partial entry; an
unreadable entry is re-parsed, never fatal.

Also stored: the per-stay content digests the preprocessing cache looks stays up by
(`stay_digests_of`), so a cached cohort needs no re-hashing; `content_hash_of` remembers
`Cohort.content_hash()` for read-only cohorts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ehrbackdoor.cachedir import CacheDir, enforce_limit, resolve_cache_dir, touch
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.io import atomic_savez

#: Bump when the stored layout changes.
COHORT_CACHE_VERSION = 1
#: Files modified this recently (seconds) make a parse uncacheable (timestamp granularity).
RACY_SECONDS = 2.0
_KEY = "__cache_key__"

log = logging.getLogger(__name__)
_HASHES: weakref.WeakKeyDictionary[Cohort, str] = weakref.WeakKeyDictionary()
_DIGESTS: weakref.WeakKeyDictionary[Cohort, np.ndarray] = weakref.WeakKeyDictionary()
_STAYS = "__stay_digests__"
DIGEST_BYTES = 16


def content_hash_of(cohort: Cohort) -> str:
    """`cohort.content_hash()`, remembered for read-only cohorts (those `load_cohort` returns).

    Only cohorts whose arrays cannot be written are remembered, so a memo can never go stale.
    """
    h = _HASHES.get(cohort)
    if h is None:
        h = cohort.content_hash()
        if _is_frozen(cohort):
            _HASHES[cohort] = h
    return h


def stay_digests(cohort: Cohort) -> np.ndarray:
    """(n,) ``S16`` content digest of each stay (blake2b over its header and event slices)."""
    e = cohort.events
    n = cohort.n_stays
    cols = [
        memoryview(np.ascontiguousarray(a, dtype=dt)).cast("B")
        for a, dt in ((e.time, "<f8"), (e.value, "<f8"), (e.variable, "<i2"), (e.alias, "i1"))
    ]
    sizes = (8, 8, 2, 1)
    sid = np.asarray(cohort.stay_id).astype(str)
    s = cohort.static.shape[1]
    hdr = np.empty(
        n,
        dtype=[
            ("len", "<i8"),
            ("label", "<i8"),
            ("static", "<f8", (s,)),
            ("id", sid.dtype.newbyteorder("<")),
        ],
    )
    hdr["len"] = np.diff(e.offsets)
    hdr["label"] = cohort.label
    hdr["static"] = cohort.static
    hdr["id"] = sid
    hb = memoryview(hdr).cast("B")
    hs = hdr.dtype.itemsize
    off = np.asarray(e.offsets, dtype=np.int64).tolist()
    (tb, vb, xb, ab), (ts, vs, xs, as_) = cols, sizes
    blake = hashlib.blake2b
    # What else decides a stay's preprocessed rows: the cohort's window and, for stays carrying
    # a grid-space trigger, that trigger (pattern, mode, timestep).
    window = f"window={cohort.window!r}".encode()
    gp = cohort.grid_perturbation
    carriers = np.zeros(n, dtype=bool) if gp is None else np.asarray(gp.carriers, dtype=bool)
    grid_tag = b""
    if gp is not None:
        pattern = np.ascontiguousarray(gp.pattern, dtype="<f8")
        g = hashlib.blake2b(
            f"{gp.mode}:{gp.timestep!r}:{pattern.shape}".encode(), digest_size=DIGEST_BYTES
        )
        g.update(pattern.tobytes())
        grid_tag = g.digest()
    out = []
    for i in range(n):
        a, b = off[i], off[i + 1]
        h = blake(hb[i * hs : (i + 1) * hs], digest_size=DIGEST_BYTES)
        h.update(tb[a * ts : b * ts])
        h.update(vb[a * vs : b * vs])
        h.update(xb[a * xs : b * xs])
        h.update(ab[a * as_ : b * as_])
        h.update(window)
        if carriers[i]:
            h.update(grid_tag)
        out.append(h.digest())
    return np.frombuffer(b"".join(out), dtype=f"S{DIGEST_BYTES}") if n else np.empty(0, "S16")


def stay_digests_of(cohort: Cohort) -> np.ndarray:
    """`stay_digests`, remembered like `content_hash_of` (stored with cached cohorts)."""
    d = _DIGESTS.get(cohort)
    if d is None:
        d = stay_digests(cohort)
        d.flags.writeable = False
        if _is_frozen(cohort):
            _DIGESTS[cohort] = d
    return d


@functools.cache
def _code_fingerprint() -> str:
    """Digest of the reading code; once per process (the imported code cannot change under it)."""
    import ehrbackdoor

    here = Path(__file__).resolve().parent
    h = hashlib.sha256(str(getattr(ehrbackdoor, "__version__", "")).encode())
    files = sorted(here.glob("*.py")) + sorted((here / "readers").glob("*.py"))
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _walk(root: Path) -> list[tuple[str, os.stat_result | None]]:
    """(relative path, stat) of every file under `root`, following links as the readers do
    (a linked set-a/ is data too), each directory once (no loops); None for dangling links."""
    out: list[tuple[str, os.stat_result | None]] = []
    seen: set[tuple[int, int]] = set()
    stack = [("", root)]
    while stack:
        rel, d = stack.pop()
        st = os.stat(d)
        if (st.st_dev, st.st_ino) in seen:
            out.append((rel + "/\0loop", None))
            continue
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            name = f"{rel}/{e.name}" if rel else e.name
            try:
                est = e.stat()  # follows links
            except OSError:
                out.append((name + "\0dangling", None))
                continue
            if e.is_dir():
                stack.append((name, Path(e.path)))
            else:
                out.append((name, est))
    out.sort(key=lambda x: x[0])
    return out


def source_fingerprint(path: Path) -> tuple[str, int]:
    """(sha256 of every file's path and stat under `path`, newest mtime/ctime in ns)."""
    path = Path(path).resolve()
    h = hashlib.sha256(str(path).encode())
    newest = 0
    entries = [(path.name, path.stat())] if path.is_file() else _walk(path)
    for rel, st in entries:
        if st is None:
            h.update(rel.encode() + b"\n")
            continue
        h.update(
            f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0"
            f"{st.st_dev}\n".encode()
        )
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return h.hexdigest(), newest


def _entry_key(fingerprint: str) -> str:
    """The format needs no part: it is a function of the files and the code, both in the key."""
    payload = json.dumps(
        {"sources": fingerprint, "code": _code_fingerprint(), "version": COHORT_CACHE_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _arrays(cohort: Cohort) -> dict[str, np.ndarray]:
    """What `Cohort.save` writes (read back by `Cohort.load`)."""
    e = cohort.events
    return {
        "stay_id": cohort.stay_id.astype(str),
        "label": cohort.label,
        "static": cohort.static,
        "offsets": e.offsets,
        "time": e.time,
        "variable": e.variable,
        "value": e.value,
        "alias": e.alias,
        "modified": cohort.modified,
        "schema": np.array(cohort.schema.name),
        "meta": np.array(json.dumps(cohort.meta)),
        "window": np.array(cohort.window, dtype=np.float64),  # 24 h for YAIB's Mortality24
    }


def _content_arrays(cohort: Cohort) -> tuple[np.ndarray, ...]:
    e = cohort.events
    return (
        cohort.stay_id,
        cohort.label,
        cohort.static,
        cohort.modified,
        e.offsets,
        e.time,
        e.variable,
        e.value,
        e.alias,
    )


def _freeze(cohort: Cohort) -> None:
    for a in _content_arrays(cohort):
        a.flags.writeable = False


def _is_frozen(cohort: Cohort) -> bool:
    return all(not a.flags.writeable and not _base_writeable(a) for a in _content_arrays(cohort))


def _base_writeable(a: np.ndarray) -> bool:
    """Whether some array `a` is a view of could still be written (then `a` could change)."""
    b = a.base
    while b is not None:
        if isinstance(b, np.ndarray) and b.flags.writeable:
            return True
        b = b.base if isinstance(b, np.ndarray) else None
    return False


def _load(path: Path, key: str) -> Cohort | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if _KEY not in z.files or str(z[_KEY]) != key:
                log.warning("cohort cache file %s does not carry its key: re-parsing", path)
                return None
            digests = z[_STAYS]
        cohort = Cohort.load(path)
    except Exception as exc:  # a corrupt cache must never be fatal
        log.warning("unreadable cohort cache file %s (%s): re-parsing", path, exc)
        return None
    _freeze(cohort)
    if digests.dtype != np.dtype(f"S{DIGEST_BYTES}") or digests.shape != (cohort.n_stays,):
        log.warning("cohort cache file %s has bad stay digests: re-parsing", path)
        return None
    digests.flags.writeable = False
    _DIGESTS[cohort] = digests
    touch(path)
    return cohort


def cached_cohort(
    path: str | Path, parse: Callable[[], Cohort], cache_dir: CacheDir = None
) -> Cohort:
    """The cohort `parse()` reads from `path`, from the cache when no source file changed."""
    root = resolve_cache_dir(cache_dir)
    if root is None:
        return parse()
    fingerprint, _ = source_fingerprint(Path(path))
    key = _entry_key(fingerprint)
    file = root / "cohort" / f"cohort-{key}.npz"
    hit = _load(file, key)
    if hit is not None:
        return hit
    cohort = parse()
    _freeze(cohort)  # hit or miss, callers get the same read-only arrays
    after, newest = source_fingerprint(Path(path))
    if after != fingerprint:
        log.warning("%s changed while it was read: not caching the cohort", path)
        return cohort
    if time.time_ns() - newest < RACY_SECONDS * 1e9:
        return cohort  # too fresh to trust its timestamps; the next command will cache it
    digests = stay_digests_of(cohort)
    try:
        atomic_savez(file, {**_arrays(cohort), _KEY: np.array(key), _STAYS: digests})
        enforce_limit(cache_dir, keep=[file])
    except OSError as exc:  # read-only or full disk: the cohort is still good
        warnings.warn(f"could not write cohort cache {file}: {exc}", stacklevel=2)
    return cohort
