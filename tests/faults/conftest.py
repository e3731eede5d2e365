"""Fault-injection fixtures: small fitted victims to tamper with, a private preprocessing cache."""

from __future__ import annotations

import os

import pytest

from tests.victims.conftest import FAST, make_cohort


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    old = os.environ.get("EHRBACKDOOR_CACHE")
    os.environ["EHRBACKDOOR_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("EHRBACKDOOR_CACHE", None)
    else:
        os.environ["EHRBACKDOOR_CACHE"] = old


@pytest.fixture(scope="session")
def fitted_small():
    """One fitted victim per weights kind and architecture family (fast settings)."""
    from ehrbackdoor.victims import make_victim

    train, val = make_cohort(120, seed=1, prefix="tr"), make_cohort(60, seed=2, prefix="va")
    out = {}
    for name in ("lr", "mlp", "gru", "grud", "gbdt"):
        params = dict(FAST[name])
        if "max_epochs" in params:
            params["max_epochs"] = 2
        out[name] = make_victim(name, **params).fit(train, val)
    return out
