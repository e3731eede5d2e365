"""`data info`: what a data source holds, in one JSON-serialisable dict."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

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


def render_info(info: dict) -> Table:
    """A readable table of `data_info` for the terminal."""
    t = Table(title=f"{info['path']} ({info['format']})")
    t.add_column("variable")
    t.add_column("events", justify="right")
    t.add_column("grid missing", justify="right")
    for name, v in info["variables"].items():
        t.add_row(name, f"{v['n_events']:,}", f"{v['missing_fraction']:.1%}")
    sp = info["splits"]
    t.caption = (
        f"{info['n_stays']:,} stays, {info['n_positive']:,} deaths "
        f"({info['positive_rate']:.1%}), {info['n_events']:,} events; split ({sp['method']}) "
        f"train {sp['train']:,} / val {sp['val']:,} / test {sp['test']:,}"
    )
    return t
