"""Defences as an axis of experiment configs: validation, per-cell metrics, shared scores, report."""

from __future__ import annotations

import pytest

from ehrbackdoor.experiments.config import ConfigError, config_from_dict
from ehrbackdoor.experiments.plan import expand
from ehrbackdoor.experiments.runner import run_experiment
from ehrbackdoor.experiments.store import Store
from tests.experiments.conftest import tiny_doc

DEFENCES = ["range-check", "random", "perfect"]


def _doc(**over) -> dict:
    return tiny_doc(
        victims={"lr": {}},
        seeds=(0,),
        attacks=[{"name": "fixed", "trigger": "fixed", "rate": 0.05, "value": 200.0, "hours": 12}],
        **{"defences": DEFENCES, **over},
    )


def test_unknown_defence_names_the_key_and_the_allowed_values(tmp_path):
    with pytest.raises(ConfigError) as e:
        config_from_dict(_doc(defences=["range-chek"]), tmp_path)
    msg = str(e.value)
    assert "defences" in msg and "range-chek" in msg and "range-check" in msg and "all" in msg
    with pytest.raises(ConfigError, match=r"defence_params\.range-check"):
        config_from_dict(_doc(defence_params={"range-check": {"nope": 1}}), tmp_path)
    with pytest.raises(ConfigError, match="k_factor"):
        config_from_dict(_doc(k_factor=0), tmp_path)


def test_defences_expand_and_keep_old_keys(tmp_path):
    cfg = config_from_dict(_doc(defences="reference"), tmp_path)
    assert cfg.defences == ["perfect", "random"]
    plan = expand(cfg)
    assert len(plan.scores) == 1 and plan.cells[0].scores_key in plan.scores
    plain = config_from_dict(_doc(defences=[]), tmp_path)
    assert "k_factor" not in plain.canonical()  # digests of runs without defences unchanged
    assert expand(plain).cells[0].key != plan.cells[0].key


def test_defence_metrics_in_rows_and_report(tmp_path):
    from ehrbackdoor.report import write_report

    cfg = config_from_dict(_doc(), tmp_path)
    s = run_experiment(cfg, tmp_path / "run", jobs=1)
    assert (s.ok, s.failed) == (1, 0)
    assert s.steps_run["scores"] == 1  # data-level scores once per poisoned cohort
    with Store.open_run(tmp_path / "run", readonly=True) as store:
        (row,) = store.cells()
    m = row["metrics"]
    for d in ("range_check", "random", "perfect"):
        for k in ("auroc", "tpr_at_5fpr", "precision_at_k", "asr_after", "clean_auroc_after"):
            assert f"defence_{d}_{k}" in m
    assert m["defence_perfect_auroc"] == 1.0
    assert m["defence_perfect_n_poisoned_removed"] == m["n_poisoned"]
    html = write_report(tmp_path / "run").read_text()
    assert "Detection AUROC" in html and "before / after mitigation" in html
    assert "range-check" in html


def test_detection_only_run_without_mitigation(tmp_path):
    """`mitigation: false` scores the stays but removes and retrains nothing."""
    cfg = config_from_dict(_doc(defences=["range-check"], mitigation=False), tmp_path)
    s = run_experiment(cfg, tmp_path / "run", jobs=1)
    assert (s.ok, s.failed) == (1, 0)
    with Store.open_run(tmp_path / "run", readonly=True) as store:
        (row,) = store.cells()
    m = row["metrics"]
    assert m["defence_range_check_auroc"] is not None
    assert not any(k.endswith("_after") or k.endswith("_n_removed") for k in m)
    with_default = config_from_dict(_doc(defences=["range-check"]), tmp_path)
    assert with_default.digest() != cfg.digest()
    assert "mitigation" not in with_default.canonical()
