"""Backdoor attacks on raw EHR events: threat model, poisoning engine, trigger families."""

from ehrbackdoor.attacks.engine import Poisoned, attack_test, choose_poisoned, poison
from ehrbackdoor.attacks.threat import ThreatModel
from ehrbackdoor.attacks.triggers import (
    TRIGGERS,
    NotFittedError,
    Trigger,
    TriggerInfo,
    check_apply_mode,
    load_trigger,
    make_trigger,
    trigger_info,
)

__all__ = [
    "TRIGGERS",
    "NotFittedError",
    "Poisoned",
    "ThreatModel",
    "Trigger",
    "TriggerInfo",
    "attack_test",
    "check_apply_mode",
    "choose_poisoned",
    "load_trigger",
    "make_trigger",
    "poison",
    "trigger_info",
]
