"""`run --dry-run`: the plan and a cost estimate from the shipped per-step table; nothing written."""

from __future__ import annotations

from typer.testing import CliRunner

from ehrbackdoor.experiments.estimate import estimate, load_costs
from ehrbackdoor.experiments.presets import quickstart
from tests.experiments.conftest import tiny_doc, write_config


def test_estimate_scales_with_stays_and_epochs(tmp_path):
    cfg, _ = quickstart(tmp_path / "q")
    base = estimate(cfg)
    assert base.n_cells == 28 and base.steps["baseline"] == 4 and base.steps["trigger"] == 3
    assert base.total_seconds > 0 and base.disk_bytes > 0
    assert base.wall_seconds(2) < base.total_seconds
    doc = cfg.model_dump() if hasattr(cfg, "model_dump") else None
    assert doc is None or "victims" in doc
    costs = load_costs()
    doubled = {**costs, "victims": {k: dict(v) for k, v in costs["victims"].items()}}
    for v in doubled["victims"].values():
        v["train"] = {k: 2 * x for k, x in v["train"].items()}
    assert estimate(cfg, doubled).seconds["cell"] > base.seconds["cell"]


def test_dry_run_prints_plan_and_writes_nothing(tmp_path, monkeypatch):
    from ehrbackdoor.cli import app

    config = write_config(tmp_path / "cfg", tiny_doc(victims={"lr": {}}, seeds=[0]))
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    r = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--dry-run", "--jobs", "2"])
    assert r.exit_code == 0, r.output
    assert "cells; shared steps:" in r.output and "estimated time:" in r.output
    assert "nothing was run or written" in r.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
