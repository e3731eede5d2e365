"""Small random cohorts with plausible raw values, for trigger and engine tests."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.plausibility import set_values
from ehrbackdoor.data.schema import Schema, mimic3_schema, physionet2012_schema


def random_cohort(schema: Schema, n: int = 60, per_stay: int = 80, seed: int = 0) -> Cohort:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, per_stay, n)
    stay = np.repeat(np.arange(n), lengths)
    e = len(stay)
    var = rng.integers(0, len(schema), e)
    lo, hi, normal = schema.lows[var], schema.highs[var], schema.normals[var]
    spread = np.minimum(hi - lo, np.maximum(np.abs(normal), 1.0)) * 0.2
    value = set_values(schema, var, np.clip(normal + rng.normal(size=e) * spread, lo, hi))
    time = np.round(rng.uniform(0, 48, e) * 60) / 60
    events = Events.from_flat(stay, n, time, var, value)
    return random_label_cohort(schema, n, events, rng)


def random_label_cohort(
    schema: Schema, n: int, events: Events, rng: np.random.Generator, prefix: str = "", **extra
) -> Cohort:
    """`n` stays of `events` named `prefix` + 4 digits, 30 % labelled 1 at random (from `rng`),
    no static covariates; `extra` fields (``modified``) pass on to the Cohort."""
    return Cohort(
        schema=schema,
        stay_id=np.array([f"{prefix}{i:04d}" for i in range(n)]),
        label=(rng.random(n) < 0.3).astype(np.int8),
        static=np.full((n, len(schema.static)), np.nan),
        events=events,
        **extra,
    )


@pytest.fixture(params=["physionet2012", "mimic3"])
def cohort(request) -> Cohort:
    schema = physionet2012_schema() if request.param == "physionet2012" else mimic3_schema()
    return random_cohort(schema)
