"""The trigger's fidelity on the poisoned training stays travels with results.json / audit.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ehrbackdoor.attacks.masks import observation_masks
from ehrbackdoor.pipeline import AttackConfig, prepare_data, run_attack, trigger_fidelity
from ehrbackdoor.pipeline.cell import build_attack
from ehrbackdoor.pipeline.fidelity import FIDELITY_COLUMNS, GRID_REASON, fidelity_columns


@pytest.fixture(scope="module")
def prep(synth_dir):
    return prepare_data(synth_dir)


def temporal(**params) -> AttackConfig:
    return AttackConfig(attack="temporal", rate=0.05, seed=0, trigger_params=params)


@pytest.mark.parametrize(
    ("params", "hits"),
    [
        ({"strength": 2.0}, False),  # the default: bounds="keep", variance-stabilising space
        ({"strength": 6.0, "transform": "none", "bounds": "clip"}, True),  # raw units, clipped
    ],
)
def test_results_json_carries_the_per_variable_fidelity(prep, tmp_path, params, hits):
    config = temporal(**params)
    run_attack(config, ["lr"], prep, out=tmp_path, n_bootstrap=0)
    res = json.loads((tmp_path / "results.json").read_text())
    report, summary = res["trigger_fidelity"], res["trigger_fidelity_summary"]
    rows = report["variables"]
    assert rows and report["bounds"] == config.trigger_params.get("bounds", "keep")
    per_var_hits = [r["new_bound_hits"] for r in rows.values()]
    if hits:
        assert sum(per_var_hits) > 0
    else:
        assert all(h == 0 for h in per_var_hits)
    assert summary["new_bound_hits"] == sum(per_var_hits) == report["new_bound_hits"]
    assert summary["changed_values"] == sum(r["changed_values"] for r in rows.values()) > 0
    assert summary["realised_mahalanobis"] > 0
    assert summary["designed_mahalanobis"] == pytest.approx(params["strength"], rel=1e-6)
    assert summary["reason"] is None
    # measured on the poisoned training stays: what the victims see
    assert report["n_stays"] == res["n_poisoned"]
    # the same measure the trigger reports on the same stays
    att = build_attack(config, prep.train, prep.test)
    idx = att.poisoned.indices
    direct = att.trigger.fidelity_report(prep.train.subset(idx), att.poisoned.cohort.subset(idx))
    assert direct == report


def test_grid_space_records_null_with_the_reason(prep, tmp_path):
    config = AttackConfig(
        attack="temporal", rate=0.05, seed=0, space="grid", trigger_params={"strength": 2.0}
    )
    res = run_attack(config, ["lr"], prep, out=tmp_path, n_bootstrap=0)
    assert res["trigger_fidelity"] is None
    assert res["trigger_fidelity_summary"]["reason"] == GRID_REASON
    saved = json.loads((tmp_path / "results.json").read_text())
    assert (
        saved["trigger_fidelity"] is None and "grid" in saved["trigger_fidelity_summary"]["reason"]
    )
    cols = fidelity_columns(res["trigger_fidelity_summary"])
    assert set(cols) == set(FIDELITY_COLUMNS) and all(math.isnan(v) for v in cols.values())


@pytest.mark.parametrize("apply", ["delete", "exact"])
def test_missing_trigger_records_the_removed_and_added_share(prep, apply):
    config = AttackConfig(attack="missing-random", target=0, rate=0.05, apply=apply, seed=0)
    att = build_attack(config, prep.train, prep.test)
    report, summary = trigger_fidelity(
        att.trigger, prep.train, att.poisoned, config.space, config.apply
    )
    json.dumps(report)
    # the shares agree with the masks the poisoned stays really have
    idx = att.poisoned.indices
    before = observation_masks(prep.train.subset(idx)).reshape(len(idx), -1)
    after = observation_masks(att.poisoned.cohort.subset(idx)).reshape(len(idx), -1)
    n_obs = before.sum(axis=1)
    keep = n_obs > 0
    removed = ((before & ~after).sum(axis=1) / np.maximum(n_obs, 1))[keep].mean()
    added = ((after & ~before).sum(axis=1) / np.maximum(n_obs, 1))[keep].mean()
    assert summary["removed_share"] == pytest.approx(removed) and removed > 0
    assert summary["added_share"] == pytest.approx(added)
    assert (added > 0) == (apply == "exact")
    assert report["pattern_diagnostics"]["mean_deleted_fraction"] == summary["removed_share"]
    cols = fidelity_columns(summary)
    assert math.isnan(cols["fidelity_new_bound_hits"])
    assert cols["fidelity_removed_share"] == summary["removed_share"]


def test_fixed_trigger_has_no_report_and_says_why(prep):
    config = AttackConfig(attack="fixed", rate=0.05, trigger_params={"value": 200.0})
    att = build_attack(config, prep.train, prep.test)
    report, summary = trigger_fidelity(att.trigger, prep.train, att.poisoned)
    assert report is None and "fixed" in summary["reason"]


def test_audit_json_carries_the_fidelity(prep, tmp_path):
    from ehrbackdoor.pipeline import run_audit

    config = temporal(strength=2.0)
    res = run_audit(config, ["random"], ["lr"], prep, out=tmp_path, mitigation=False, stealth=False)
    saved = json.loads((tmp_path / "audit.json").read_text())
    assert saved["trigger_fidelity"] == res["trigger_fidelity"]
    assert saved["trigger_fidelity_summary"]["new_bound_hits"] == 0
    assert saved["trigger_fidelity"]["n_stays"] == saved["n_poisoned"]
