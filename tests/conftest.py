"""Shared fixtures: where the real data lives (../shared beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    env = os.environ.get("EHRBACKDOOR_SHARED")
    return Path(env) if env else REPO.parent / "shared"


PHYSIONET = shared_dir() / "data" / "physionet2012"
MIMIC_REF = shared_dir() / "reference" / "mimic3-benchmarks"


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Every cache the suite writes goes to a temporary directory, never the user's own."""
    if os.environ.get("EHRBACKDOOR_CACHE"):
        yield
        return
    os.environ["EHRBACKDOOR_CACHE"] = str(tmp_path_factory.mktemp("ehrbackdoor-cache"))
    yield
    os.environ.pop("EHRBACKDOOR_CACHE", None)


@pytest.fixture(scope="session")
def physionet_dir() -> Path:
    if not (PHYSIONET / "set-a").is_dir():
        pytest.skip(f"real PhysioNet 2012 copy not found at {PHYSIONET}")
    return PHYSIONET


@pytest.fixture(scope="session")
def physionet_cohort(physionet_dir):
    from ehrbackdoor.data.readers.physionet2012 import read_physionet2012

    return read_physionet2012(physionet_dir)
