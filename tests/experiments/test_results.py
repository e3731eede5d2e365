"""Aggregation over seeds: mean and Student-t 95% CI per victim and attack setting."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ehrbackdoor.experiments.results import aggregate, display_table, t_interval, to_markdown


def _cells() -> pd.DataFrame:
    rows = []
    for victim in ("lr", "gru"):
        for strength in (1.0, 2.0):
            for seed, asr in enumerate((0.2, 0.4, 0.6)):
                rows.append(
                    {
                        "data": "d",
                        "victim": victim,
                        "attack": "value",
                        "trigger": "temporal",
                        "target": 1,
                        "rate": 0.05,
                        "apply": "observed",
                        "selection": "non-target",
                        "p_strength": strength,
                        "seed": seed,
                        "key": f"{victim}{strength}{seed}",
                        "status": "ok",
                        "error": None,
                        "asr": asr * strength / 2,
                        "clean_auroc": 0.99 if seed < 2 else 0.5,
                        "auroc_cost": [-0.1, 0.0, 0.4][seed],
                        "threshold": 0.3,
                        "t_train_seconds": 1.0,
                    }
                )
    return pd.DataFrame(rows)


def test_t_interval_matches_scipy():
    v = np.array([0.2, 0.4, 0.6, 0.3])
    m, lo, hi = t_interval(v)
    ref = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert m == pytest.approx(v.mean())
    assert (lo, hi) == pytest.approx(ref)
    m1, lo1, hi1 = t_interval(np.array([0.7]))
    assert m1 == 0.7 and math.isnan(lo1) and math.isnan(hi1)
    assert all(math.isnan(x) for x in t_interval(np.array([np.nan])))


def test_aggregate_groups_settings_and_clips_bounded_metrics():
    agg = aggregate(_cells())
    assert len(agg) == 4  # 2 victims x 2 strengths; seeds aggregated
    assert list(agg["victim"]) == ["lr", "lr", "gru", "gru"]
    assert set(agg["n_seeds"]) == {3}
    row = agg[(agg["victim"] == "lr") & (agg["p_strength"] == 2.0)].iloc[0]
    assert row["asr"] == pytest.approx(0.4)
    _, lo, hi = t_interval(np.array([0.2, 0.4, 0.6]))
    assert (row["asr_lo"], row["asr_hi"]) == pytest.approx((max(lo, 0), min(hi, 1)))
    # AUROC lives in [0, 1]: its interval is clipped; a cost may be negative: not clipped
    assert row["clean_auroc_hi"] == 1.0
    assert row["auroc_cost_lo"] < -0.1
    assert "threshold" not in agg.columns and "t_train_seconds" not in agg.columns


def test_display_table_shows_only_varying_settings():
    table = display_table(aggregate(_cells()))
    assert list(table.columns[:3]) == ["victim", "strength", "seeds"]
    assert table["ASR poisoned"].iloc[0].startswith("0.200 [")
    md = to_markdown(table)
    assert md.splitlines()[0].startswith("| victim | strength | seeds | ASR poisoned |")
    assert len(md.splitlines()) == 2 + 4
