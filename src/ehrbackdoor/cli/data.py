"""`ehrbackdoor data ...`: synthesise, fetch, inspect and export data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ehrbackdoor.cli.common import check_out_dir, check_out_file, friendly_errors, print_error
from ehrbackdoor.cli.progress import progress_bar

data_app = typer.Typer(no_args_is_help=True, help="Synthesise, fetch, inspect and export data.")


@data_app.command("synth")
@friendly_errors
def data_synth(
    out: Annotated[Path, typer.Option(help="Directory to write (MIMIC-III benchmark format).")],
    stays: Annotated[int, typer.Option(min=10, help="Number of ICU stays.")] = 2000,
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed; the same seed writes the same files.")
    ] = 0,
) -> None:
    """Write a synthetic cohort in the MIMIC-III in-hospital-mortality benchmark layout."""
    from ehrbackdoor.data.load import load_cohort
    from ehrbackdoor.data.synthetic import generate_synthetic

    check_out_dir(out)
    if out.is_dir() and any(out.iterdir()):
        # Old files of another cohort would be read together with the new ones.
        raise ValueError(f"--out {out}: directory is not empty; give a new or empty directory")
    with progress_bar() as bar:
        path = generate_synthetic(out, n_stays=stays, seed=seed, progress=bar)
    s = load_cohort(path).summary()
    typer.echo(
        f"wrote {s['n_stays']} stays ({s['n_positive']} deaths, {s['n_events']} events, "
        f"hourly-grid missing rate {s['grid_missing_rate']:.2f}) to {path}"
    )


@data_app.command("fetch")
@friendly_errors
def data_fetch(
    source: Annotated[str, typer.Argument(help="Data set to fetch: physionet2012.")],
    out: Annotated[Path, typer.Option(help="Directory to download and extract into.")],
    sets: Annotated[str, typer.Option(help="Comma-separated challenge sets.")] = "a,b,c",
    base_url: Annotated[str | None, typer.Option(help="Mirror base URL.")] = None,
) -> None:
    """Download a public data set, verify its SHA-256 checksums and extract it safely."""
    from ehrbackdoor.data.fetch import DEFAULT_URL, FetchError, fetch_physionet2012

    if source != "physionet2012":
        raise ValueError(f"unknown source {source!r}; available: physionet2012")
    check_out_dir(out)
    try:
        with progress_bar(transfer=True) as bar:
            path = fetch_physionet2012(
                out,
                sets=[s.strip() for s in sets.split(",") if s.strip()],
                base_url=base_url or DEFAULT_URL,
                progress=bar,
            )
    except FetchError as e:
        print_error(str(e))
        raise typer.Exit(1) from None
    typer.echo(f"PhysioNet 2012 data ready in {path}")


@data_app.command("info")
@friendly_errors
def data_info(
    path: Annotated[Path, typer.Argument(help="Data directory or cohort file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the stratified split reported.")] = 0,
) -> None:
    """Summarise a data source: stays, deaths, events, missingness, split sizes, cleaning."""
    from ehrbackdoor.data.info import data_info as compute_info

    info = compute_info(path, seed=seed)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    Console().print(render_info(info))
    typer.echo(render_cleaning(info.get("cleaning") or {}))


def render_info(info: dict) -> Table:
    """A readable table of `ehrbackdoor.data.info.data_info` for the terminal."""
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


def _count(name: str, v) -> str | None:
    """`name 12`, or for per-key counts (per variable, per file) a total and the largest three."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return f"{name.replace('_', ' ')} {v:,}" if v else None
    if isinstance(v, dict):
        nums = {k: x for k, x in v.items() if isinstance(x, int | float) and x}
        if not nums:
            return None
        top = sorted(nums.items(), key=lambda kv: -kv[1])[:3]
        more = f", ... {len(nums) - 3} more" if len(nums) > 3 else ""
        return (
            f"{name.replace('_', ' ')} {sum(nums.values()):,} in {len(nums):,} entries "
            f"({', '.join(f'{k} {x:,}' for k, x in top)}{more})"
        )
    return None


def render_cleaning(cleaning: dict, prefix: str = "") -> str:
    """A compact cleaning summary: the policy in one paragraph, then only the non-zero counts
    (per-variable or per-file counts summarised as a total and the largest three)."""
    import textwrap

    if "sources" in cleaning:
        return "\n".join(
            render_cleaning(c, f"source {i + 1}: ") for i, c in enumerate(cleaning["sources"])
        )
    lines = []
    if cleaning.get("policy"):
        lines.append(textwrap.fill(f"{prefix}cleaning: {cleaning['policy']}", width=80))
    counts = [c for k, v in cleaning.items() if k != "policy" and (c := _count(k, v))]
    lines.append(textwrap.fill("removed or counted: " + ("; ".join(counts) or "nothing"), width=80))
    return "\n".join(lines)


@data_app.command("export")
@friendly_errors
def data_export(
    path: Annotated[Path, typer.Argument(help="Data directory or cohort file.")],
    out: Annotated[Path, typer.Option(help="Output .npz file.")],
    representation: Annotated[str, typer.Option(help="grid or features.")] = "grid",
    layout: Annotated[str, typer.Option(help="Grid layout: ordinal or benchmark.")] = "ordinal",
    impute: Annotated[str, typer.Option(help="Grid imputation: previous, normal, zero.")] = (
        "previous"
    ),
) -> None:
    """Write the preprocessed arrays of every stay: X, y, stay_id, columns."""
    from ehrbackdoor.pipeline.export import REPRESENTATIONS, export_arrays

    if representation not in REPRESENTATIONS:
        raise ValueError(
            f"--representation must be one of {', '.join(REPRESENTATIONS)}, got {representation!r}"
        )
    check_out_file(out)
    n, shape = export_arrays(path, out, representation=representation, layout=layout, impute=impute)
    typer.echo(f"wrote X {shape} for {n} stays to {out}")
