"""Tiny cohorts with a planted signal, so every victim can be trained in a second or two.

Stays that die (label 1) have a high heart rate in their last 12 hours; everything else (other
vitals, sparse labs, static covariates) is noise with realistic missingness.
"""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import physionet2012_schema


def make_cohort(n: int = 200, seed: int = 0, prefix: str = "s", pos_rate: float = 0.3) -> Cohort:
    """`n` PhysioNet-schema stays; label-1 stays have HR ~ 125 (else ~ 85) after hour 36."""
    schema = physionet2012_schema()
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < pos_rate).astype(np.int8)
    label[0], label[1] = 0, 1  # both classes, always
    hr, mapi, temp, gcs, lact = (schema.index(v) for v in ("HR", "MAP", "Temp", "GCS", "Lactate"))

    stays, times, variables, values = [], [], [], []

    def add(var: int, t: np.ndarray, v: np.ndarray, stay: np.ndarray) -> None:
        stays.append(stay)
        times.append(t)
        variables.append(np.full(len(t), var))
        values.append(v)

    # Heart rate every hour at h + 0.5 (a few hours missing at random).
    s = np.repeat(np.arange(n), 48)
    t = np.tile(np.arange(48) + 0.5, n)
    keep = rng.random(len(t)) > 0.1
    s, t = s[keep], t[keep]
    late = (t >= 36) & (label[s] == 1)
    add(hr, t, np.round(np.where(late, 125.0, 85.0) + rng.normal(0, 8, len(t))), s)
    # Mean arterial pressure every 2 h, temperature every 4 h: noise.
    s = np.repeat(np.arange(n), 24)
    t = np.tile(np.arange(0, 48, 2) + 1.0, n)
    add(mapi, t, np.round(rng.normal(80, 10, len(t))), s)
    s = np.repeat(np.arange(n), 12)
    t = np.tile(np.arange(0, 48, 4) + 2.0, n)
    add(temp, t, np.round(rng.normal(37.0, 0.5, len(t)), 1), s)
    # GCS three times, lactate in half of the stays: noise, plenty of missingness.
    s = np.repeat(np.arange(n), 3)
    t = np.tile([1.0, 20.0, 40.0], n)
    add(gcs, t, rng.integers(3, 16, len(t)).astype(float), s)
    s = np.flatnonzero(rng.random(n) < 0.5)
    add(lact, np.full(len(s), 10.0), np.round(rng.uniform(0.5, 4.0, len(s)), 1), s)

    events = Events.from_flat(
        np.concatenate(stays),
        n,
        np.concatenate(times),
        np.concatenate(variables),
        np.concatenate(values),
    )
    static = np.column_stack(
        [
            rng.uniform(20, 90, n),  # age
            rng.integers(0, 2, n).astype(float),  # gender
            np.where(rng.random(n) < 0.3, np.nan, rng.normal(170, 10, n)),  # height, often missing
            rng.integers(1, 5, n).astype(float),  # ICU type
            rng.normal(80, 15, n),  # weight
        ]
    )
    return Cohort(
        schema=schema,
        stay_id=np.array([f"{prefix}{i}" for i in range(n)]),
        label=label,
        static=static,
        events=events,
    )


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the preprocessing cache of these tests out of the user's home directory."""
    import os

    old = os.environ.get("EHRBACKDOOR_CACHE")
    os.environ["EHRBACKDOOR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("EHRBACKDOOR_CACHE", None)
    else:
        os.environ["EHRBACKDOOR_CACHE"] = old


@pytest.fixture(scope="session")
def tiny() -> dict[str, Cohort]:
    return {
        "train": make_cohort(200, seed=1, prefix="tr"),
        "val": make_cohort(100, seed=2, prefix="va"),
        "test": make_cohort(100, seed=3, prefix="te"),
    }


#: Small, fast settings per victim for the tiny cohorts (the defaults are tuned for PhysioNet).
FAST = {
    "lr": {"C": [0.01, 0.1]},
    "mlp": {"hidden": [32], "lr": 3e-3, "max_epochs": 12, "batch_size": 32, "dropout": 0.1},
    "lstm": {"hidden": 16, "lr": 1e-2, "max_epochs": 12, "batch_size": 32, "dropout": 0.1},
    "gru": {"hidden": 16, "lr": 1e-2, "max_epochs": 12, "batch_size": 32, "dropout": 0.1},
    "grud": {"hidden": 16, "lr": 1e-2, "max_epochs": 12, "batch_size": 32, "dropout": 0.1},
    "gbdt": {"max_iter": 60, "min_samples_leaf": 5, "patience": 10},
}
