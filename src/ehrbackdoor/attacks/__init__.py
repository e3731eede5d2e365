"""Backdoor attacks on raw EHR events: threat model, poisoning engine, trigger families."""

from ehrbackdoor.attacks.engine import Poisoned, attack_test, choose_poisoned, poison
from ehrbackdoor.attacks.threat import ThreatModel
from ehrbackdoor.attacks.triggers import TRIGGERS, Trigger, load_trigger, make_trigger

__all__ = [
    "TRIGGERS",
    "Poisoned",
    "ThreatModel",
    "Trigger",
    "attack_test",
    "choose_poisoned",
    "load_trigger",
    "make_trigger",
    "poison",
]
