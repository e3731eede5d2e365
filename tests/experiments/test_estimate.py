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


def _priced(tmp_path, costs=None, **over):
    from ehrbackdoor.experiments.config import load_config

    doc = tiny_doc(victims={"gru": {"max_epochs": 20}}, seeds=[0], **over)
    return estimate(load_config(write_config(tmp_path / "c", doc)), costs)


def test_epochs_priced_by_measured_share_not_max_epochs(tmp_path):
    from ehrbackdoor.experiments.estimate import expected_epochs

    entry = {"default_epochs": 30, "epoch_share": {"honest": 0.25}}
    assert expected_epochs(entry, {"max_epochs": 40}, "honest") == 10.0
    assert expected_epochs(entry, {}, "paper") == 30.0  # unmeasured protocol: every epoch
    assert expected_epochs({"train": {}}, {"max_epochs": 40}, "honest") == 1.0  # not in epochs
    costs = load_costs()
    full = {**costs, "victims": {k: dict(v) for k, v in costs["victims"].items()}}
    full["victims"]["gru"]["epoch_share"] = {"honest": 1.0, "paper": 1.0}
    early = {**full, "victims": {**full["victims"], "gru": dict(full["victims"]["gru"])}}
    early["victims"]["gru"]["epoch_share"] = {"honest": 0.2, "paper": 1.0}
    a, b = _priced(tmp_path, full), _priced(tmp_path, early)
    gru = early["victims"]["gru"]["train"]
    n_train = 400 * 0.7 / 1000
    expect = gru["per_1000"] * n_train * 20 * 0.8 * a.n_cells  # 16 fewer epochs per cell
    assert abs((a.seconds["cell"] - b.seconds["cell"]) - expect) < 1e-6 * max(1.0, expect)


def test_retrain_priced_only_with_mitigation(tmp_path):
    on = _priced(tmp_path, defences=["imputation-consistency"])
    off = _priced(tmp_path, defences=["imputation-consistency"], mitigation=False)
    assert on.n_cells == off.n_cells > 0
    assert on.seconds["cell"] > off.seconds["cell"]
    assert abs(sum(on.by_key.values()) - on.total_seconds) < 1e-6  # every step priced by key
