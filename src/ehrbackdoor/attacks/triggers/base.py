"""The trigger contract: fit on clean training stays, apply to any stays' raw events, save/load.

Like every component (`ehrbackdoor.base.Component`), a trigger stores its validated parameters in
the constructor and learns its state in `fit` (attributes ending in `_`); `fit` checks the cohort
and calls the subclass's `_fit`. `fit` also records the cohort's observation window
(``window_``, hours): patterns span its T hourly bins, so `apply` refuses stays of another window,
and `save` writes it. `apply` returns new raw events for the chosen stays; the poisoning engine
writes them into a cohort. Adding a trigger is adding one file that subclasses
`Trigger` (or the public family bases `value_base.ValueTrigger`, `missing_base.MissingTrigger`)
and registers the class with ``TRIGGERS.register`` (`ehrbackdoor.attacks.triggers`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ehrbackdoor.base import Component, NotFittedError
from ehrbackdoor.checks import check_float, check_int
from ehrbackdoor.data.cohort import WINDOW_HOURS, Cohort, Events
from ehrbackdoor.io import atomic_savez, atomic_write_json
from ehrbackdoor.preprocess.window import check_window

#: Apply modes of value triggers (the default family).
APPLY_MODES = ("observed", "all")
#: Trigger families: what a trigger changes -- recorded values, or which cells are observed.
FAMILIES = ("value", "missing")
#: Largest `strength` a value trigger accepts: a distance of 1000 standard deviations is already
#: far past any plausible range (values are clipped), larger only overflows to inf/NaN.
MAX_STRENGTH = 1e3
#: Window of trigger files saved before `trigger.json` recorded one (all fit on 48-hour cohorts).
LEGACY_WINDOW = WINDOW_HOURS


class Trigger(Component, ABC):
    """A backdoor trigger over raw events.

    Class attributes declare what other layers need to know without guessing: ``family``
    (``"value"`` changes recorded values, ``"missing"`` changes which cells are observed) and
    ``apply_modes`` (the modes `apply` accepts; the first is the default). Subclasses implement
    `_fit`, `apply`, `state` and `set_state`; `fit` validates the cohort first.
    """

    kind: ClassVar[str] = "trigger"
    family: ClassVar[str] = "value"
    apply_modes: ClassVar[tuple[str, ...]] = APPLY_MODES
    #: Fewest training stays `fit` accepts.
    min_stays: ClassVar[int] = 2

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_int("seed", seed, 0)

    # ------------------------------------------------------------------ contract
    def fit(self, cohort: Cohort) -> Trigger:
        """Learn what the trigger needs from clean (training) stays; returns self."""
        check_fit_cohort(cohort, self.min_stays, f"{self.family} trigger {self.name!r}")
        self.__dict__.pop("fitted_", None)  # a failed refit leaves the trigger unfitted
        self.window_ = float(cohort.window)
        self._fit(cohort)
        self.fitted_ = True
        return self

    @abstractmethod
    def _fit(self, cohort: Cohort) -> None:
        """Learn the trigger's state from a validated cohort."""

    @abstractmethod
    def apply(self, cohort: Cohort, idx: np.ndarray, mode: str = "observed") -> Events:
        """New raw events of stays `idx` of `cohort` carrying the trigger."""

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays, saved to NPZ."""

    @abstractmethod
    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        """Restore learned arrays (inverse of `state`)."""

    def info(self) -> dict[str, Any]:
        """JSON-serialisable diagnostics saved beside the arrays (optional)."""
        return {}

    # ------------------------------------------------------------------ helpers
    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def check_fitted(self, cohort: Cohort | None = None) -> None:
        """NotFittedError before `fit`; with `cohort`, also a ValueError if its window differs
        from the training window."""
        if not self.is_fitted:
            raise self._not_fitted("call fit(train_cohort) or load_trigger(dir) first")
        if cohort is not None:
            check_window(self.window_, cohort, f"trigger {self.name!r}")

    @classmethod
    def check_mode(cls, mode: str) -> str:
        """`mode` if this trigger accepts it, else a ValueError listing the accepted ones."""
        if mode not in cls.apply_modes:
            raise ValueError(
                f"trigger {cls.name!r} ({cls.family} family) accepts apply modes "
                f"{list(cls.apply_modes)}, got {mode!r}"
            )
        return mode

    def save(self, directory: str | Path) -> None:
        """Write `trigger.json` (name, parameters, diagnostics) and `trigger.npz` (arrays)."""
        self.check_fitted()
        from ehrbackdoor.victims._persist import sha256_hex

        d = Path(directory)
        atomic_savez(d / "trigger.npz", self.state())
        atomic_write_json(
            d / "trigger.json",
            {
                "name": self.name,
                "params": self.get_params(),
                "info": self.info(),
                "window": self.window_,
                "arrays_sha256": sha256_hex(d / "trigger.npz"),
            },
        )


def check_fit_cohort(cohort: Any, min_stays: int, what: str) -> None:
    """What every trigger's `fit` needs: a Cohort with at least `min_stays` stays."""
    if not isinstance(cohort, Cohort):
        raise ValueError(f"fitting {what} needs a Cohort, got {type(cohort).__name__}")
    if cohort.n_stays < min_stays:
        raise ValueError(
            f"fitting {what} needs at least {min_stays} training stays, got {cohort.n_stays}"
        )


def check_variables(variables: Any) -> list[str] | None:
    """A list of variable names (or None = the default set), named in the error otherwise."""
    if variables is None or (not isinstance(variables, str) and len(variables) == 0):
        return None
    if isinstance(variables, str) or not all(isinstance(v, str) for v in variables):
        raise ValueError(f"variables must be a list of variable names or None, got {variables!r}")
    return list(variables)


def load_trigger(directory: str | Path) -> Trigger:
    """Read a trigger written by `Trigger.save` (JSON + NPZ; nothing is unpickled).

    Untrusted input: neither file may be a symlink, and the NPZ must match the SHA-256 recorded
    in trigger.json (`ehrbackdoor.victims._persist.ModelFileError` otherwise).
    """
    from ehrbackdoor.attacks.triggers import make_trigger
    from ehrbackdoor.victims._persist import check_sha256, confined_file

    d = Path(directory)
    meta_path = confined_file(d, "trigger.json", "trigger.json")
    meta = json.loads(meta_path.read_text())
    npz = confined_file(d, "trigger.npz", "trigger.npz")
    check_sha256(npz, meta.get("arrays_sha256"), f"{meta_path}: 'arrays_sha256'")
    trig = make_trigger(meta["name"], **meta["params"])
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    trig.set_state(arrays, meta.get("info", {}))
    # Files written before triggers recorded their window were all fit on 48-hour cohorts.
    trig.window_ = check_float("window", meta.get("window", LEGACY_WINDOW), 0.0, low_open=True)
    trig.fitted_ = True
    return trig


__all__ = [
    "APPLY_MODES",
    "FAMILIES",
    "NotFittedError",
    "Trigger",
    "check_fit_cohort",
    "check_variables",
    "load_trigger",
]
