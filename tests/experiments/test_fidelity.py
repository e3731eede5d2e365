"""The poison step measures the trigger's fidelity once per setting; every cell carries it."""

from __future__ import annotations

import math

import numpy as np

from ehrbackdoor.experiments.artifacts import load_fidelity
from ehrbackdoor.experiments.config import config_from_dict
from ehrbackdoor.experiments.plan import expand
from ehrbackdoor.experiments.results import aggregate, cells_frame
from ehrbackdoor.experiments.runner import run_experiment
from ehrbackdoor.experiments.store import Store
from ehrbackdoor.pipeline.fidelity import FIDELITY_COLUMNS
from tests.experiments.conftest import tiny_doc


def test_cells_carry_the_fidelity_of_their_setting(tmp_path):
    doc = tiny_doc(victims={"lr": {}}, seeds=[0, 1])
    doc["attacks"] = [
        {
            "name": "value",
            "trigger": "temporal",
            "rate": 0.05,
            "strength": 2.0,
            "space": ["raw", "grid"],
        },
        {"name": "fixed", "trigger": "fixed", "rate": 0.05, "value": 200.0, "hours": 12},
    ]
    cfg = config_from_dict(doc, tmp_path)
    run = tmp_path / "run"
    s = run_experiment(cfg, run, jobs=1)
    assert s.failed == 0
    plan = expand(cfg)
    with Store.open_run(run, readonly=True) as store:
        rows = store.cells()
        df = cells_frame(store)
    assert rows
    for r in rows:
        m = r["metrics"]
        assert set(FIDELITY_COLUMNS) <= set(m)
        p = r["params"]
        cell = next(c for c in plan.cells if c.key == r["key"])
        saved = load_fidelity(run, cell.poison_key)
        raw_temporal = p["trigger"] == "temporal" and p.get("space", "raw") == "raw"
        if raw_temporal:
            # the per-variable report lives with the poison artifact; the cell has its summary
            summary = saved["trigger_fidelity_summary"]
            assert saved["trigger_fidelity"]["variables"]
            assert m["fidelity_new_bound_hits"] == summary["new_bound_hits"] == 0
            assert m["fidelity_changed_values"] == summary["changed_values"] > 0
            assert m["fidelity_realised_mahalanobis"] > 0
            assert m["fidelity_new_within_stay_variance"] == summary["new_within_stay_variance"]
        else:  # grid space or the fixed trigger: nothing to measure, and the reason is kept
            assert saved["trigger_fidelity"] is None and saved["trigger_fidelity_summary"]["reason"]
            assert all(m[c] is None or math.isnan(m[c]) for c in FIDELITY_COLUMNS)
    # aggregate: the mean over seeds, NaN where not applicable
    agg = aggregate(df)
    assert "fidelity_changed_values" in agg.columns
    raw = df[(df["trigger"] == "temporal") & (df["space"] == "raw")]
    row = agg[(agg["trigger"] == "temporal") & (agg["space"] == "raw")].iloc[0]
    assert row["fidelity_changed_values"] == raw["fidelity_changed_values"].mean()
    assert row["fidelity_new_bound_hits"] == 0
    other = agg[~((agg["trigger"] == "temporal") & (agg["space"] == "raw"))]
    assert np.isnan(other["fidelity_changed_values"].to_numpy(dtype=float)).all()
    from ehrbackdoor.report.html import build_report

    page = build_report(run)
    assert "<h2>Trigger fidelity</h2>" in page and "fidelity_changed_values" in page
