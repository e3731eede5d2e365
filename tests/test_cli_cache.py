"""`ehrbackdoor cache info|clear` report and empty the cache directory they are given."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from ehrbackdoor.cli import app
from ehrbackdoor.data.schema import mimic3_schema
from ehrbackdoor.preprocess import grid_cached
from tests.preprocess.helpers import random_cohort


def test_cache_info_and_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("EHRBACKDOOR_NO_CACHE", raising=False)
    cohort = random_cohort(np.random.default_rng(0), mimic3_schema(), n_stays=20)
    grid_cached(cohort, cache_dir=tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["cache", "info", "--dir", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["directory"] == str(tmp_path) and info["bytes"] > 0 and info["files"] > 0
    r = runner.invoke(app, ["cache", "info", "--dir", str(tmp_path)])
    assert r.exit_code == 0 and "MB" in r.output
    r = runner.invoke(app, ["cache", "clear", "--dir", str(tmp_path)])
    assert r.exit_code == 0 and r.output.startswith("freed")
    after = json.loads(
        runner.invoke(app, ["cache", "info", "--dir", str(tmp_path), "--json"]).output
    )
    assert after["bytes"] == 0
