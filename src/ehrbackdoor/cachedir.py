"""The one on-disk cache directory of ehrbackdoor: location, size cap, LRU eviction, info, clear.

Everything cached lives under one directory so it can be inspected, capped and cleared in one
place: parsed cohorts (``cohort/``, see `ehrbackdoor.data.cohort_cache`) and preprocessing results
(``preprocess/``, see `ehrbackdoor.preprocess.cache`).

- Location: ``cache_dir`` argument, else ``$EHRBACKDOOR_CACHE``, else ``~/.cache/ehrbackdoor``.
- ``EHRBACKDOOR_NO_CACHE=1`` (or ``cache_dir=False``) disables every cache.
- Size cap: ``$EHRBACKDOOR_CACHE_MAX`` (bytes, or with a suffix: ``500M``, ``5G``; ``0`` = no cap),
  default 5 GB. After each write the least recently used files (by mtime, refreshed on every hit)
  are deleted until the total fits. Eviction only ever costs a recomputation.

`cache_info()` and `clear_cache()` are what ``ehrbackdoor cache info`` / ``cache clear`` print/do.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

ENV_DIR = "EHRBACKDOOR_CACHE"
ENV_DISABLE = "EHRBACKDOOR_NO_CACHE"
ENV_MAX = "EHRBACKDOOR_CACHE_MAX"
DEFAULT_MAX_BYTES = 5 * 1000**3
#: Sub-directories this package owns (clear_cache deletes only these and its own legacy files).
AREAS = ("cohort", "preprocess")
_LEGACY = re.compile(r"^(grid|features|[A-Za-z0-9_.-]+)-[0-9a-f]{64}\.npz$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)i?[bB]?\s*$")
_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}

CacheDir = Path | str | None | Literal[False]


def default_cache_dir() -> Path:
    """``$EHRBACKDOOR_CACHE`` or ``~/.cache/ehrbackdoor``."""
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ehrbackdoor"


def resolve_cache_dir(cache_dir: CacheDir = None) -> Path | None:
    """The cache directory to use, or None when caching is disabled."""
    if cache_disabled(cache_dir):
        return None
    assert cache_dir is not False
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def cache_disabled(cache_dir: CacheDir = None) -> bool:
    if cache_dir is False:
        return True
    return os.environ.get(ENV_DISABLE, "").strip().lower() in ("1", "true", "yes", "on")


def parse_size(text: str) -> int:
    """Bytes of '5G', '500M', '1.5g', '123' (decimal units)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (expected e.g. 5G, 500M or a number of bytes)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def max_bytes(limit: int | None = None) -> int:
    """The size cap in bytes: `limit`, else ``$EHRBACKDOOR_CACHE_MAX``, else 5 GB (0 = no cap)."""
    if limit is not None:
        return int(limit)
    env = os.environ.get(ENV_MAX, "").strip()
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(env)
    except ValueError as exc:  # a typo must not fail a finished computation
        warnings.warn(f"${ENV_MAX}: {exc}; using the default {DEFAULT_MAX_BYTES}", stacklevel=2)
        return DEFAULT_MAX_BYTES


def _files(root: Path) -> list[tuple[Path, os.stat_result]]:
    out = []
    for area in AREAS:
        base = root / area
        if not base.is_dir():
            continue
        for dirpath, _dirs, names in os.walk(base, followlinks=False):
            for name in names:
                p = Path(dirpath) / name
                try:
                    st = p.lstat()
                except OSError:
                    continue
                out.append((p, st))
    if root.is_dir():
        for p in root.iterdir():
            if _LEGACY.match(p.name):
                try:
                    out.append((p, p.lstat()))
                except OSError:
                    pass
    return out


def touch(path: Path) -> None:
    """Mark a cache file as just used (LRU order is by mtime)."""
    try:
        os.utime(path, None)
    except OSError:
        pass


def enforce_limit(
    cache_dir: CacheDir = None, limit: int | None = None, keep: Iterable[Path] = ()
) -> int:
    """Delete least recently used files until the cache fits its cap; returns bytes freed.

    Files in `keep` (what the caller just wrote or used) are never deleted, so the cache can
    exceed its cap by one working set. Temporary files of writers in progress (``*.tmp`` younger
    than an hour) are never touched.
    """
    root = resolve_cache_dir(cache_dir)
    cap = max_bytes(limit)
    if root is None or cap <= 0:
        return 0
    files = _files(root)
    total = sum(st.st_size for _, st in files)
    if total <= cap:
        return 0
    keep_set = {Path(p) for p in keep}
    now = time.time()
    files = [
        (p, st)
        for p, st in files
        if p not in keep_set and not (p.suffix == ".tmp" and now - st.st_mtime < 3600)
    ]
    files.sort(key=lambda f: f[1].st_mtime_ns)
    freed = 0
    for p, st in files:
        if total - freed <= cap:
            break
        try:
            p.unlink()
            freed += st.st_size
        except OSError:
            pass
    return freed


def cache_info(cache_dir: CacheDir = None) -> dict:
    """JSON-serialisable summary: directory, cap, total bytes and files per area."""
    root = resolve_cache_dir(cache_dir)
    if root is None:
        return {"enabled": False, "directory": None}
    areas: dict[str, dict[str, int]] = {}
    for p, st in _files(root):
        rel = p.relative_to(root).parts
        area = rel[0] if len(rel) > 1 else "legacy"
        a = areas.setdefault(area, {"files": 0, "bytes": 0})
        a["files"] += 1
        a["bytes"] += st.st_size
    return {
        "enabled": True,
        "directory": str(root),
        "max_bytes": max_bytes(),
        "bytes": sum(a["bytes"] for a in areas.values()),
        "files": sum(a["files"] for a in areas.values()),
        "areas": areas,
    }


def clear_cache(cache_dir: Path | str | None = None) -> int:
    """Delete every file this package cached (nothing else in the directory); returns bytes freed.

    Works even while caching is disabled (``EHRBACKDOOR_NO_CACHE``)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    freed = 0
    for p, st in _files(root):
        try:
            p.unlink()
            freed += st.st_size
        except OSError:
            pass
    for area in AREAS:
        base = root / area
        if base.is_dir():
            for dirpath, _dirs, _names in sorted(os.walk(base), reverse=True):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
    return freed
