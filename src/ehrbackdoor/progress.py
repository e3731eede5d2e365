"""How long-running library work reports progress without knowing how it is shown.

A `ProgressFn` is called with a description, the units done so far and the total (None when
unknown); the cli renders it (`ehrbackdoor.cli.progress.progress_bar`), a library caller may log it
or pass nothing.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, int, "int | None"], None]

__all__ = ["ProgressFn"]
