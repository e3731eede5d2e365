"""The threat model: what the attacker wants, how much data it controls, where the trigger goes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ehrbackdoor.attacks.triggers.base import APPLY_MODES

SELECTIONS = ("non-target", "any")
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
    """

    target: int = 1
    rate: float = 0.02
    selection: str = "non-target"
    apply: str = "observed"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target not in (0, 1):
            raise ValueError(f"target must be 0 or 1, got {self.target!r}")
        if not 0 < self.rate < 1:
            raise ValueError(f"rate must be in (0, 1), got {self.rate!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        allowed = (*APPLY_MODES, "delete", "exact")
        if self.apply not in allowed:
            raise ValueError(f"apply must be one of {allowed}, got {self.apply!r}")

    def to_dict(self) -> dict:
        return asdict(self)
