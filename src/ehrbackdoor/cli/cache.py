"""`ehrbackdoor cache ...`: where the caches live, how big they are, and clearing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ehrbackdoor.cli.common import friendly_errors

cache_app = typer.Typer(no_args_is_help=True, help="Inspect or clear the on-disk caches.")

CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Cache directory (default: $EHRBACKDOOR_CACHE or ~/.cache/ehrbackdoor)."
    ),
]


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


@cache_app.command("info")
@friendly_errors
def cache_info_cmd(
    cache_dir: CacheOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where the parsed-cohort and preprocessing caches are and how much they hold."""
    from ehrbackdoor.cachedir import cache_info

    info = cache_info(cache_dir)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    if not info["enabled"]:
        typer.echo("caching is off (EHRBACKDOOR_NO_CACHE is set)")
        return
    cap = info["max_bytes"]
    typer.echo(f"directory  {info['directory']}")
    typer.echo(f"size       {_mb(info['bytes'])} in {info['files']:,} files")
    typer.echo(f"cap        {_mb(cap) if cap else 'none'} (least recently used files go first)")
    for area, a in sorted(info["areas"].items()):
        typer.echo(f"  {area:<12} {_mb(a['bytes']):>12}  {a['files']:>7,} files")


@cache_app.command("clear")
@friendly_errors
def cache_clear_cmd(cache_dir: CacheOpt = None) -> None:
    """Delete every file ehrbackdoor cached (nothing else in the directory)."""
    from ehrbackdoor.cachedir import clear_cache

    freed = clear_cache(cache_dir)
    typer.echo(f"freed {_mb(freed)}")
