"""Command-line interface: a thin layer over the documented Python API.

Every command parses its options, calls one library function and prints or writes what it returns.
Errors in user input are shown as one clear message (exit code 2), not a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from ehrbackdoor.data.errors import DataFormatError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Backdoor attacks on machine-learning models of electronic health records.",
)
data_app = typer.Typer(no_args_is_help=True, help="Synthesise, fetch, inspect and export data.")
app.add_typer(data_app, name="data")

err = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def friendly_errors(fn: F) -> F:
    """Turn input errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DataFormatError, ValueError, KeyError, FileNotFoundError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            err.print(f"[red]error:[/red] {msg}", highlight=False, markup=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ data
@data_app.command("synth")
@friendly_errors
def data_synth(
    out: Annotated[Path, typer.Option(help="Directory to write (MIMIC-III benchmark format).")],
    stays: Annotated[int, typer.Option(min=10, help="Number of ICU stays.")] = 2000,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed writes the same files.")
    ] = 0,
) -> None:
    """Write a synthetic cohort in the MIMIC-III in-hospital-mortality benchmark layout."""
    from ehrbackdoor.data.load import load_cohort
    from ehrbackdoor.data.synthetic import generate_synthetic

    path = generate_synthetic(out, n_stays=stays, seed=seed, progress=True)
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
    try:
        path = fetch_physionet2012(
            out,
            sets=[s.strip() for s in sets.split(",") if s.strip()],
            base_url=base_url or DEFAULT_URL,
        )
    except FetchError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(1) from None
    typer.echo(f"PhysioNet 2012 data ready in {path}")


@data_app.command("info")
@friendly_errors
def data_info(
    path: Annotated[Path, typer.Argument(help="Data directory or cohort file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the stratified split reported.")] = 0,
) -> None:
    """Summarise a data source: stays, deaths, events, missingness, split sizes, cleaning."""
    from ehrbackdoor.data.info import data_info as compute_info

    info = compute_info(path, seed=seed)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from ehrbackdoor.data.info import render_info

    Console().print(render_info(info))


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
    from ehrbackdoor.data.export import export_arrays

    n, shape = export_arrays(path, out, representation=representation, layout=layout, impute=impute)
    typer.echo(f"wrote X {shape} for {n} stays to {out}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
