"""Progress shown while a command works: spinners, an epoch bar and progress bars on stderr."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ehrbackdoor.cli.common import err
from ehrbackdoor.progress import ProgressFn


class epoch_progress:
    """A rich progress bar fed by a victim's (epoch, validation AUPRC) callback."""

    def __init__(self, label: str) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._p = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self._label = label

    def __enter__(self) -> Callable[[int, float], None]:
        self._p.start()
        task = self._p.add_task(f"{self._label}: preparing data", total=None)

        def update(epoch: int, val_auprc: float) -> None:
            if not err.is_terminal:  # a pipe or CI: one plain line per epoch
                err.print(
                    f"{self._label}: epoch {epoch}, val AUPRC {val_auprc:.3f}",
                    markup=False,
                    highlight=False,
                )
                return
            self._p.update(
                task, description=f"{self._label}: epoch {epoch}, val AUPRC {val_auprc:.3f}"
            )

        return update

    def __exit__(self, *exc) -> None:
        self._p.stop()


@contextmanager
def step_status(first: str = "starting") -> Iterator[Callable[[str], None]]:
    """A spinner whose text follows the library's `on_step(message)` callback in a terminal;
    elsewhere (a pipe, nohup, CI) one plain line per step with the time elapsed, so a long
    step is never silent."""
    if err.is_terminal:
        with err.status(first) as status:
            yield lambda msg: status.update(msg)
        return
    t0 = time.perf_counter()

    def line(msg: str) -> None:
        err.print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", markup=False, highlight=False)

    line(first)
    yield line
    line("done")


@contextmanager
def progress_bar(transfer: bool = False) -> Iterator[ProgressFn]:
    """A rich bar (one task per description) fed by a library `ProgressFn`; with `transfer`,
    columns for bytes, speed and time left. Hidden when stderr is not a terminal."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn()]
    if transfer:
        columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    tasks: dict[str, int] = {}
    with Progress(*columns, console=err, transient=not transfer, disable=not err.is_terminal) as p:

        def update(description: str, done: int, total: int | None) -> None:
            if description not in tasks:
                tasks[description] = p.add_task(description, total=total)
            p.update(tasks[description], completed=done, total=total)

        yield update
