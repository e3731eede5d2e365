"""`ehrbackdoor train`: one victim on clean data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ehrbackdoor.cli.common import check_out_dir, friendly_errors
from ehrbackdoor.cli.progress import epoch_progress


@friendly_errors
def train(
    data: Annotated[Path, typer.Option(help="Training data (directory or cohort file).")],
    model: Annotated[str, typer.Option(help="Victim: lr, mlp, lstm, gru, grud, gbdt.")],
    out: Annotated[Path, typer.Option(help="Output directory (metrics.json, model/).")],
    test_data: Annotated[Path | None, typer.Option(help="Separate test data.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the victim's initialisation.")] = 0,
    split_seed: Annotated[int, typer.Option(min=0, help="Seed of the stratified split.")] = 0,
    split_file: Annotated[Path | None, typer.Option(help="Reuse a saved splits.json.")] = None,
    bootstrap: Annotated[int, typer.Option(min=1, help="Bootstrap resamples for CIs.")] = 10_000,
) -> None:
    """Train one victim on clean data and write DIR/metrics.json plus the saved model."""
    from ehrbackdoor.pipeline import train_victim
    from ehrbackdoor.victims import make_victim

    make_victim(model, seed=seed)  # an unknown name fails before the data load
    check_out_dir(out)
    with epoch_progress(model) as progress:
        result = train_victim(
            data,
            model,
            seed=seed,
            out=out,
            test_data=test_data,
            split_file=split_file,
            split_seed=split_seed,
            n_bootstrap=bootstrap,
            progress=progress,
        )
    t = result["test"]
    typer.echo(
        f"{model}: test AUROC {t['auroc']:.3f} [{t['auroc_ci'][0]:.3f}, {t['auroc_ci'][1]:.3f}], "
        f"AUPRC {t['auprc']:.3f} [{t['auprc_ci'][0]:.3f}, {t['auprc_ci'][1]:.3f}] "
        f"({result['train_seconds']:.1f} s); wrote {out / 'metrics.json'}"
    )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
