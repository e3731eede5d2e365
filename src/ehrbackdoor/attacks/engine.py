"""The poisoning engine: write a trigger into raw training stays, and into test stays to attack.

Poisoning changes raw events only, before any preprocessing, so one poisoned cohort attacks every
victim at once without knowledge of the models. The poisoned cohort marks its changed stays
(`Cohort.modified`) and the engine returns their indices so they are saved with the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ehrbackdoor.attacks.threat import ThreatModel
from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.data.cohort import Cohort


@dataclass(frozen=True)
class Poisoned:
    """A poisoned training cohort and the positions / stay ids of the poisoned stays."""

    cohort: Cohort
    indices: np.ndarray
    stay_ids: np.ndarray

    def to_dict(self) -> dict:
        return {"indices": self.indices.tolist(), "stay_ids": self.stay_ids.tolist()}


def choose_poisoned(train: Cohort, threat: ThreatModel) -> np.ndarray:
    """Sorted positions of the stays to poison: round(rate * n_train), seeded."""
    n = int(round(threat.rate * train.n_stays))
    if threat.selection == "non-target":
        candidates = np.flatnonzero(train.label != threat.target)
    elif threat.selection == "target":  # clean-label: the labels already are the target
        candidates = np.flatnonzero(train.label == threat.target)
    else:
        candidates = np.arange(train.n_stays)
    if n < 1:
        raise ValueError(
            f"rate {threat.rate} of {train.n_stays} training stays poisons no stay; raise the rate"
        )
    if n > len(candidates):
        raise ValueError(
            f"cannot poison {n} stays: only {len(candidates)} candidates ({threat.selection})"
        )
    rng = np.random.default_rng(threat.seed)
    return np.sort(rng.choice(candidates, size=n, replace=False))


def poison(train: Cohort, trigger: Trigger, threat: ThreatModel) -> Poisoned:
    """Poison a training cohort: chosen stays get the trigger and the target label (with
    ``selection="target"`` they already have it: a clean-label attack changes no label).

    The trigger must already be fit (on clean training stays).
    """
    threat.check_trigger(trigger)
    trigger.check_fitted()
    idx = choose_poisoned(train, threat)
    events = trigger.apply(train, idx, threat.apply)
    cohort = train.replace_events(idx, events).with_labels(idx, threat.target)
    return Poisoned(cohort, idx, train.stay_id[idx])


def attack_test(test: Cohort, trigger: Trigger, threat: ThreatModel) -> tuple[Cohort, np.ndarray]:
    """How an attacker uses the backdoor: the trigger on every test stay whose true label differs
    from the target, labels unchanged. Returns the attacked cohort and the triggered positions."""
    threat.check_trigger(trigger)
    trigger.check_fitted()
    idx = np.flatnonzero(test.label != threat.target)
    if len(idx) == 0:
        raise ValueError(f"no test stay has a label other than the target {threat.target}")
    return test.replace_events(idx, trigger.apply(test, idx, threat.apply)), idx
