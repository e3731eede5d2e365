"""On-disk cache of preprocessing results, keyed by what they depend on.

Experiments preprocess the same cohort for many victims, seeds and defences; recomputing is cheap
but not free, and a STALE result would silently corrupt every number downstream. The key is therefore
the sha256 of (cohort.content_hash() - every event, label and stay id -, the schema's definition,
the kind of result, its options as sorted JSON, CACHE_VERSION): any change to the data or to the
options gives a new file, never an old answer.

Files are ``{dir}/{kind}-{key}.npz`` written atomically (temporary file + rename) with plain arrays
only and read with ``allow_pickle=False``; each stores its own key and is re-verified on load. A file
that cannot be read or does not match is recomputed and overwritten, never trusted and never fatal.

Directory: ``cache_dir`` if given, else ``$EHRBACKDOOR_CACHE``, else ``~/.cache/ehrbackdoor``.
``cache_dir=False`` or ``EHRBACKDOOR_NO_CACHE=1`` disables caching (compute every time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ehrbackdoor.data.cohort import WINDOW_HOURS, Cohort, atomic_savez
from ehrbackdoor.preprocess.features import Features, window_features
from ehrbackdoor.preprocess.grid import Grid, _check_impute, _check_layout, discretize

#: Bump whenever the output of any cached computation changes for the same inputs.
CACHE_VERSION = 2
ENV_DIR = "EHRBACKDOOR_CACHE"
ENV_DISABLE = "EHRBACKDOOR_NO_CACHE"
_KEY_FIELD = "__cache_key__"
_KIND = re.compile(r"^[A-Za-z0-9_.-]+$")

log = logging.getLogger(__name__)

CacheDir = Path | str | None | Literal[False]


def default_cache_dir() -> Path:
    """``$EHRBACKDOOR_CACHE`` or ``~/.cache/ehrbackdoor``."""
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ehrbackdoor"


def cache_disabled(cache_dir: CacheDir = None) -> bool:
    if cache_dir is False:
        return True
    return os.environ.get(ENV_DISABLE, "").strip().lower() in ("1", "true", "yes", "on")


def _schema_fingerprint(cohort: Cohort) -> dict:
    d = cohort.schema.to_dict()
    d["benchmark_values"] = [list(v.benchmark_values) for v in cohort.schema.variables]
    return d


def cache_key(kind: str, cohort: Cohort, options: Mapping[str, Any]) -> str:
    """sha256 over cohort content, schema, kind, options (sorted JSON) and CACHE_VERSION."""
    try:
        opts = json.dumps(dict(options), sort_keys=True, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"cache options must be JSON-serialisable: {exc}") from None
    payload = json.dumps(
        {
            "cohort": cohort.content_hash(),
            "schema": _schema_fingerprint(cohort),
            "kind": kind,
            "options": json.loads(opts),
            "version": CACHE_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_path(kind: str, key: str, cache_dir: Path | str | None = None) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"{kind}-{key}.npz"


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
    return arrays


def cached(
    kind: str,
    cohort: Cohort,
    options: Mapping[str, Any],
    compute: Callable[[], dict[str, np.ndarray]],
    cache_dir: CacheDir = None,
) -> dict[str, np.ndarray]:
    """Result of `compute()` for (cohort, kind, options), from disk when already computed.

    `compute` must return plain arrays (no object dtype). See the module docstring for keys and
    the cache location.
    """
    if not _KIND.match(kind):
        raise ValueError(f"cache kind must match {_KIND.pattern}, got {kind!r}")
    if cache_disabled(cache_dir):
        return compute()
    assert cache_dir is not False
    key = cache_key(kind, cohort, options)
    path = cache_path(kind, key, cache_dir)
    hit = _load(path, key)
    if hit is not None:
        return hit
    result = compute()
    if _KEY_FIELD in result:
        raise ValueError(f"{_KEY_FIELD!r} is reserved in cached results")
    try:
        atomic_savez(path, {**result, _KEY_FIELD: np.array(key)})
    except OSError as exc:  # read-only or full disk: the result is still good
        warnings.warn(f"could not write preprocessing cache {path}: {exc}", stacklevel=2)
    return result


def grid_cached(
    cohort: Cohort,
    timestep: float = 1.0,
    hours: float = WINDOW_HOURS,
    impute: str = "previous",
    layout: str = "ordinal",
    cache_dir: CacheDir = None,
) -> Grid:
    """`discretize` through the cache."""
    impute = _check_impute(impute)
    _check_layout(layout)
    options = {"timestep": float(timestep), "hours": float(hours), "impute": impute,
               "layout": layout}
    arrays = cached(
        "grid", cohort, options, lambda: discretize(cohort, **options).to_arrays(), cache_dir
    )
    return Grid.from_arrays(arrays)


def features_cached(
    cohort: Cohort, hours: float | None = WINDOW_HOURS, cache_dir: CacheDir = None
) -> Features:
    """`window_features` through the cache."""
    options = {"hours": None if hours is None else float(hours)}
    arrays = cached(
        "features", cohort, options, lambda: window_features(cohort, hours).to_arrays(), cache_dir
    )
    return Features.from_arrays(arrays)
