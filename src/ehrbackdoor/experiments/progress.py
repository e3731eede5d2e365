"""What a run shows while it works: a progress bar on stderr and the run directory's log."""

from __future__ import annotations

import logging
from pathlib import Path

LOG_FILE = "run.log"
log = logging.getLogger("ehrbackdoor.experiments")


class Progress:
    """Rich progress bar: cells done / total, failures, elapsed time, ETA (or nothing)."""

    def __init__(self, enabled: bool, total: int, done: int, console=None) -> None:
        self.enabled = enabled
        self.failed = 0
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self._p = Bar(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cells  [red]{task.fields[failed]} failed[/red]"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._p.start()
        self._task = self._p.add_task("running", total=total, completed=done, failed=0)

    def status(self, text: str) -> None:
        if self.enabled:
            self._p.update(self._task, description=text)

    def cell_done(self, ok: bool) -> None:
        if not ok:
            self.failed += 1
        if self.enabled:
            self._p.update(self._task, advance=1, failed=self.failed)

    def close(self) -> None:
        if self.enabled:
            self._p.stop()


def setup_log(run_dir: Path) -> logging.Handler:
    """Log the run to `run_dir/run.log` (appending: one file tells every resume)."""
    handler = logging.FileHandler(Path(run_dir) / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler
