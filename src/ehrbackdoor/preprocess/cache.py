"""On-disk cache of preprocessing results, keyed by what they depend on.

Experiments preprocess the same stays for many victims, seeds, poisoning rates and defences;
recomputing is cheap but not free, and a STALE result would silently corrupt every number
downstream.

Grids and window features (`grid_cached`, `features_cached`) are cached per stay
(`ehrbackdoor.preprocess.stay_store`): a stay is known by a digest of its whole content, so a
poisoned cohort reuses the clean cohort's rows for every stay it did not change and stores only
the changed ones - a sweep over rates, triggers and victims stores the clean representation once.
The store is chosen by sha256 of (schema definition, kind, options as sorted JSON, CACHE_VERSION).

Other results (`cached`) are stored whole, keyed by the cohort's content hash as well.

Files live under ``{cache dir}/preprocess/``, written atomically with plain arrays only, read with
``allow_pickle=False`` and verified on load; a file that cannot be read or does not match is
recomputed, never trusted and never fatal. The cache directory (``$EHRBACKDOOR_CACHE``, default
``~/.cache/ehrbackdoor``), its size cap (``$EHRBACKDOOR_CACHE_MAX``, default 5 GB, least recently
used files evicted first), `cache_info` and `clear_cache` are in `ehrbackdoor.cachedir`.
``cache_dir=False`` or ``EHRBACKDOOR_NO_CACHE=1`` disables caching (compute every time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ehrbackdoor.cachedir import (
    ENV_DIR,
    ENV_DISABLE,
    CacheDir,
    cache_disabled,
    cache_info,
    clear_cache,
    default_cache_dir,
    enforce_limit,
    resolve_cache_dir,
    touch,
)
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.cohort_cache import content_hash_of
from ehrbackdoor.io import atomic_savez
from ehrbackdoor.preprocess.features import Features, window_features
from ehrbackdoor.preprocess.grid import Grid, _check_impute, _check_layout, discretize
from ehrbackdoor.preprocess.stay_store import StayStore, cached_rows

__all__ = [
    "CACHE_VERSION",
    "ENV_DIR",
    "ENV_DISABLE",
    "cache_disabled",
    "cache_info",
    "cache_key",
    "cache_path",
    "cached",
    "clear_cache",
    "default_cache_dir",
    "features_cached",
    "grid_cached",
    "store_key",
]

#: Bump whenever the output of any cached computation changes for the same inputs.
CACHE_VERSION = 3
_KEY_FIELD = "__cache_key__"
_KIND = re.compile(r"^[A-Za-z0-9_.-]+$")
GRID_ROWS = ("values", "mask", "delta", "stay_id", "label")
FEATURE_ROWS = ("X", "stay_id", "label")

log = logging.getLogger(__name__)


def _schema_fingerprint(cohort: Cohort) -> dict:
    d = cohort.schema.to_dict()
    d["benchmark_values"] = [list(v.benchmark_values) for v in cohort.schema.variables]
    return d


def _options_json(options: Mapping[str, Any]) -> Any:
    try:
        return json.loads(json.dumps(dict(options), sort_keys=True, allow_nan=True))
    except TypeError as exc:
        raise TypeError(f"cache options must be JSON-serialisable: {exc}") from None


def store_key(kind: str, cohort: Cohort, options: Mapping[str, Any]) -> str:
    """sha256 over schema, kind, options (sorted JSON) and CACHE_VERSION: one per-stay store."""
    payload = json.dumps(
        {
            "schema": _schema_fingerprint(cohort),
            "kind": kind,
            "options": _options_json(options),
            "version": CACHE_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_key(kind: str, cohort: Cohort, options: Mapping[str, Any]) -> str:
    """sha256 over cohort content, schema, kind, options (sorted JSON) and CACHE_VERSION."""
    payload = json.dumps(
        {"cohort": content_hash_of(cohort), "store": store_key(kind, cohort, options)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_path(kind: str, key: str, cache_dir: Path | str | None = None) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / "preprocess" / "whole" / f"{kind}-{key}.npz"


def _load(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The stored arrays, or None if the file is missing, unreadable or for another key."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # a corrupt cache must never be fatal: recompute instead
        log.warning("unreadable cache file %s (%s): recomputing", path, exc)
        return None
    stored = arrays.pop(_KEY_FIELD, None)
    if stored is None or str(stored) != key:
        log.warning("cache file %s does not carry its key: recomputing", path)
        return None
    touch(path)
    return arrays


def cached(
    kind: str,
    cohort: Cohort,
    options: Mapping[str, Any],
    compute: Callable[[], dict[str, np.ndarray]],
    cache_dir: CacheDir = None,
) -> dict[str, np.ndarray]:
    """Result of `compute()` for (cohort, kind, options), from disk when already computed.

    Stored whole; `compute` must return plain arrays (no object dtype).
    """
    if not _KIND.match(kind):
        raise ValueError(f"cache kind must match {_KIND.pattern}, got {kind!r}")
    root = resolve_cache_dir(cache_dir)
    if root is None:
        return compute()
    key = cache_key(kind, cohort, options)
    path = cache_path(kind, key, root)
    hit = _load(path, key)
    if hit is not None:
        return hit
    result = compute()
    if _KEY_FIELD in result:
        raise ValueError(f"{_KEY_FIELD!r} is reserved in cached results")
    try:
        atomic_savez(path, {**result, _KEY_FIELD: np.array(key)})
        enforce_limit(root, keep=[path])
    except OSError as exc:  # read-only or full disk: the result is still good
        warnings.warn(f"could not write preprocessing cache {path}: {exc}", stacklevel=2)
    return result


def cached_per_stay(
    kind: str,
    cohort: Cohort,
    options: Mapping[str, Any],
    compute: Callable[[Cohort], dict[str, np.ndarray]],
    row_fields: tuple[str, ...],
    cache_dir: CacheDir = None,
) -> dict[str, np.ndarray]:
    """`compute(cohort)` through the per-stay store (`compute` must be row-separable)."""
    if not _KIND.match(kind):
        raise ValueError(f"cache kind must match {_KIND.pattern}, got {kind!r}")
    root = resolve_cache_dir(cache_dir)
    if root is None:
        return compute(cohort)
    key = store_key(kind, cohort, options)
    store = StayStore(root / "preprocess" / f"{kind}-{key[:32]}", key)
    return cached_rows(store, cohort, compute, row_fields)


def grid_cached(
    cohort: Cohort,
    timestep: float = 1.0,
    hours: float | None = None,
    impute: str = "previous",
    layout: str = "ordinal",
    cache_dir: CacheDir = None,
) -> Grid:
    """`discretize` through the per-stay cache (`hours` defaults to the cohort's window)."""
    hours = cohort.window if hours is None else hours
    impute = _check_impute(impute)
    _check_layout(layout)
    options = {
        "timestep": float(timestep),
        "hours": float(hours),
        "impute": impute,
        "layout": layout,
    }
    arrays = cached_per_stay(
        "grid",
        cohort,
        options,
        lambda c: discretize(c, **options).to_arrays(),
        GRID_ROWS,
        cache_dir,
    )
    return Grid.from_arrays(arrays)


def features_cached(
    cohort: Cohort, hours: float | None = None, cache_dir: CacheDir = None
) -> Features:
    """`window_features` through the per-stay cache (`hours` defaults to the cohort's window)."""
    hours = cohort.window if hours is None else float(hours)
    options = {"hours": None if not np.isfinite(hours) else hours}
    arrays = cached_per_stay(
        "features",
        cohort,
        options,
        lambda c: window_features(c, hours).to_arrays(),
        FEATURE_ROWS,
        cache_dir,
    )
    return Features.from_arrays(arrays)
