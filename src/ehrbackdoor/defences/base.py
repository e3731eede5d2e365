"""The detector contract: one suspicion score per training stay, higher = more suspicious.

Like the victims and triggers, a detector follows the component contract (`ehrbackdoor.base`):
the constructor only stores (and validates) its parameters, including a ``seed``; `score` does the work and leaves
diagnostics in attributes ending in ``_`` (``info_``). Because every detector returns the same thing
-- a finite float per stay of the (possibly poisoned) training cohort -- one evaluation serves them
all (`ehrbackdoor.defences.evaluate`).

The defender sees the poisoned training cohort but not which stays are poisoned: no detector reads
``Cohort.modified``, except the reference filters (``oracle = True``) that bound every result.
Model-level detectors (``needs_victim = True``) inspect a victim trained on that cohort through its
public interface (`predict_proba`, `embed`, `threshold_`). Detectors that need trusted clean stays
(STRIP's donors) take them from the optional ``reference`` cohort, e.g. the clean validation stays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from ehrbackdoor.base import Component, NotFittedError
from ehrbackdoor.checks import check_bool, check_choice, check_float, check_int  # noqa: F401 (re-exported)
from ehrbackdoor.data.cohort import Cohort

#: Families a detector belongs to (the audit table groups rows by family).
FAMILIES = ("data", "model", "reference")
#: BLAS threads while a detector scores. One: on a shared two-core machine OpenBLAS's spinning
#: worker threads made LOF on 240 stays take 4.5 s instead of 0.12 s; detectors' matrices are
#: small enough that one thread costs little when the machine is idle.
BLAS_THREADS = 1


def single_threaded_blas():
    """Context limiting BLAS (not OpenMP, not torch) to `BLAS_THREADS` threads."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=BLAS_THREADS, user_api="blas")


class Detector(Component, ABC):
    """A poison detector over raw training stays.

    Subclasses declare their parameters as keyword arguments of ``__init__`` (stored under the same
    names, validated there) and implement `_score`. Class attributes: ``name`` (registry name),
    ``family`` (data / model / reference), ``needs_victim`` (model-level detectors), ``oracle``
    (reads the ground truth; reference filters only).
    """

    kind: ClassVar[str] = "defence"
    family: ClassVar[str] = "data"
    needs_victim: ClassVar[bool] = False
    oracle: ClassVar[bool] = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_int("seed", seed, 0)

    # ------------------------------------------------------------------ contract
    def score(
        self, poisoned_train: Cohort, victim: Any = None, reference: Cohort | None = None
    ) -> np.ndarray:
        """Suspicion of every stay of `poisoned_train`, shape (n,), float64, finite.

        `victim` is required by model-level detectors (a victim fitted on `poisoned_train`) and
        ignored by the others. `reference` are optional trusted clean stays (same schema).
        Deterministic: the same cohort, victim and seed give the same scores.
        """
        if not isinstance(poisoned_train, Cohort):
            raise ValueError(
                f"poisoned_train must be a Cohort, got {type(poisoned_train).__name__}"
            )
        if poisoned_train.n_stays < 2:
            raise ValueError(
                f"{self.name}: scoring needs at least 2 training stays, got {poisoned_train.n_stays}"
            )
        if self.needs_victim:
            if victim is None:
                raise ValueError(
                    f"detector {self.name!r} inspects a model: pass victim= (a victim trained on "
                    "the poisoned cohort)"
                )
            if not hasattr(victim, "threshold_"):
                raise NotFittedError(
                    f"detector {self.name!r}: the victim is not fitted; call fit(train, val) first"
                )
        if reference is not None:
            if not isinstance(reference, Cohort):
                raise ValueError(f"reference must be a Cohort, got {type(reference).__name__}")
            if reference.schema.name != poisoned_train.schema.name:
                raise ValueError(
                    f"reference cohort uses schema {reference.schema.name!r}, the training "
                    f"cohort {poisoned_train.schema.name!r}"
                )
        self.info_: dict[str, Any] = {}
        with single_threaded_blas():
            s = np.asarray(self._score(poisoned_train, victim, reference), dtype=np.float64)
        if s.shape != (poisoned_train.n_stays,):
            raise RuntimeError(
                f"{type(self).__name__} returned scores of shape {s.shape}, expected "
                f"({poisoned_train.n_stays},)"
            )
        if not np.all(np.isfinite(s)):
            raise RuntimeError(f"{type(self).__name__} returned non-finite scores")
        return s

    def removal_count(self, poisoned_train: Cohort, k: int) -> int:
        """How many top-scored stays mitigation removes: the budget `k` (reference filters differ)."""
        return int(k)

    @abstractmethod
    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        """Per-stay suspicion (validated and converted by `score`)."""

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


def predicted_classes(victim: Any, cohort: Cohort, by: str) -> np.ndarray:
    """Class of each stay used to segment representations: the victim's prediction at its
    operating threshold (``by="predicted"``) or the training label (``by="label"``)."""
    if by == "label":
        return np.asarray(cohort.label, dtype=np.int64)
    p = np.asarray(victim.predict_proba(cohort), dtype=np.float64)
    return (p >= float(victim.threshold_)).astype(np.int64)


def embeddings(victim: Any, cohort: Cohort) -> np.ndarray:
    """The victim's penultimate representation (n, d) as float64, checked."""
    z = np.asarray(victim.embed(cohort), dtype=np.float64)
    if z.ndim != 2 or z.shape[0] != cohort.n_stays:
        raise RuntimeError(f"victim.embed returned shape {z.shape}, expected ({cohort.n_stays}, d)")
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
