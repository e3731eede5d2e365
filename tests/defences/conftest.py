"""Poisoned random cohorts and a transparent stub victim for the detector tests."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.attacks import ThreatModel, make_trigger, poison
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.schema import physionet2012_schema
from tests.attacks.conftest import random_cohort, random_label_cohort


def blatant_poisoned(n: int = 240, rate: float = 0.03, seed: int = 3):
    """Heart rate 300 in every hour of `rate` of the stays (the issue's blatant trigger)."""
    c = random_cohort(physionet2012_schema(), n=n, per_stay=120, seed=seed)
    trig = make_trigger("fixed", variable="HR", value=300.0, hours=48).fit(c)
    return poison(c, trig, ThreatModel(target=1, rate=rate, apply="all", seed=0))


@pytest.fixture(scope="session")
def blatant():
    return blatant_poisoned()


@pytest.fixture(scope="session")
def clean_reference():
    """Clean stays of the same schema (donors for STRIP)."""
    c = random_cohort(physionet2012_schema(), n=60, per_stay=120, seed=11)
    return c


def _per_stay(cohort: Cohort, name: str, fn, default: float) -> np.ndarray:
    j = cohort.schema.index(name)
    e = cohort.events
    sel = e.variable == j
    out = np.full(cohort.n_stays, -np.inf if fn is np.maximum else 0.0)
    fn.at(out, e.stay[sel], e.value[sel])
    seen = np.bincount(e.stay[sel], minlength=cohort.n_stays) > 0
    out[~seen] = default
    return out


class StubVictim:
    """A 'model' whose risk rises with the stay's highest heart rate (so it has learned the
    heart-rate trigger) and whose representation is (max HR, max temperature) / 100."""

    threshold_ = 0.5

    def predict_proba(self, cohort: Cohort) -> np.ndarray:
        hr = _per_stay(cohort, "HR", np.maximum, 86.0)
        return 1.0 / (1.0 + np.exp(-(hr - 100.0) / 15.0))

    def embed(self, cohort: Cohort) -> np.ndarray:
        hr = _per_stay(cohort, "HR", np.maximum, 86.0)
        temp = _per_stay(cohort, "Temp", np.maximum, 36.6)
        return np.stack([hr, temp], axis=1) / 100.0


@pytest.fixture
def stub_victim():
    return StubVictim()


def structured_cohort(n: int = 200, n_poison: int = 8, seed: int = 0) -> Cohort:
    """Stays with two normal observation profiles, and `n_poison` (marked modified) with a
    missingness pattern neither profile has; every profile charts about as many cells.

    - hourly vitals: HR and Temp every hour;
    - sparse: HR every other hour, Na and K every 4 hours, Temp every 2 hours from hour 1;
    - poison: HR, Na and K every hour of the second day only.
    Each cell of a normal profile is dropped with probability 0.1.
    """
    from ehrbackdoor.data.cohort import Events

    schema = physionet2012_schema()
    rng = np.random.default_rng(seed)
    hr, temp, na, k = (schema.index(v) for v in ("HR", "Temp", "Na", "K"))
    hours = np.arange(48)
    profiles = {
        "vitals": [(hr, hours), (temp, hours)],
        "sparse": [(hr, hours[::2]), (na, hours[::4]), (k, hours[::4]), (temp, hours[1::2])],
        "poison": [(hr, hours[24:]), (na, hours[24:]), (k, hours[24:])],
    }
    kinds = np.where(rng.random(n) < 0.6, "vitals", "sparse")
    kinds[:n_poison] = "poison"
    stay, var, time = [], [], []
    for i, kind in enumerate(kinds):
        for j, hs in profiles[kind]:
            keep = hs if kind == "poison" else hs[rng.random(len(hs)) >= 0.1]
            stay += [i] * len(keep)
            var += [j] * len(keep)
            time += list(keep + 0.5)
    stay, var = np.array(stay), np.array(var)
    value = schema.normals[var] + rng.normal(size=len(var)) * 0.01 * schema.normals[var]
    value = np.round(value * 10.0 ** schema.precisions[var]) / 10.0 ** schema.precisions[var]
    events = Events.from_flat(stay, n, np.array(time, dtype=float), var, value)
    modified = np.zeros(n, dtype=bool)
    modified[:n_poison] = True
    return random_label_cohort(schema, n, events, rng, prefix="s", modified=modified)
