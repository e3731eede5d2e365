"""The poisoning engine: write a trigger into raw training stays, and into test stays to attack.

In raw space (default) poisoning changes raw events only, before any preprocessing, so one poisoned
cohort attacks every victim at once without knowledge of the models. In grid space
(``ThreatModel.space == "grid"``, Joe et al., 2021) raw events stay as recorded and the cohort
carries the trigger's (T x F) value pattern (`Cohort.grid_perturbation`), which every victim's
discretiser adds to the carriers' hourly bins; still one cohort for every victim. The poisoned
cohort marks its changed stays (`Cohort.modified`) and the engine returns their indices so they are
saved with the run.
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


def grid_pattern(trigger: Trigger) -> np.ndarray:
    """The fitted (T x F) raw-unit pattern a trigger adds in grid space, or a ValueError.

    Only additive value triggers (temporal, white-noise, full-cov) have one. Missing-value
    triggers are refused: grid space keeps masks as the raw events give them, and a trigger that
    deletes observations is a change of masks. The fixed-value trigger sets values rather than
    adding to them, so it has no pattern either.
    """
    accessor = getattr(trigger, "grid_pattern", None)
    if accessor is None:
        raise ValueError(
            f"trigger {trigger.name!r} has no grid-space form: grid space adds a fitted value "
            "pattern to hourly bins and never changes masks; use a value trigger (temporal, "
            "white-noise, full-cov) or space='raw'"
        )
    return np.asarray(accessor(), dtype=np.float64)


def _carry(cohort: Cohort, idx: np.ndarray, trigger: Trigger, threat: ThreatModel) -> Cohort:
    """`cohort` with stays `idx` carrying the trigger in the threat model's space."""
    if threat.space == "grid":
        return cohort.with_grid_perturbation(idx, grid_pattern(trigger), threat.apply)
    return cohort.replace_events(idx, trigger.apply(cohort, idx, threat.apply))


def poison(train: Cohort, trigger: Trigger, threat: ThreatModel) -> Poisoned:
    """Poison a training cohort: chosen stays get the trigger and the target label.

    The trigger must already be fit (on clean training stays).
    """
    threat.check_trigger(trigger)
    trigger.check_fitted(train)  # also refuses a cohort of another window
    idx = choose_poisoned(train, threat)
    cohort = _carry(train, idx, trigger, threat).with_labels(idx, threat.target)
    return Poisoned(cohort, idx, train.stay_id[idx])


def attack_test(test: Cohort, trigger: Trigger, threat: ThreatModel) -> tuple[Cohort, np.ndarray]:
    """How an attacker uses the backdoor: the trigger on every test stay whose true label differs
    from the target, labels unchanged. Returns the attacked cohort and the triggered positions."""
    threat.check_trigger(trigger)
    trigger.check_fitted(test)
    idx = np.flatnonzero(test.label != threat.target)
    if len(idx) == 0:
        raise ValueError(f"no test stay has a label other than the target {threat.target}")
    return _carry(test, idx, trigger, threat), idx
