"""The threat model: what the attacker wants, how much data it controls, where the trigger goes."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

from ehrbackdoor.data.perturbation import GRID_MODES

SELECTIONS = ("non-target", "any", "target")
#: Where the attacker writes the trigger: raw events, or the victims' hourly grid values.
SPACES = ("raw", "grid")
TARGET_MEANING = {
    1: "false alarm (survivors made to look like dying)",
    0: "missed detection (dying patients made to look safe)",
}


def all_apply_modes() -> tuple[str, ...]:
    """Every apply mode some registered trigger accepts (in registry order)."""
    from ehrbackdoor.attacks.triggers import TRIGGERS

    modes: list[str] = []
    for cls in TRIGGERS.values():
        modes += [m for m in cls.apply_modes if m not in modes]
    return tuple(modes)


@dataclass(frozen=True)
class ThreatModel:
    """Attacker's goal and capability.

    - `target`: the label poisoned and triggered stays should receive (1 false alarm, 0 missed
      detection).
    - `rate`: share of training stays poisoned.
    - `selection`: `non-target` (default) picks seeded random stays whose true label differs from
      the target; `any` picks from all stays, as the first paper's public code does; `target`
      is the clean-label attacker: only stays that already have the target label are poisoned,
      so no label changes (the trigger alone must teach the association).
    - `apply`: `observed` changes recorded values only (a realistic attacker); `all` also writes
      the imputed cells (an attacker who knows the victim's imputation); missingness triggers
      take `delete` (= `observed`) or `exact`. Which modes a trigger accepts is its
      `apply_modes` (`trigger_info`); `check_trigger` checks the pair before any work.
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
        allowed = all_apply_modes() if self.space == "raw" else GRID_MODES
        if self.apply not in allowed:
            raise ValueError(
                f"apply must be one of {allowed} in {self.space} space, got {self.apply!r}"
            )
        if (
            not isinstance(self.seed, numbers.Integral)
            or isinstance(self.seed, bool)
            or self.seed < 0
        ):
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    def check_trigger(self, trigger: Any) -> None:
        """Fail now if `trigger` (a name, class or instance) rejects this threat's apply mode.

        A threat model alone accepts any trigger's mode; this check ties it to one trigger and
        costs nothing, so call it before fitting (`poison` and `attack_test` call it too).
        """
        from ehrbackdoor.attacks.triggers import check_apply_mode

        check_apply_mode(trigger, self.apply)

    def to_dict(self) -> dict:
        return asdict(self)
