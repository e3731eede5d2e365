"""The space / protocol / victim-preset axes through `ehrbackdoor run`: columns, keys, presets."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ehrbackdoor.cli.experiments import register
from ehrbackdoor.experiments.config import config_from_dict, load_config
from ehrbackdoor.experiments.plan import expand
from tests.experiments.conftest import tiny_doc, write_config

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _axes_doc(**over) -> dict:
    doc = tiny_doc(victims={"lr": {}, "gru": {"max_epochs": 2, "patience": 1}}, seeds=[0])
    doc["attacks"] = [
        {
            "name": "value",
            "trigger": "temporal",
            "rate": 0.1,
            "strength": 2.0,
            "apply": "all",
            "selection": "any",
            "space": ["raw", "grid"],
            "protocol": ["honest", "paper"],
        }
    ]
    doc.update(over)
    return doc


def test_defaults_leave_keys_digest_and_settings_alone():
    doc = tiny_doc()
    explicit = json.loads(json.dumps(doc))
    for a in explicit["attacks"]:
        a.update(space="raw", protocol="honest")
    explicit["victim_preset"] = "tuned"
    a, b = config_from_dict(doc, "/tmp"), config_from_dict(explicit, "/tmp")
    assert a.digest() == b.digest()
    assert expand(a).keys == expand(b).keys
    assert all("space" not in c.setting and "protocol" not in c.setting for c in expand(a).cells)


def test_axes_expand_and_share_what_they_can():
    plan = expand(config_from_dict(_axes_doc(), "/tmp"))
    assert len(plan.cells) == 8 and len(set(plan.keys)) == 8
    assert len(plan.poison) == 2  # one per space: the protocol does not change the poison
    # lr: events (raw) / hourly (grid) honest + paper per space (triggered val); gru: per protocol
    assert len(plan.baselines) == 6
    lr_paper = [b for b in plan.baselines.values() if b.victim == "lr" and b.protocol == "paper"]
    assert all(b.trigger_key for b in lr_paper)
    grid_lr = [c for c in plan.cells if c.victim == "lr" and c.setting.get("space") == "grid"]
    assert all(plan.baselines[c.baseline_key].params["features"] == "hourly" for c in grid_lr)


def test_config_checks_the_axes():
    bad = _axes_doc()
    bad["attacks"][0]["protocol"] = "fancy"
    with pytest.raises(Exception, match="fancy"):
        config_from_dict(bad, "/tmp")
    bad = _axes_doc()
    bad["attacks"][0].update(trigger="missing-random", apply="exact")
    bad["attacks"][0].pop("strength")
    with pytest.raises(Exception, match="grid-space form"):
        config_from_dict(bad, "/tmp")
    with pytest.raises(Exception, match="victim_preset"):
        config_from_dict(_axes_doc(victim_preset="fancy"), "/tmp")
    bad = _axes_doc()
    bad["attacks"][0]["victims"] = ["lstm"]
    with pytest.raises(Exception, match="victims"):
        config_from_dict(bad, "/tmp")


def test_faithful_presets_parse_and_expand(monkeypatch):
    monkeypatch.setenv("EHRBACKDOOR_DATA", "/data/somewhere")
    full = load_config(REPO / "configs" / "paper1_faithful.yaml")
    plan = expand(full)
    assert len(plan.cells) == full.n_cells() == 432
    assert full.victim_preset == "paper"
    assert {c.setting["space"] for c in plan.cells} == {"grid"}
    assert {c.setting.get("protocol", "honest") for c in plan.cells} == {"paper", "honest"}
    assert {c.setting["selection"] for c in plan.cells} == {"any"}
    quick = load_config(REPO / "configs" / "paper1_faithful_quick.yaml")
    qplan = expand(quick)
    assert len(qplan.cells) == quick.n_cells() == 48
    rates = {(c.victim, c.setting["rate"]) for c in qplan.cells}
    assert rates == {("lr", 0.02), ("mlp", 0.02), ("lstm", 0.05), ("gru", 0.05)}
    assert {c.seed for c in qplan.cells} == {0, 1, 2}


def test_run_both_spaces_and_protocols_through_the_cli(tmp_path):
    app = typer.Typer()
    register(app)
    doc = _axes_doc(defences=["imputation-consistency"])
    config = write_config(tmp_path / "cfg", doc)
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "8 ran, 0 failed" in r.output
    r = runner.invoke(app, ["results", str(out), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert len(rows) == 8
    assert {(row["space"], row["protocol"]) for row in rows} == {
        ("raw", "honest"),
        ("raw", "paper"),
        ("grid", "honest"),
        ("grid", "paper"),
    }
    for row in rows:
        auroc = float(row["defence_imputation_consistency_auroc"])
        assert auroc >= 0.99 if row["space"] == "grid" else auroc <= 0.55
    from ehrbackdoor.experiments.results import load_aggregate

    cells, _ = load_aggregate(out)
    paper = cells[cells["protocol"] == "paper"]
    assert (paper["threshold"] == 0.5).all() and (paper["threshold_baseline"] == 0.5).all()
    assert paper["selected_epoch"].notna().all()
    honest = cells[cells["protocol"] == "honest"]
    assert (honest["threshold"] != 0.5).any()
    r = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert "Reproduction of Joe et al. (2021)" in (tmp_path / "r.html").read_text()


def test_runs_without_the_axes_get_no_new_columns(tmp_path):
    from ehrbackdoor.experiments.results import load_aggregate
    from ehrbackdoor.experiments.runner import run_experiment

    cfg = config_from_dict(tiny_doc(victims={"lr": {}}, seeds=[0]), tmp_path)
    run_experiment(cfg, tmp_path / "run", jobs=1)
    cells, agg = load_aggregate(tmp_path / "run")
    for col in ("space", "protocol", "victim_preset", "selected_epoch"):
        assert col not in cells.columns and col not in agg.columns


def test_every_repository_config_is_listed_and_parses(monkeypatch):
    from ehrbackdoor.experiments.presets import REPOSITORY_CONFIGS

    monkeypatch.setenv("EHRBACKDOOR_DATA", "/data/somewhere")
    shipped = {p.stem for p in (REPO / "configs").glob("*.yaml")}
    assert set(REPOSITORY_CONFIGS) <= shipped
    for name in ("paper1_faithful", "paper1_faithful_quick"):
        assert expand(load_config(REPO / "configs" / f"{name}.yaml")).cells
