"""The threat model: what the attacker wants, how much data it controls, where the trigger goes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ehrbackdoor.attacks.triggers.base import APPLY_MODES

SELECTIONS = ("non-target", "any")
#: Where the attacker writes the trigger: raw events, or the victims' hourly grid values.
SPACES = ("raw", "grid")
TARGET_MEANING = {
    1: "false alarm (survivors made to look like dying)",
    0: "missed detection (dying patients made to look safe)",
}


@dataclass(frozen=True)
class ThreatModel:
    """Attacker's goal and capability.

    - `target`: the label poisoned and triggered stays should receive (1 false alarm, 0 missed
      detection).
    - `rate`: share of training stays poisoned.
    - `selection`: `non-target` (default) picks seeded random stays whose true label differs from
      the target; `any` picks from all stays, as the first paper's public code does.
    - `apply`: `observed` changes recorded values only (a realistic attacker); `all` also writes
      the imputed cells (an attacker who knows the victim's imputation).
    - `seed`: drives the choice of poisoned stays.
    - `space`: `raw` (default) edits raw events before any preprocessing; `grid` is the first
      paper's setting: the poisoned cohort carries the trigger (`Cohort.grid_perturbation`) and
      every victim's discretiser adds it to hourly bin values (`observed` bins or `all` bins),
      raw events and masks unchanged. Only additive value triggers have a grid form.
    """

    target: int = 1
    rate: float = 0.02
    selection: str = "non-target"
    apply: str = "observed"
    seed: int = 0
    space: str = "raw"

    def __post_init__(self) -> None:
        if self.target not in (0, 1):
            raise ValueError(f"target must be 0 or 1, got {self.target!r}")
        if not 0 < self.rate < 1:
            raise ValueError(f"rate must be in (0, 1), got {self.rate!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        allowed = (*APPLY_MODES, "delete", "exact") if self.space == "raw" else APPLY_MODES
        if self.apply not in allowed:
            raise ValueError(
                f"apply must be one of {allowed} in {self.space} space, got {self.apply!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)
