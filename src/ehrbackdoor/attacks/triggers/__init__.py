"""Trigger families, one file each; `make_trigger(name, **params)` builds one by name."""

from __future__ import annotations

from typing import Any

from ehrbackdoor.attacks.triggers.base import Trigger, load_trigger
from ehrbackdoor.attacks.triggers.fixed import FixedPatternTrigger
from ehrbackdoor.attacks.triggers.full_cov import FullCovarianceTrigger
from ehrbackdoor.attacks.triggers.missing import (
    BlockMissingTrigger,
    RandomMissingTrigger,
    RealMaskTrigger,
    VAEMissingTrigger,
)
from ehrbackdoor.attacks.triggers.temporal import TemporalCovarianceTrigger
from ehrbackdoor.attacks.triggers.white_noise import WhiteNoiseTrigger

TRIGGERS: dict[str, type[Trigger]] = {
    t.name: t
    for t in (
        TemporalCovarianceTrigger,
        WhiteNoiseTrigger,
        FullCovarianceTrigger,
        FixedPatternTrigger,
        VAEMissingTrigger,
        RandomMissingTrigger,
        BlockMissingTrigger,
        RealMaskTrigger,
    )
}


def make_trigger(name: str, **params: Any) -> Trigger:
    """A trigger by family name with its parameters (unknown names list the valid ones)."""
    try:
        cls = TRIGGERS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; expected one of {sorted(TRIGGERS)}") from None
    return cls(**params)


__all__ = ["TRIGGERS", "Trigger", "load_trigger", "make_trigger"]
