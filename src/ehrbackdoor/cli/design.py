"""`ehrbackdoor design`: design a trigger on the attacker's stays and measure its transfer
(a thin wrapper over `ehrbackdoor.pipeline.design.run_design`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ehrbackdoor.cli.common import check_out_dir, friendly_errors, split_names
from ehrbackdoor.cli.progress import step_status


@friendly_errors
def design(
    data: Annotated[Path, typer.Option(help="Training data (directory or cohort file).")],
    out: Annotated[Path, typer.Option(help="Output directory (results.json, design.json, ...).")],
    family: Annotated[
        str, typer.Option(help="value (temporal) or missing (missing-vae).")
    ] = "value",
    rate: Annotated[float, typer.Option(help="Share of the victim's stays poisoned.")] = 0.02,
    target: Annotated[int | None, typer.Option(help="Default: 1 (value), 0 (missing).")] = None,
    apply: Annotated[str | None, typer.Option(help="Default: observed / exact.")] = None,
    selection: Annotated[str, typer.Option(help="non-target, any or target.")] = "non-target",
    models: Annotated[str, typer.Option(help="Comma-separated victims.")] = "lr,mlp,gru,lstm",
    seed: Annotated[int, typer.Option(min=0, help="Seed of the split, search and victims.")] = 0,
    surrogate: Annotated[str, typer.Option(help="The attacker's surrogate victim.")] = "lr",
    detectors: Annotated[
        str | None, typer.Option(help="Public detectors (default: the family's data-level ones).")
    ] = None,
    max_detection: Annotated[
        float, typer.Option(help="Detection AUROC limit of each detector.")
    ] = 0.65,
    max_cost: Annotated[float, typer.Option(help="Clean AUROC cost limit.")] = 0.01,
    objective: Annotated[str, typer.Option(help="asr or lift (ASR minus the clean rate).")] = "asr",
    compare_default: Annotated[
        bool, typer.Option("--compare-default", help="Also run the family's default trigger.")
    ] = False,
    test_data: Annotated[Path | None, typer.Option(help="Separate test data.")] = None,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for ASR CI.")] = 1000,
) -> None:
    """Search a trigger family's space on half the training stays (the attacker's) with a
    surrogate and public detectors, then attack every victim trained on the other half."""
    from ehrbackdoor.experiments.readable import design_text
    from ehrbackdoor.pipeline.design import run_design

    names = split_names(models)
    check_out_dir(out)
    with step_status() as on_step:
        result = run_design(
            data,
            family,
            names,
            out,
            rate=rate,
            target=target,
            apply=apply,
            selection=selection,
            seed=seed,
            surrogate=surrogate,
            detectors=split_names(detectors) if detectors else None,
            max_auroc_cost=max_cost,
            max_detection_auroc=max_detection,
            objective=objective,
            compare_default=compare_default,
            test_data=test_data,
            n_bootstrap=bootstrap,
            on_step=on_step,
        )
    typer.echo(design_text(result), nl=False)
    typer.echo(f"wrote {out / 'results.json'}")


def register(app: typer.Typer) -> None:
    app.command("design")(design)
