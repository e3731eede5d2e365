"""`data info`: what a data source holds, in one JSON-serialisable dict."""

from __future__ import annotations

from pathlib import Path

from ehrbackdoor.data.load import detect_format, load_cohort, resolve_split


def data_info(path: str | Path, seed: int = 0) -> dict:
    """Format, sizes, deaths, per-variable events and hourly-grid missingness, split sizes and what
    the cleaning policy removed."""
    fmt = detect_format(path)
    cohort = load_cohort(path)
    s = cohort.summary()
    split = resolve_split(cohort, seed=seed)
    return {
        "format": fmt,
        "path": str(path),
        "window_hours": cohort.window,
        "n_stays": s["n_stays"],
        "n_positive": s["n_positive"],
        "positive_rate": s["positive_rate"],
        "n_events": s["n_events"],
        "n_empty_stays": s["n_empty_stays"],
        "grid_missing_rate": s["grid_missing_rate"],
        "variables": s["variables"],
        "splits": {"method": split.method, "seed": split.seed, **split.sizes()},
        "cleaning": cleaning_of(cohort.meta),
    }


def cleaning_of(meta: dict) -> dict:
    """What the readers' cleaning policies removed: the reader's counts, or for a concatenated
    cohort each source's counts in order (``{"sources": [...]}``)."""
    if "cleaning" in meta:
        return meta["cleaning"]
    sources = meta.get("sources")
    if sources:
        return {"sources": [cleaning_of(m) for m in sources]}
    return {}
