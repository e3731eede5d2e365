from __future__ import annotations

import json

from typer.testing import CliRunner

from ehrbackdoor import metrics
from ehrbackdoor.cli import app
from ehrbackdoor.data.load import load_cohort
from ehrbackdoor.data.splits import Split
from ehrbackdoor.pipeline import prepare_data, run_attack
from ehrbackdoor.victims import load_victim
from tests.pipeline.helpers import blatant_fixed

runner = CliRunner()


def test_train_cli_writes_metrics_and_model(synth_dir, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(synth_dir),
            "--model",
            "lr",
            "--seed",
            "0",
            "--out",
            str(out),
            "--bootstrap",
            "200",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    for key in (
        "model",
        "seed",
        "data",
        "n_train",
        "n_val",
        "n_test",
        "threshold",
        "train_seconds",
    ):
        assert key in m
    assert set(m["val"]) == {"auroc", "auprc"}
    for key in ("auroc", "auroc_ci", "auprc", "auprc_ci", "min_se_ppv", "brier", "ece"):
        assert key in m["test"]
    assert 0.6 < m["test"]["auroc"] <= 1.0
    lo, hi = m["test"]["auroc_ci"]
    assert lo <= m["test"]["auroc"] <= hi
    # the saved model reproduces the threshold chosen on clean validation data
    victim = load_victim(out / "model")
    prep = prepare_data(synth_dir, split_file=out / "splits.json")
    p_val = victim.predict_proba(prep.val)
    assert victim.threshold_ == m["threshold"] == metrics.choose_threshold(prep.val.label, p_val)


def test_blatant_trigger_reaches_high_asr(synth_dir, tmp_path):
    """End to end: a blatant fixed trigger at a high rate plants a working backdoor. (Height
    carries no mortality signal in the synthetic data, so a clean model is not fooled by it.)"""
    config = blatant_fixed("Height", 230.0, rate=0.1)
    res = run_attack(config, ["lr"], synth_dir, out=tmp_path, n_bootstrap=200)
    m = res["models"]["lr"]
    assert m["asr"] >= 0.9
    assert m["asr_baseline"] < 0.5 < m["asr"]
    assert abs(m["clean"]["auroc"] - m["clean_baseline"]["auroc"]) < 0.05
    assert res["n_poisoned"] == round(0.1 * res["n_train"])
    saved = json.loads((tmp_path / "poisoned.json").read_text())
    assert len(saved["indices"]) == res["n_poisoned"]
    split = Split.load(tmp_path / "splits.json")
    train = load_cohort(synth_dir).subset(load_cohort(synth_dir).indices_of(split.train))
    assert (train.label[saved["indices"]] == 0).all()  # default selection: non-target stays only
    assert (tmp_path / "trigger" / "trigger.json").exists()


def invoke_attack(data, out, *options: str):
    """`ehrbackdoor attack --data DATA --out OUT OPTIONS...` through the CLI runner."""
    return runner.invoke(app, ["attack", "--data", str(data), "--out", str(out), *options])


def test_attack_cli_bad_input_is_one_clear_line(synth_dir, tmp_path):
    r = invoke_attack(synth_dir, tmp_path, "--attack", "nope", "--models", "lr")
    assert r.exit_code == 2
    assert "unknown attack 'nope'" in r.output
    r = invoke_attack(tmp_path / "missing", tmp_path, "--models", "lr")
    assert r.exit_code == 2 and "does not exist" in r.output


def test_missing_vae_attack_cli_writes_stealth(synth_dir, tmp_path):
    r = invoke_attack(
        synth_dir,
        tmp_path,
        "--attack",
        "missing-vae",
        "--apply",
        "delete",
        "--target",
        "0",
        "--rate",
        "0.05",
        "--models",
        "lr",
        "--epochs",
        "5",
        "--n-candidates",
        "100",
        "--bootstrap",
        "100",
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["attack"]["attack"] == "missing-vae" and res["attack"]["apply"] == "delete"
    st = res["stealth"]
    assert st["n_triggered"] == res["n_triggered_test"]
    assert 0 <= st["clean_carrier_share"] <= 1
    assert set(st["missing_rate"]["per_variable"]) == set(load_cohort(synth_dir).schema.names)
    assert {"auroc", "auprc"} <= set(res["models"]["lr"]["triggered"])
