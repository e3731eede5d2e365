"""`ehrbackdoor run`, `results`, `report` and `demo`: declarative experiments and their reports.

Each is a thin wrapper over `run_experiment`, `format_results` (`format_frontier`,
`format_rate_for_asr` for `results --frontier` / `--rate-for-asr`) and `write_report`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ehrbackdoor.cli.common import check_out_dir, check_out_file, err, friendly_errors


@friendly_errors
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    out: Annotated[
        Path | None,
        typer.Option(help="Run directory (default: runs/<config name>)."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Data path overriding the config's (NAME=PATH for one of several)."),
    ] = None,
    executor: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    jobs: Annotated[
        int | None, typer.Option(min=1, help="Parallel steps (default: CPU count).")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (auto, HOST:PORT, local).")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Rerun cells that failed before.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Accept a changed config in an existing run directory."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    max_cells: Annotated[
        int | None,
        typer.Option(min=1, help="Refuse configs expanding to more cells (default: 100,000)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the cells, shared steps and estimated time; write nothing."
        ),
    ] = False,
) -> None:
    """Run (or resume) every cell of an experiment config; results go to DIR/results.sqlite."""
    from ehrbackdoor.experiments.config import MAX_CELLS, load_config
    from ehrbackdoor.experiments.runner import run_experiment

    cfg = load_config(config, data=data, max_cells=max_cells or MAX_CELLS)
    if dry_run:
        from ehrbackdoor.experiments.runner import dry_run as plan_only

        typer.echo(plan_only(cfg, jobs=jobs), nl=False)
        return
    run_dir = out or Path("runs") / cfg.name
    check_out_dir(run_dir)
    try:
        summary = run_experiment(
            cfg,
            run_dir,
            config_text=config.read_text(),
            executor=executor,
            jobs=jobs,
            address=address,
            retry_failed=retry_failed,
            force=force,
            progress=not quiet,
            console=err,
        )
    except KeyboardInterrupt:
        err.print(
            f"[yellow]interrupted[/yellow]: finished cells are saved in {run_dir}; rerun the "
            "same command to resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    _print_summary(summary)


@friendly_errors
def results(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    format: Annotated[
        str,
        typer.Option(
            help="markdown (tables for people), csv, json or long (CSV, one row per metric)."
        ),
    ] = "markdown",
    width: Annotated[
        int | None,
        typer.Option(min=40, help="Widest table, in characters (default: terminal or 80)."),
    ] = None,
    frontier: Annotated[
        bool,
        typer.Option(
            "--frontier",
            help="Instead: ASR beside the strongest data-level detector, per setting and victim.",
        ),
    ] = False,
    rate_for_asr: Annotated[
        float | None,
        typer.Option(
            "--rate-for-asr",
            min=0.0,
            max=1.0,
            metavar="LEVEL",
            help="Instead: the smallest poisoning rate reaching this mean ASR (interpolated).",
        ),
    ] = None,
) -> None:
    """Print the aggregated results: per victim and setting the mean and its 95% interval
    (bootstrap over test stays for one seed, Student t over seeds for several); `--frontier`
    and `--rate-for-asr` print the attacker's views instead (README: Efficacy against stealth)."""
    if frontier and rate_for_asr is not None:
        raise ValueError("--frontier and --rate-for-asr: give one of them")
    if frontier:
        from ehrbackdoor.experiments.frontier import format_frontier

        typer.echo(format_frontier(run_dir, format, width=width), nl=False)
        return
    if rate_for_asr is not None:
        from ehrbackdoor.experiments.frontier import format_rate_for_asr

        typer.echo(format_rate_for_asr(run_dir, rate_for_asr, format, width=width), nl=False)
        return
    from ehrbackdoor.experiments.results import format_results

    typer.echo(format_results(run_dir, format, width=width), nl=False)


@friendly_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[
        Path | None, typer.Option(help="HTML file to write (default: DIR/report.html).")
    ] = None,
) -> None:
    """Write one self-contained HTML report (tables and plots) of a run."""
    from ehrbackdoor.report import write_report

    if out is not None:
        check_out_file(out)
    path = write_report(run_dir, out)
    typer.echo(f"wrote {path}")


@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("ehrbackdoor-demo"),
    jobs: Annotated[
        int | None, typer.Option(min=1, help="Parallel steps (default: CPU count).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Synthesise a cohort, run the demo grid, print the results, write the report.

    A strong and a weak temporal value trigger and the VAE missing-value trigger against lr,
    mlp and gbdt, each beside the unpoisoned model's rate, and two detectors: about two minutes on two cores.
    """
    from ehrbackdoor.experiments import presets
    from ehrbackdoor.experiments.results import format_results
    from ehrbackdoor.experiments.runner import run_experiment
    from ehrbackdoor.report import write_report

    check_out_dir(out)
    t0 = time.perf_counter()
    cfg, text = presets.demo(out)
    summary = run_experiment(cfg, out, config_text=text, jobs=jobs, progress=not quiet, console=err)
    typer.echo(format_results(out, "markdown", brief=True))
    typer.echo(f"all tables: ehrbackdoor results {out}")
    path = write_report(out)
    typer.echo(f"wrote {path} ({time.perf_counter() - t0:.0f} s)")
    _print_summary(summary, hint=False)


def _print_summary(summary, hint: bool = True) -> None:
    """One line of counts; exit 1 when cells failed."""
    s = summary
    msg = (
        f"{s.total} cells: {s.already_done} already finished, {s.ok} ran, {s.failed} failed"
        + (f", {s.skipped_failed} failed earlier (use --retry-failed)" if s.skipped_failed else "")
        + f"; {s.seconds:.0f} s; store {s.run_dir / 'results.sqlite'}"
    )
    typer.echo(msg)
    if hint:
        typer.echo(f"next: ehrbackdoor results {s.run_dir} | ehrbackdoor report {s.run_dir}")
    if s.failed:
        err.print(
            f"[red]error:[/red] {s.failed} cells failed; see {s.run_dir / 'run.log'} and "
            "rerun with --retry-failed",
            highlight=False,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the top-level commands run, results, report and demo to `app`."""
    app.command("run")(run)
    app.command("results")(results)
    app.command("report")(report)
    app.command("demo")(demo)
