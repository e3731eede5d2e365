from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ehrbackdoor.pipeline.audit import AUDIT_FILE, SCORES_FILE, audit_metrics, audit_rows, run_audit
from tests.pipeline.helpers import blatant_fixed

BLATANT = blatant_fixed("HR", 300.0, rate=0.05)
LR = {"lr": {"C": 1e-3}}  # one regularisation candidate keeps the many refits fast


@pytest.fixture(scope="module")
def audit(synth_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    result = run_audit(
        BLATANT,
        "range-check,isolation-forest,spectral,perfect,random",
        ["lr"],
        synth_dir,
        out=out,
        victim_params=LR,
        n_permutations=99,
    )
    return result, out


def test_audit_writes_the_documented_json(audit):
    result, out = audit
    saved = json.loads((out / AUDIT_FILE).read_text())
    assert saved == json.loads(json.dumps(result))
    for name in ("range-check", "isolation-forest", "spectral", "perfect", "random"):
        d = saved["defences"][name]
        assert {"auroc", "tpr_at_5fpr", "precision_at_k", "after"} <= set(d)
        assert set(d["after"]["lr"]) == {"asr", "clean_auroc", "clean_auprc"}
    assert saved["defences"]["spectral"]["victim"] == "lr"
    assert {"ks", "mmd", "missing_rate"} <= set(saved["stealth"])
    assert saved["k_remove"] == math.ceil(round(1.5 * 0.05 * saved["n_train"], 9))
    for f in ("splits.json", "poisoned.json", "trigger/trigger.json"):
        assert (out / f).is_file()
    with np.load(out / SCORES_FILE) as z:
        assert z["is_poison"].sum() == saved["n_poisoned"]
        assert z["score/range-check"].shape == (saved["n_train"],)


def test_known_answers_of_the_blatant_trigger(audit):
    result, _ = audit
    d = result["defences"]
    assert result["before"]["lr"]["asr"] >= 0.9  # the backdoor works
    assert d["range-check"]["auroc"] >= 0.99
    assert d["isolation-forest"]["auroc"] >= 0.99
    # the perfect filter removes exactly the poison and the backdoor with it
    perfect = d["perfect"]
    assert perfect["n_removed"] == perfect["n_poisoned_removed"] == result["n_poisoned"]
    asr_clean = result["clean_baseline"]["lr"]["asr"]
    assert perfect["after"]["lr"]["asr"] <= asr_clean + 0.15
    # removing as many stays at random leaves it in place
    assert d["random"]["n_removed"] == result["n_poisoned"]
    assert d["random"]["after"]["lr"]["asr"] >= 0.8
    # the range check removes (at least) all poison within its budget
    assert d["range-check"]["n_poisoned_removed"] == result["n_poisoned"]


def test_rows_and_flat_metrics(audit):
    result, _ = audit
    rows = audit_rows(result)
    assert [r["defence"] for r in rows] == list(result["defences"])
    assert rows[0]["lr/asr_before"] == result["before"]["lr"]["asr"]
    flat = audit_metrics(result, "lr")
    assert flat["defence_range_check_auroc"] == result["defences"]["range-check"]["auroc"]
    assert "stealth_mmd_p" in flat and "defence_perfect_asr_after" in flat


def test_audit_rejects_bad_requests_before_any_work(synth_dir):
    with pytest.raises(ValueError, match="unknown defence 'pixels'"):
        run_audit(BLATANT, "pixels", ["lr"], synth_dir)
    with pytest.raises(ValueError, match="at least one victim"):
        run_audit(BLATANT, "all", [], synth_dir)
    with pytest.raises(ValueError, match="unknown defences"):
        run_audit(BLATANT, "all", ["lr"], synth_dir, defence_params={"nope": {}})
    with pytest.raises(ValueError, match="n_neighbors"):
        run_audit(BLATANT, "lof", ["lr"], synth_dir, defence_params={"lof": {"n_neighbors": 0}})


def test_detection_baseline_scores_the_same_stays_without_their_trigger(synth_dir, tmp_path):
    """The blatant HR 300 is what range-check finds: without it, the same relabelled stays are
    invisible to it (exactly chance), while the trigger's AUROC stays as it was."""
    result = run_audit(
        BLATANT,
        "range-check,spectral",
        ["lr"],
        synth_dir,
        out=tmp_path,
        victim_params=LR,
        mitigation=False,
        detection_baseline=True,
        stealth=False,
    )
    rc = result["defences"]["range-check"]
    assert rc["auroc"] > 0.99 and rc["auroc_no_trigger"] == pytest.approx(0.5)
    assert "auroc_no_trigger" not in result["defences"]["spectral"]  # model-level: not scored
    plain = run_audit(BLATANT, "range-check", ["lr"], synth_dir, victim_params=LR,
                      mitigation=False, stealth=False)  # fmt: skip
    assert plain["defences"]["range-check"]["auroc"] == rc["auroc"]
    assert "auroc_no_trigger" not in plain["defences"]["range-check"]
