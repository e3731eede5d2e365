"""The trigger contract: fit on clean training stays, apply to any stays' raw events, save/load.

Like a scikit-learn estimator, a trigger stores its parameters in the constructor and learns its
state in `fit` (attributes ending in `_`). `apply` returns new raw events for the chosen stays; the
poisoning engine writes them into a cohort. Adding a trigger family is adding one file that
subclasses `Trigger` and registers itself in `ehrbackdoor.attacks.triggers.TRIGGERS`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.io import atomic_savez, atomic_write_json

APPLY_MODES = ("observed", "all")


class Trigger(ABC):
    """A backdoor trigger over raw events."""

    name: ClassVar[str]

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    # ------------------------------------------------------------------ contract
    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable), including the seed."""

    @abstractmethod
    def fit(self, cohort: Cohort) -> Trigger:
        """Learn what the trigger needs from clean (training) stays; returns self."""

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

    def check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train_cohort) first")

    @staticmethod
    def check_mode(mode: str) -> str:
        if mode not in APPLY_MODES:
            raise ValueError(f"apply mode must be one of {APPLY_MODES}, got {mode!r}")
        return mode

    def save(self, directory: str | Path) -> None:
        """Write `trigger.json` (name, parameters, diagnostics) and `trigger.npz` (arrays)."""
        self.check_fitted()
        from ehrbackdoor.victims._persist import sha256_hex

        d = Path(directory)
        atomic_savez(d / "trigger.npz", self.state())
        atomic_write_json(
            d / "trigger.json",
            {"name": self.name, "params": self.get_params(), "info": self.info(),
             "arrays_sha256": sha256_hex(d / "trigger.npz")},
        )


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
    trig.fitted_ = True
    return trig
