"""The one cell evaluation behind `attack`, `audit` and the experiment runner."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from ehrbackdoor.pipeline import AttackConfig, prepare_data
from ehrbackdoor.pipeline.cell import DefenceSpec, backdoor_summary, run_cell


def test_every_attack_field_reaches_results_and_comes_from_settings():
    ac = AttackConfig("fixed", 0, 0.1, "exact", "all", 3, {"value": 200.0, "hours": 12})
    d = ac.to_dict()
    for f in fields(AttackConfig):
        if f.name != "trigger_params":
            assert d[f.name] == getattr(ac, f.name)
    assert (d["value"], d["hours"]) == (200.0, 12)
    setting = {
        "attack": "label of the attack entry",
        "trigger": "fixed",
        "target": 0,
        "rate": 0.1,
        "apply": "exact",
        "selection": "all",
        "trigger_params": {"value": 200.0, "hours": 12},
    }
    assert AttackConfig.from_setting(setting, 3) == ac


def test_cell_with_defence_matches_its_parts(synth_dir):
    prep = prepare_data(synth_dir)
    ac = AttackConfig("fixed", 1, 0.05, "observed", "non-target", 0, {"value": 200.0, "hours": 12})
    spec = DefenceSpec(("range-check",), {}, 1.5)
    att, cell = run_cell(ac, prep.train, prep.val, prep.test, None, ["lr"], defence=spec)
    v = cell.victims["lr"]
    assert v.baseline_seconds is not None and v.metrics["asr"] > 0.5
    entry = cell.defences["range-check"]
    assert set(entry) >= {"auroc", "n_removed", "n_poisoned_removed", "after", "family"}
    assert entry["n_removed"] == int(np.ceil(1.5 * 0.05 * prep.train.n_stays - 1e-9))
    # a fitted baseline and the shared attack data give the same numbers without retraining it
    _, again = run_cell(
        ac,
        prep.train,
        prep.val,
        prep.test,
        att,
        ["lr"],
        baselines={"lr": v.baseline},
        defence=spec,
        shared_scores=cell.scores,
    )
    w = again.victims["lr"]
    assert w.baseline_seconds is None
    assert w.metrics == v.metrics
    assert again.defences["range-check"]["after"] == entry["after"]
    assert backdoor_summary(v.metrics)["asr"] == v.metrics["asr"]


def test_cell_needs_a_victim(synth_dir):
    prep = prepare_data(synth_dir)
    with pytest.raises(ValueError, match="at least one victim"):
        run_cell(AttackConfig(), prep.train, prep.val, prep.test, None, [])
