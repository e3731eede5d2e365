"""Fault-injection fixtures: small fitted victims to tamper with, a private preprocessing cache."""

from __future__ import annotations

import pytest

from tests.victims.conftest import (
    FAST,
    _private_cache,  # noqa: F401 (the same autouse fixture here)
    make_cohort,
)


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
