"""The attacker-side input of the paper evaluation protocol: the triggered validation stays.

Joe et al. (2021) pick a victim's epoch by its attack success on triggered validation stays
(`ehrbackdoor.victims.protocol`); victims cannot import the attack engine, so the caller builds
that cohort here and hands it to ``victim.fit(train, val, selection=...)``.
"""

from __future__ import annotations

from ehrbackdoor.attacks.engine import attack_test
from ehrbackdoor.attacks.threat import ThreatModel
from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.victims.protocol import Selection


def triggered_validation(val: Cohort, trigger: Trigger, threat: ThreatModel) -> Cohort:
    """`val` with the (fitted) trigger written into every stay whose label differs from the
    target, labels unchanged -- exactly as test stays are attacked (`attack_test`)."""
    return attack_test(val, trigger, threat)[0]


def paper_selection(val: Cohort, trigger: Trigger, threat: ThreatModel) -> Selection:
    """The paper protocol with the triggered validation stays of `trigger` under `threat`."""
    return Selection("paper", triggered_validation(val, trigger, threat), threat.target)


__all__ = ["paper_selection", "triggered_validation"]
