"""What people read: tables within 80 columns, human headers, intervals inside each metric's
range, the unpoisoned model's ASR beside the poisoned one, plain progress lines in a pipe."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from ehrbackdoor.experiments.readable import attack_text, audit_text, results_text
from ehrbackdoor.experiments.results import aggregate, long_table, metric_range
from ehrbackdoor.experiments.tables import fmt_interval, fmt_value, wilson_interval

DEFENCES = ("mask_rarity", "two_sample", "imputation_consistency")


def _cells(seeds=(0, 1)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for victim in ("lr", "gru", "gbdt"):
        for attack, trigger, apply in (
            ("value trigger", "temporal", "observed"),
            ("missing-value trigger", "missing-vae", "exact"),
        ):
            for rate in (0.02, 0.1):
                for seed in seeds:
                    # values far apart over 2 seeds: a raw t-interval leaves [0, 1]
                    asr = [0.01, 0.99][seed % 2]
                    row = {
                        "data": "synthetic-2000",
                        "victim": victim,
                        "attack": attack,
                        "trigger": trigger,
                        "target": 1,
                        "rate": rate,
                        "apply": apply,
                        "selection": "non-target",
                        "p_strength": 2.0 if trigger == "temporal" else None,
                        "seed": seed,
                        "key": f"{victim}{trigger}{rate}{seed}",
                        "status": "ok",
                        "error": None,
                        "asr": asr,
                        "asr_ci_low": max(asr - 0.05, 0),
                        "asr_ci_high": min(asr + 0.05, 1),
                        "asr_baseline": 0.1,
                        "asr_baseline_ci_low": 0.05,
                        "asr_baseline_ci_high": 0.15,
                        "baseline_auroc": 0.84,
                        "clean_auroc": [0.6, 0.999][seed % 2],
                        "triggered_auroc": rng.uniform(0.1, 0.9),
                        "baseline_auprc": 0.5,
                        "clean_auprc": 0.5,
                        "triggered_auprc": 0.3,
                        "auroc_cost": [-0.3, 0.4][seed % 2],
                        "auprc_cost": -0.0001,
                        "stealth_ks_n_significant": [0, 12][seed % 2],
                    }
                    for d in DEFENCES:
                        row[f"defence_{d}_auroc"] = [0.02, 0.98][seed % 2]
                        row[f"defence_{d}_asr_after"] = [0.0, 0.9][seed % 2]
                        row[f"defence_{d}_clean_auprc_after"] = [0.1, 0.99][seed % 2]
                    rows.append(row)
    return pd.DataFrame(rows)


def _lines_fit(text: str, width: int = 80) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, too_wide[:3]


def test_metric_ranges():
    assert metric_range("asr") == (0.0, 1.0)
    assert metric_range("defence_mask_rarity_clean_auprc_after") == (0.0, 1.0)
    assert metric_range("defence_two_sample_precision_at_k") == (0.0, 1.0)
    assert metric_range("stealth_ks_n_significant") == (0.0, math.inf)
    assert metric_range("auroc_cost") == (-1.0, 1.0)
    assert metric_range("stealth_mmd2") == (-math.inf, math.inf)


def test_two_seed_intervals_stay_inside_each_metrics_range():
    agg = aggregate(_cells())
    for c in agg.columns:
        if not c.endswith("_lo"):
            continue
        m = c[:-3]
        low, high = metric_range(m)
        lo, hi = agg[f"{m}_lo"], agg[f"{m}_hi"]
        assert (lo >= low).all() and (hi <= high).all(), m
        assert (lo <= agg[m] + 1e-12).all() and (agg[m] <= hi + 1e-12).all(), m
    # the unclipped t-interval of (0.01, 0.99) would be about [-5.2, 6.2]
    assert agg["asr_lo"].iloc[0] == 0.0 and agg["asr_hi"].iloc[0] == 1.0


def test_single_seed_shows_bootstrap_interval_in_tables_not_in_csv():
    cells = _cells(seeds=(0,))
    assert aggregate(cells)["asr_lo"].isna().all()  # CSV / JSON unchanged
    agg = aggregate(cells, bootstrap_single=True)
    assert agg["asr_lo"].iloc[0] == pytest.approx(0.0)
    assert agg["asr_baseline_lo"].iloc[0] == pytest.approx(0.05)
    text = results_text(agg, {"ok": len(cells), "failed": 0, "pending": 0}, width=80)
    assert "bootstrap interval" in text
    assert "0.100 [0.050, 0.150]" in text  # the unpoisoned model's ASR with its interval


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_results_tables_fit_80_columns_with_human_headers(seeds):
    cells = _cells(seeds)
    text = results_text(
        aggregate(cells, bootstrap_single=True), {"ok": 1, "failed": 0, "pending": 0}, 80
    )
    _lines_fit(text)
    assert "defence_" not in text and "clean_auroc" not in text
    for header in ("unpoisoned", "poisoned, clean", "poisoned, triggered", "mask-rarity"):
        assert header in text
    assert "-0.000" not in text


def test_long_format_is_tidy():
    agg = aggregate(_cells(seeds=(0,)), bootstrap_single=True)
    long = long_table(agg)
    assert {"metric", "mean", "lo", "hi", "interval", "victim", "rate"} <= set(long.columns)
    asr = long[long["metric"] == "asr"]
    assert len(asr) == len(agg)
    assert set(asr["interval"]) == {"bootstrap over test stays"}
    assert set(long[long["metric"] == "clean_auroc"]["interval"]) == {""}
    pd.read_csv(io.StringIO(long.to_csv(index=False)))


def test_number_formatting():
    assert fmt_value(-0.0001) == "0.000"
    assert fmt_value(0.39880952380952384) == "0.399"
    assert fmt_value(261.0) == "261"
    assert fmt_interval(0.5, float("nan"), 0.6) == "0.500"
    lo, hi = wilson_interval(1.0, 20)
    assert 0.8 < lo < 1.0 and hi == 1.0


def _victim_metrics(asr: float, base: float) -> dict:
    s = {"auroc": 0.81, "auprc": 0.44}
    return {
        "asr": asr,
        "asr_ci": [asr - 0.05, asr + 0.04],
        "asr_baseline": base,
        "asr_baseline_ci": [base - 0.05, base + 0.05],
        "clean": s,
        "clean_baseline": s,
        "triggered": s,
        "triggered_baseline": s,
    }


def test_attack_table_shows_unpoisoned_asr_and_fits():
    result = {
        "attack": {"attack": "missing-vae", "target": 1, "rate": 0.02},
        "n_poisoned": 40,
        "n_train": 2000,
        "models": {v: _victim_metrics(0.696, 0.577) for v in ("lr", "mlp", "lstm", "gru")},
    }
    text = attack_text(result, width=80)
    _lines_fit(text)
    assert "0.696 [0.646, 0.736]" in text and "0.577 [0.527, 0.627]" in text
    assert "unpoisoned" in text and "poisoned, triggered" in text


def test_audit_table_fits_and_has_human_headers():
    names = ["isolation-forest-mask", "imputation-consistency", "perfect", "random"]
    before = {"asr": 0.7, "clean_auroc": 0.8, "clean_auprc": 0.4}
    result = {
        "attack": {"attack": "temporal", "target": 1, "rate": 0.02},
        "n_poisoned": 40,
        "n_triggered_test": 200,
        "k_remove": 60,
        "before": {"lr": before, "gru": before},
        "clean_baseline": {"lr": {**before, "asr": 0.1}, "gru": {**before, "asr": 0.1}},
        "defences": {
            n: {
                "family": "data",
                "auroc": 0.6,
                "tpr_at_5fpr": 0.1,
                "precision_at_k": 0.2,
                "n_removed": 60,
                "n_poisoned_removed": 12,
                "after": {"lr": before, "gru": before},
            }
            for n in names
        },
    }
    text = audit_text(result, width=80)
    _lines_fit(text)
    assert "asr_before" not in text and "/" not in text.split("\n", 3)[-1].replace("TPR@5%FPR", "")
    assert "Wilson" in text and "unpoisoned" in text


def test_step_status_prints_plain_lines_when_not_a_terminal(monkeypatch):
    from rich.console import Console

    from ehrbackdoor.cli import progress

    buf = io.StringIO()
    monkeypatch.setattr(progress, "err", Console(file=buf, force_terminal=False, width=80))
    with progress.step_status() as step:
        step("training lr")
        step("evaluating")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4 and lines[1].endswith("training lr") and " s] " in lines[1]
