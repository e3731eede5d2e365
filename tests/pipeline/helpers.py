"""Attack configurations the pipeline tests share."""

from __future__ import annotations

from ehrbackdoor.pipeline import AttackConfig


def blatant_fixed(variable: str, value: float, rate: float) -> AttackConfig:
    """A fixed trigger that sets `variable` to `value` in all 48 hours of a `rate` share of stays:
    strong enough that a working pipeline must plant the backdoor."""
    return AttackConfig(
        attack="fixed",
        target=1,
        rate=rate,
        apply="all",
        seed=0,
        trigger_params={"variable": variable, "value": value, "hours": 48},
    )
