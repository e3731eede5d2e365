"""Fit one victim by registry name: the single training entry point of the higher layers.

Pipelines, experiment steps and defences (mitigation retrains victims) all train through
`fit_victim`, so the seed and the clean-validation threshold are handled the same way everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ehrbackdoor.data.cohort import Cohort

ProgressFn = Callable[[int, float], None]


def fit_victim(
    name: str,
    train: Cohort,
    val: Cohort,
    seed: int,
    params: dict | None = None,
    progress: ProgressFn | None = None,
    selection: Any = None,
) -> tuple[Any, float]:
    """A fitted victim and its training time in seconds. The victim chooses its epoch and
    operating threshold by `selection` (`ehrbackdoor.victims.protocol`; None = honest: clean
    validation data only)."""
    from ehrbackdoor.victims import make_victim

    victim = make_victim(name, seed=seed, **(params or {}))
    t0 = time.perf_counter()
    victim.fit(train, val, progress=progress, selection=selection)
    return victim, time.perf_counter() - t0
