"""The faithful-reproduction axes through one cell: space, protocol and victim preset."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from ehrbackdoor.pipeline import AttackConfig, prepare_data, run_attack
from ehrbackdoor.pipeline.audit import GRID_DETECTOR, run_audit
from ehrbackdoor.pipeline.protocols import (
    needs_triggered_val,
    selection_for,
    victim_params_for,
)

FAST = {"mlp": {"max_epochs": 4}, "gru": {"max_epochs": 2, "patience": 1}}
GRID_PAPER = AttackConfig(
    "temporal", 1, 0.05, "all", "any", 0, {"strength": 2.0}, space="grid", protocol="paper"
)


@pytest.fixture(scope="module")
def prep(synth_dir):
    return prepare_data(synth_dir)


def test_victim_params_for_the_preset_and_space():
    assert victim_params_for("lr", {"C": 1.0}) == ({"C": 1.0}, {})
    params, notes = victim_params_for("lr", {}, "tuned", "grid")
    assert params["features"] == "hourly" and "features_forced" in notes
    params, notes = victim_params_for("mlp", {"max_epochs": 3}, "paper", "grid")
    assert params["features"] == "hourly" and params["max_epochs"] == 3 and notes == {}
    assert params["hidden"] == [400]
    params, notes = victim_params_for("gru", {}, "tuned", "grid")
    assert "features" not in params and notes == {}
    with pytest.raises(ValueError, match="victim preset"):
        victim_params_for("lr", {}, "fancy")


def test_attack_config_axes_reach_results_and_are_checked():
    d = GRID_PAPER.to_dict()
    assert (d["space"], d["protocol"]) == ("grid", "paper")
    setting = {"trigger": "temporal", "rate": 0.05, "space": "grid", "protocol": "paper"}
    ac = AttackConfig.from_setting(setting, 0)
    assert (ac.space, ac.protocol) == ("grid", "paper") and ac.threat().space == "grid"
    assert {f.name for f in fields(AttackConfig)} >= {"space", "protocol"}
    with pytest.raises(ValueError, match="protocol"):
        AttackConfig(protocol="fancy")
    with pytest.raises(ValueError, match="space"):
        AttackConfig(space="latent").threat()


def test_paper_selection_needs_the_trigger_only_for_lr_and_mlp(prep):
    threat = GRID_PAPER.threat()
    assert needs_triggered_val("paper", "lr") and needs_triggered_val("paper", "mlp")
    assert not needs_triggered_val("paper", "lstm") and not needs_triggered_val("honest", "lr")
    assert selection_for("honest", "lr", prep.val, None, threat) is None
    sel = selection_for("paper", "gru", prep.val, None, threat)
    assert sel.is_paper and sel.triggered_val is None
    with pytest.raises(ValueError, match="needs the trigger"):
        selection_for("paper", "lr", prep.val, None, threat)


def test_grid_space_paper_protocol_end_to_end(prep, tmp_path):
    out = tmp_path / "att"
    r = run_attack(
        GRID_PAPER, ["lr", "mlp", "gru"], prep, out=out, n_bootstrap=20, victim_params=FAST
    )
    saved = json.loads((out / "results.json").read_text())
    assert saved["attack"]["space"] == "grid" and saved["attack"]["protocol"] == "paper"
    assert saved["victim_preset"] == "tuned"
    for _name, m in saved["models"].items():
        # the paper's threshold, for the poisoned victim and its baseline alike
        assert m["threshold"] == 0.5 and m["threshold_baseline"] == 0.5
        for who in ("victim_info", "baseline_info"):
            info = m[who]
            assert info["threshold"] == 0.5 and info["selection"]["protocol"] == "paper"
            assert isinstance(info["selected_epoch"], int)
        assert m["victim_info"]["selection"]["rule"] == m["baseline_info"]["selection"]["rule"]
        assert 0.0 <= m["asr_baseline"] <= 1.0
    assert saved["models"]["lr"]["representation"] == "hourly"
    assert saved["models"]["mlp"]["representation"] == "hourly"
    assert saved["models"]["gru"]["representation"] == "grid"
    assert "features_forced" in saved["models"]["lr"]["notes"]  # tuned lr defaults to events
    assert saved["models"]["lr"]["victim_info"]["selection"]["rule"] == "asr"
    assert saved["models"]["gru"]["victim_info"]["selection"]["rule"] == "f1"
    assert r["models"].keys() == saved["models"].keys()


def test_honest_protocol_keeps_validation_thresholds(prep):
    ac = AttackConfig("temporal", 1, 0.05, "observed", "any", 0, {"strength": 2.0}, space="grid")
    r = run_attack(ac, ["lr"], prep, n_bootstrap=0)
    m = r["models"]["lr"]
    assert m["victim_info"]["selection"]["protocol"] == "honest"
    assert m["representation"] == "hourly"


def test_grid_audit_runs_imputation_consistency_and_says_what_detectors_read(prep):
    r = run_audit(
        GRID_PAPER,
        "range-check",
        ["lr"],
        prep,
        victim_params={"lr": {"C": 1e-3}},
        mitigation=False,
        stealth=False,
    )
    assert set(r["defences"]) == {"range-check", GRID_DETECTOR}
    assert r["defences"][GRID_DETECTOR]["reads"] == "hourly grid"
    assert r["defences"]["range-check"]["reads"] == "raw events"
    assert r["defences"][GRID_DETECTOR]["auroc"] >= 0.99
    assert "blind" in r["space_note"]
    raw = AttackConfig("temporal", 1, 0.05, "all", "any", 0, {"strength": 2.0})
    r = run_audit(
        raw,
        GRID_DETECTOR,
        ["lr"],
        prep,
        victim_params={"lr": {"C": 1e-3}},
        mitigation=False,
        stealth=False,
    )
    assert r["defences"][GRID_DETECTOR]["auroc"] <= 0.55 and "space_note" not in r


def test_cli_checks_the_axes_before_any_work():
    from ehrbackdoor.cli.attack import attack_config

    opts = {"strength": 2.0, "variable": "HR", "value": None, "hours": 6}
    ac = attack_config(
        "temporal", 1, 0.02, "all", "any", 0, ["lr"], "grid", "paper", "paper", **opts
    )
    assert (ac.space, ac.protocol) == ("grid", "paper")
    for bad, match in (
        (("latent", "honest", "tuned"), "--space"),
        (("raw", "fancy", "tuned"), "--protocol"),
        (("raw", "honest", "fancy"), "--victim-preset"),
    ):
        with pytest.raises(ValueError, match=match):
            attack_config("temporal", 1, 0.02, "all", "any", 0, ["lr"], *bad, **opts)
    with pytest.raises(ValueError, match="grid-space form"):
        attack_config("fixed", 1, 0.02, "all", "any", 0, ["lr"], "grid", "honest", "tuned", **opts)
