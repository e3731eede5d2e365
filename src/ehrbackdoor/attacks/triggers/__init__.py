"""Trigger families, one file each; `make_trigger(name, **params)` builds one by name.

Extending: subclass the public base of the family (`value_base.ValueTrigger` or
`missing_base.MissingTrigger`, or `base.Trigger` for anything else), declare ``name`` (and
``family`` / ``apply_modes`` if they differ from the base's), implement ``_fit`` and register the
class: ``TRIGGERS.register(MyTrigger)``. `trigger_info(name)` tells other layers what a trigger is
without building one.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from ehrbackdoor.attacks.triggers.base import NotFittedError, Trigger, load_trigger
from ehrbackdoor.attacks.triggers.fixed import FixedPatternTrigger
from ehrbackdoor.attacks.triggers.full_cov import FullCovarianceTrigger
from ehrbackdoor.attacks.triggers.missing_block import BlockMissingTrigger
from ehrbackdoor.attacks.triggers.missing_random import RandomMissingTrigger
from ehrbackdoor.attacks.triggers.missing_real import RealMaskTrigger
from ehrbackdoor.attacks.triggers.missing_vae import VAEMissingTrigger
from ehrbackdoor.attacks.triggers.temporal import TemporalCovarianceTrigger
from ehrbackdoor.attacks.triggers.white_noise import WhiteNoiseTrigger
from ehrbackdoor.base import Registry, jsonable

TRIGGERS: Registry[Trigger] = Registry(
    "trigger",
    (
        TemporalCovarianceTrigger,
        WhiteNoiseTrigger,
        FullCovarianceTrigger,
        FixedPatternTrigger,
        VAEMissingTrigger,
        RandomMissingTrigger,
        BlockMissingTrigger,
        RealMaskTrigger,
    ),
)


def make_trigger(name: str, **params: Any) -> Trigger:
    """A new (unfitted) trigger by registry name; unknown names or parameters raise ValueError
    listing the valid ones."""
    return TRIGGERS.make(name, **params)


@dataclass(frozen=True)
class TriggerInfo:
    """What a registered trigger is: its family, accepted apply modes and parameters.

    ``apply_modes[0]`` is the default of `Trigger.apply`; ``params`` maps each constructor
    parameter to its default (JSON form).
    """

    name: str
    family: str
    apply_modes: tuple[str, ...]
    params: dict[str, Any]
    cls: type[Trigger]

    def accepts(self, mode: str) -> bool:
        return mode in self.apply_modes


def trigger_info(name: str | type[Trigger] | Trigger) -> TriggerInfo:
    """`TriggerInfo` of a registered trigger name (or a trigger class / instance)."""
    if isinstance(name, Trigger):
        cls: type[Trigger] = type(name)
    elif isinstance(name, type) and issubclass(name, Trigger):
        cls = name
    else:
        cls = TRIGGERS.get_class(name)
    params = {
        k: (None if d is inspect.Parameter.empty else jsonable(d))
        for k, d in cls.param_defaults().items()
    }
    return TriggerInfo(cls.name, cls.family, tuple(cls.apply_modes), params, cls)


def check_apply_mode(trigger: str | type[Trigger] | Trigger, mode: str) -> str:
    """`mode` if `trigger` accepts it, else a ValueError listing the modes it accepts.

    Cheap (no fitting): call it before any work, as `poison` and `attack_test` do.
    """
    trigger_info(trigger).cls.check_mode(mode)
    return mode


__all__ = [
    "TRIGGERS",
    "NotFittedError",
    "Trigger",
    "TriggerInfo",
    "check_apply_mode",
    "load_trigger",
    "make_trigger",
    "trigger_info",
]
