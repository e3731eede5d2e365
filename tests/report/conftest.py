"""A results store with made-up but well-formed rows, so report tests need no training."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.experiments.plan import Cell
from ehrbackdoor.experiments.store import Store

VARIABLES = ["Heart Rate", "Glucose", "pH", "Temperature", "Weight"]


def _setting(trigger, rate, params, apply="observed", attack=None):
    return {
        "attack": attack or trigger,
        "trigger": trigger,
        "target": 1,
        "rate": rate,
        "apply": apply,
        "selection": "non-target",
        "trigger_params": params,
    }


def make_store(run_dir, *, stealth: bool = False, failed: bool = True) -> None:
    rng = np.random.default_rng(0)
    settings = [
        _setting("temporal", r, {"strength": s}, attack="value")
        for r in (0.01, 0.02, 0.05)
        for s in (0.5, 2.0)
    ] + [_setting("missing-random", r, {}, apply="exact", attack="missing") for r in (0.02, 0.05)]
    cells = []
    for i, setting in enumerate(settings):
        for victim in ("lr", "gru"):
            for seed in (0, 1, 2):
                cells.append(
                    Cell(
                        f"c{len(cells)}",
                        "synth",
                        "d0",
                        f"p{i}-{seed}",
                        f"b-{victim}-{seed}",
                        victim,
                        {},
                        setting,
                        seed,
                        100,
                    )
                )
    with Store.open_run(run_dir) as s:
        s.set_meta(
            {
                "name": "report-fixture",
                "config_yaml": "name: report-fixture\nseeds: 3\n",
                "created": "2026-01-01 00:00:00",
                "config_digest": "x",
            }
        )
        s.sync_plan(cells)
        for c in cells:
            if failed and c.key == "c5":
                s.finish_cell(c.key, "failed", error="ValueError: something broke <b>here</b>")
                continue
            strength = c.setting["trigger_params"].get("strength", 1.0)
            asr = float(np.clip(c.setting["rate"] * 15 * strength + rng.normal(0, 0.05), 0, 1))
            m = {
                "asr": asr,
                "asr_baseline": 0.05,
                "clean_auroc": 0.8 + rng.normal(0, 0.01),
                "clean_auprc": 0.45 + rng.normal(0, 0.01),
                "triggered_auroc": 0.6,
                "triggered_auprc": 0.3,
                "baseline_auroc": 0.81,
                "baseline_auprc": 0.46,
                "baseline_triggered_auroc": 0.8,
                "baseline_triggered_auprc": 0.44,
                "auroc_cost": 0.01,
                "auprc_cost": 0.01,
            }
            if stealth:
                m["stealth_detection_auroc"] = 0.55 + rng.normal(0, 0.02)
            s.finish_cell(c.key, "ok", m, {"train_seconds": 1.0, "cell_seconds": 1.5})
            s.record_step("cell", c.key, 1.0)
        s.record_step("data", "d0", 2.0)
        obs = rng.random((3, 48, len(VARIABLES))) < 0.3
        s.put_blob(
            "d0",
            "data",
            {
                "observed_rate": obs.mean(0).astype(np.float32),
                "example_masks": obs.astype(np.uint8),
                "sd": np.ones(len(VARIABLES)),
            },
            {"variables": VARIABLES, "label": "synth"},
        )
        for i, setting in enumerate(settings):
            for seed in (0, 1, 2):
                missing = setting["trigger"].startswith("missing")
                after = obs & (rng.random(obs.shape) < 0.5) if missing else obs
                arrays = {
                    "mask_before": obs.astype(np.uint8),
                    "mask_after": after.astype(np.uint8),
                    "value_change": np.zeros(obs.shape),
                }
                if setting["trigger"] == "temporal":
                    arrays["state_pattern"] = rng.normal(0, 1, (48, len(VARIABLES)))
                s.put_blob(
                    f"p{i}-{seed}",
                    "poison",
                    arrays,
                    {"setting": setting, "seed": seed, "data_key": "d0"},
                )
                s.record_step("poison", f"p{i}-{seed}", 0.3)


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    make_store(run)
    return run


@pytest.fixture(scope="module")
def fake_report(fake_run):
    """The fixture run's report, written once to DIR/report.html."""
    from ehrbackdoor.report import write_report

    return write_report(fake_run)
