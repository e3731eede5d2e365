"""Command-line interface: a thin layer over the documented Python API.

Every command checks its options (names, seeds, where it will write) before any work, calls one
library function and prints or writes what it returns. Errors in user input are shown as one clear
message (exit code 2), not a traceback.

Modules: `data` (data synth/fetch/info/export), `train`, `attack` (attack and audit, one set of
options), `design` (trigger design and its transfer), `experiments` (run, results, report, demo), `progress` (spinners and bars), `common`
(error format, output checks), `cache` (cache info/clear).
"""

from __future__ import annotations

import typer

from ehrbackdoor.cli import attack, design, experiments, train
from ehrbackdoor.cli.cache import cache_app
from ehrbackdoor.cli.common import friendly_errors
from ehrbackdoor.cli.data import data_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Backdoor attacks on machine-learning models of electronic health records.",
)
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
train.register(app)
attack.register(app)
design.register(app)
experiments.register(app)

__all__ = ["app", "friendly_errors", "main"]


def main() -> None:  # pragma: no cover - console entry point
    app()
