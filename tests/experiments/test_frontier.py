"""The efficacy-stealth frontier and the poisoning rate for an ASR level: which detector counts,
interpolation between the rates tried, and the CLI on a real run."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ehrbackdoor.experiments.frontier import (
    FRONTIER_COLUMNS,
    format_frontier,
    frontier_table,
    rate_for_asr,
)

SETTING = {
    "data": "synth",
    "attack": "a",
    "target": 1,
    "apply": "observed",
    "selection": "non-target",
}


def _row(victim: str, trigger: str, rate: float, asr: float, **metrics) -> dict:
    return {**SETTING, "victim": victim, "trigger": trigger, "rate": rate, "asr": asr, **metrics}


def test_strongest_data_level_detector_beats_higher_model_and_reference_ones():
    agg = pd.DataFrame(
        [
            _row(
                "lr",
                "temporal",
                0.05,
                0.99,
                asr_lo=0.95,
                asr_hi=1.0,
                asr_baseline=0.1,
                defence_isolation_forest_auroc=0.61,
                defence_range_check_auroc=0.70,
                defence_range_check_auroc_lo=0.66,
                defence_range_check_auroc_hi=0.74,
                defence_spectral_auroc=0.90,  # model-level: higher, but not deployable
                defence_perfect_auroc=1.0,  # reference bound
                defence_madeup_auroc=0.99,  # not a registered detector: family unknown
            ),
            _row(
                "gru",
                "missing-random",
                0.05,
                0.5,
                asr_baseline=0.2,
                defence_isolation_forest_auroc=0.8,
                defence_range_check_auroc=0.55,
                defence_spectral_auroc=0.6,
                defence_perfect_auroc=1.0,
            ),
            _row(  # no data-level value (a setting the detectors did not run on): dropped
                "mlp",
                "temporal",
                0.05,
                0.9,
                defence_isolation_forest_auroc=np.nan,
                defence_range_check_auroc=np.nan,
                defence_spectral_auroc=0.7,
                defence_perfect_auroc=1.0,
            ),
        ]
    )
    f = frontier_table(agg)
    assert list(f["victim"]) == ["lr", "gru"]
    lr, gru = f.iloc[0], f.iloc[1]
    assert (lr["detector"], lr["detection_auroc"]) == ("range-check", 0.70)
    assert (lr["detection_auroc_lo"], lr["detection_auroc_hi"]) == (0.66, 0.74)
    assert (lr["strongest_any"], lr["strongest_any_auroc"]) == ("spectral", 0.90)
    assert (gru["detector"], gru["detection_auroc"]) == ("isolation-forest", 0.8)
    assert gru["strongest_any"] == "isolation-forest"  # data-level wins the "any" race here
    assert math.isnan(gru["detection_auroc_lo"])  # isolation-forest has no interval column
    assert list(f["family"]) == ["value", "missing"]
    assert list(f["asr_baseline"]) == [0.1, 0.2]
    assert (lr["asr_lo"], lr["asr_hi"]) == (0.95, 1.0)
    assert "madeup" not in set(f["detector"]) | set(f["strongest_any"])


def test_no_data_level_detector_gives_an_empty_frame_with_the_columns():
    agg = pd.DataFrame(
        [_row("lr", "temporal", 0.05, 0.9, defence_spectral_auroc=0.7, defence_perfect_auroc=1.0)]
    )
    f = frontier_table(agg)
    assert f.empty
    for c in ("victim", "rate", "family", "asr", "detector", "detection_auroc", "strongest_any"):
        assert c in f.columns
    assert frontier_table(pd.DataFrame()).empty
    assert set(FRONTIER_COLUMNS) >= {"asr_baseline", "strongest_any_auroc"}


def _rates_frame() -> pd.DataFrame:
    rows = []
    # lr/temporal: crosses 0.9 between 0.02 (0.8) and 0.05 (0.95), then dips again at 0.1
    for rate, asr, lo in (
        (0.1, 0.85, 0.92),
        (0.01, 0.5, 0.3),
        (0.05, 0.95, 0.85),
        (0.02, 0.8, 0.6),
    ):
        rows.append(_row("lr", "temporal", rate, asr, asr_lo=lo))
    # gru/temporal: never reaches 0.9
    for rate, asr in ((0.01, 0.2), (0.05, 0.5)):
        rows.append(_row("gru", "temporal", rate, asr, asr_lo=asr - 0.1))
    # lr/missing-random: the smallest rate tried already reaches it
    for rate, asr in ((0.02, 0.95), (0.05, 0.99)):
        rows.append(_row("lr", "missing-random", rate, asr, asr_lo=np.nan))
    return pd.DataFrame(rows)


def test_rate_for_asr_interpolates_between_the_bracketing_rates():
    r = rate_for_asr(_rates_frame(), level=0.9)
    assert "rate" not in r.columns[: r.columns.get_loc("level")]  # grouped without the rate
    assert len(r) == 3
    lr = r[(r["victim"] == "lr") & (r["trigger"] == "temporal")].iloc[0]
    assert lr["rate"] == pytest.approx(0.02 + (0.9 - 0.8) / (0.95 - 0.8) * (0.05 - 0.02))
    assert lr["reached"] and not lr["lowest_tried"]
    assert (lr["max_asr"], lr["at_rate"], lr["n_rates"]) == (0.95, 0.05, 4)
    # the lower bound first reaches 0.9 between 0.05 (0.85) and 0.1 (0.92)
    assert lr["rate_lo_bound"] == pytest.approx(0.05 + (0.9 - 0.85) / (0.92 - 0.85) * 0.05)
    assert lr["max_asr_lo"] == 0.92

    gru = r[r["victim"] == "gru"].iloc[0]
    assert math.isnan(gru["rate"]) and not gru["reached"]  # never reached: NaN, no extrapolation
    assert (gru["max_asr"], gru["at_rate"]) == (0.5, 0.05)
    assert math.isnan(gru["rate_lo_bound"])

    miss = r[r["trigger"] == "missing-random"].iloc[0]
    assert miss["rate"] == 0.02 and miss["lowest_tried"] and miss["reached"]
    assert math.isnan(miss["rate_lo_bound"]) and math.isnan(miss["max_asr_lo"])

    lower = rate_for_asr(_rates_frame(), level=0.5)
    lr5 = lower[(lower["victim"] == "lr") & (lower["trigger"] == "temporal")].iloc[0]
    assert lr5["rate"] == 0.01 and lr5["lowest_tried"]  # exactly at the smallest rate
    with pytest.raises(ValueError, match="level"):
        rate_for_asr(_rates_frame(), level=1.5)


def test_rate_for_asr_without_an_interval_column():
    df = _rates_frame().drop(columns="asr_lo")
    r = rate_for_asr(df, 0.9)
    assert r["rate_lo_bound"].isna().all() and r["reached"].sum() == 2


@pytest.fixture(scope="module")
def defended_run(tmp_path_factory):
    """A real run: lr on a synthetic cohort, two rates, one data-, one model-level detector and
    the perfect reference, no mitigation (quick)."""
    from ehrbackdoor.experiments.config import config_from_dict
    from ehrbackdoor.experiments.runner import run_experiment
    from tests.experiments.conftest import tiny_doc

    tmp = tmp_path_factory.mktemp("frontier")
    doc = tiny_doc(
        victims={"lr": {}},
        seeds=(0,),
        attacks=[{"name": "value", "trigger": "temporal", "rate": [0.02, 0.1], "strength": 2.0}],
        defences=["isolation-forest", "spectral", "perfect"],
        mitigation=False,
    )
    s = run_experiment(config_from_dict(doc, tmp), tmp / "run", jobs=1)
    assert (s.ok, s.failed) == (2, 0)
    return tmp / "run"


def test_frontier_of_a_real_run(defended_run):
    from ehrbackdoor.experiments.results import load_aggregate

    _, agg = load_aggregate(defended_run)
    f = frontier_table(agg)
    assert len(f) == 2 and set(f["rate"]) == {0.02, 0.1}
    assert (f["detector"] == "isolation-forest").all()  # the only data-level one
    assert f["detection_auroc"].tolist() == agg["defence_isolation_forest_auroc"].tolist()
    assert set(f["strongest_any"]) <= {"isolation-forest", "spectral"}
    best_any = np.maximum(agg["defence_isolation_forest_auroc"], agg["defence_spectral_auroc"])
    assert f["strongest_any_auroc"].tolist() == best_any.tolist()
    assert (f["family"] == "value").all()
    assert f["asr_baseline"].tolist() == agg["asr_baseline"].tolist()


def test_cli_prints_the_frontier_and_the_rate_table(defended_run):
    from ehrbackdoor.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["results", str(defended_run), "--frontier", "--width", "200"])
    assert r.exit_code == 0, r.output
    assert "Efficacy-stealth frontier" in r.output
    assert "isolation-forest" in r.output and "detection AUROC" in r.output
    assert r.output == format_frontier(defended_run, width=200)

    r = runner.invoke(app, ["results", str(defended_run), "--frontier", "--format", "csv"])
    assert r.exit_code == 0, r.output
    csv = pd.read_csv(io.StringIO(r.output))
    assert list(csv["detector"]) == ["isolation-forest"] * 2

    r = runner.invoke(
        app, ["results", str(defended_run), "--rate-for-asr", "0.05", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    assert len(rows) == 1 and rows[0]["n_rates"] == 2 and rows[0]["level"] == 0.05

    r = runner.invoke(app, ["results", str(defended_run), "--rate-for-asr", "0.9"])
    assert r.exit_code == 0, r.output
    assert "Poisoning rate for ASR 0.9" in r.output

    r = runner.invoke(app, ["results", str(defended_run), "--frontier", "--rate-for-asr", "0.9"])
    assert r.exit_code == 2 and "give one of them" in r.output


def test_detection_baseline_in_a_run_matches_the_single_run_path(tmp_path):
    """`detection_baseline: true`: each cell carries every data-level detector's AUROC on the
    same stays without their trigger, computed once in the shared scores step; it equals what
    the detector gives on the run's own cohorts, and the frontier shows it beside the detector."""
    from ehrbackdoor.defences import make_defence
    from ehrbackdoor.defences.evaluate import detection_metrics
    from ehrbackdoor.experiments.artifacts import load_clean, load_poisoned
    from ehrbackdoor.experiments.config import config_from_dict
    from ehrbackdoor.experiments.results import load_aggregate
    from ehrbackdoor.experiments.runner import run_experiment
    from ehrbackdoor.pipeline.defend import without_trigger
    from tests.experiments.conftest import tiny_doc

    doc = tiny_doc(
        victims={"lr": {}},
        seeds=(0,),
        attacks=[{"name": "value", "trigger": "temporal", "rate": 0.1, "strength": 2.0}],
        defences=["range-check", "isolation-forest"],
        mitigation=False,
        detection_baseline=True,
    )
    cfg = config_from_dict(doc, tmp_path)
    assert cfg.defence_spec()["baseline"] is True
    s = run_experiment(cfg, tmp_path / "run", jobs=1)
    assert (s.ok, s.failed) == (1, 0)
    _, agg = load_aggregate(tmp_path / "run")
    for name in ("range_check", "isolation_forest"):
        assert f"defence_{name}_auroc_no_trigger" in agg.columns
    f = frontier_table(agg)
    col = f"defence_{f['detector'][0].replace('-', '_')}_auroc_no_trigger"
    assert f["detection_auroc_no_trigger"][0] == agg[col][0]
    # the same numbers straight from the run's saved cohorts and poisoned stays
    from ehrbackdoor.experiments.plan import expand

    plan = expand(cfg)
    (step,) = plan.scores.values()
    clean = load_clean(tmp_path / "run", step.data_key)
    train, _, _, idx = load_poisoned(tmp_path / "run", step.poison_key, clean)
    bare = without_trigger(clean.train, train, idx)
    assert not bare.modified[np.setdiff1d(np.arange(bare.n_stays), idx)].any()
    np.testing.assert_array_equal(bare.label[idx], train.label[idx])
    for name in ("range-check", "isolation-forest"):
        scores = make_defence(name, seed=0).score(bare, None, reference=clean.val)
        want = detection_metrics(train.modified, scores)["auroc"]
        assert agg[f"defence_{name.replace('-', '_')}_auroc_no_trigger"][0] == pytest.approx(want)
    # without the option a config's digest is what it was
    plain = config_from_dict({k: v for k, v in doc.items() if k != "detection_baseline"}, tmp_path)
    assert "detection_baseline" not in plain.canonical()
