"""`run_design` / `ehrbackdoor design`: the search reads only the attacker's half, the victims
train on the other, and everything needed to rerun it is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ehrbackdoor.attacks import load_trigger
from ehrbackdoor.attacks.design import MissingSpace, TemporalSpace
from ehrbackdoor.cli import app
from ehrbackdoor.pipeline import prepare_data
from ehrbackdoor.pipeline.design import run_design

SMALL = TemporalSpace(ranks=(1, None), variable_sets=("all",), n_draws=1)


@pytest.fixture(scope="module")
def prep(synth_dir):
    return prepare_data(synth_dir)


@pytest.fixture(scope="module")
def designed(prep, tmp_path_factory):
    out = tmp_path_factory.mktemp("design")
    res = run_design(
        prep, "value", ["lr"], out, rate=0.05, space=SMALL, detectors=["range-check"],
        compare_default=True, n_bootstrap=0, seed=1,
    )  # fmt: skip
    return out, res


def test_halves_are_disjoint_and_the_victim_trains_on_its_own(prep, designed):
    out, res = designed
    halves = json.loads((out / "attacker.json").read_text())
    att, vic = set(halves["attacker_stay_ids"]), set(halves["victim_stay_ids"])
    assert not att & vic
    assert att | vic == {str(s) for s in prep.train.stay_id}
    assert res["n_attacker"] == len(att) and res["n_victim_train"] == len(vic)
    # the poisoned stays are victim stays, round(rate * victim half) of them
    poisoned = json.loads((out / "poisoned.json").read_text())
    assert res["n_poisoned"] == round(0.05 * len(vic)) == len(poisoned["indices"])
    design = json.loads((out / "design.json").read_text())
    assert design["n_used_stays"] == len(att)
    assert len(design["candidates"]) == res["n_candidates"] == 2


def test_results_carry_transfer_detection_fidelity_and_the_default(designed):
    out, res = designed
    for kind in ("designed", "default"):
        m = res[kind]["models"]["lr"]
        assert 0 <= m["asr"] <= 1 and 0 <= m["asr_baseline"] <= 1
        assert m["auprc_drop"] == pytest.approx(m["clean"]["auprc"] - m["triggered"]["auprc"])
        assert set(res[kind]["detection_auroc"]) == {"range-check"}
        assert res[kind]["trigger_fidelity_summary"]["new_bound_hits"] == 0
    # the saved trigger is the designed one, with the chosen parameters
    trig = load_trigger(out / "trigger")
    assert trig.rank == res["attack"]["rank"] and trig.seed == res["trigger_seed"]
    # the attack's seed is the run's (split, poisoned stays, victims), not the trigger's draw
    assert res["attack"]["seed"] == 1 and res["trigger_seed"] != 1
    assert res["trigger_fitted_on"] == {"stays": "attacker", "n_stays": res["n_attacker"]}
    assert res["feasible"] == (res["chosen"]["excess"] == 0)
    assert json.loads((out / "results.json").read_text())["chosen"] == res["chosen"]


def test_same_seed_same_design(prep, designed):
    _, res = designed
    again = run_design(
        prep, "value", ["lr"], rate=0.05, space=SMALL, detectors=["range-check"],
        n_bootstrap=0, seed=1,
    )  # fmt: skip
    assert again["attack"] == res["attack"] and again["chosen"] == res["chosen"]
    assert again["designed"]["models"]["lr"]["asr"] == res["designed"]["models"]["lr"]["asr"]


def test_missing_family_and_bad_requests(prep):
    space = MissingSpace(
        picks=(0,), objectives=("deleted",), params={"epochs": 2, "n_candidates": 40}
    )
    res = run_design(
        prep, "missing", ["lr"], rate=0.05, space=space, detectors=["mask-rarity"], n_bootstrap=0
    )
    assert res["attack"]["attack"] == "missing-vae" and res["attack"]["apply"] == "exact"
    assert res["attack"]["target"] == 0
    assert res["trigger_fitted_on"]["stays"] == "attacker's surrogate train"
    assert res["trigger_fitted_on"]["n_stays"] < res["n_attacker"]
    assert np.isfinite(res["designed"]["models"]["lr"]["asr"])
    with pytest.raises(ValueError, match="family"):
        run_design(prep, "spectral", ["lr"])
    with pytest.raises(ValueError, match="searches the value family"):
        run_design(prep, "missing", ["lr"], space=SMALL)
    with pytest.raises(ValueError, match="models"):
        run_design(prep, "value", [])
    with pytest.raises(ValueError, match="victim"):  # refused before any search
        run_design(prep, "value", ["lr", "nope"])
    with pytest.raises(ValueError, match="max_detection_auroc"):
        run_design(prep, "value", ["lr"], space=SMALL, max_detection_auroc=float("nan"))
    with pytest.raises(ValueError, match="test_data"):
        run_design(prep, "value", ["lr"], test_data="elsewhere")


def test_cli_design_prints_the_transfer(synth_dir, tmp_path):
    out = tmp_path / "d"
    r = CliRunner().invoke(
        app,
        ["design", "--data", str(synth_dir), "--out", str(out), "--models", "lr",
         "--rate", "0.05", "--detectors", "range-check", "--bootstrap", "0"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "designed temporal trigger" in r.output and "range-check" in r.output
    assert (out / "results.json").exists()
    bad = CliRunner().invoke(
        app, ["design", "--data", str(synth_dir), "--out", str(tmp_path / "e"), "--family", "x"]
    )
    assert bad.exit_code == 2 and "family" in bad.output


def test_trigger_parameters_cannot_overwrite_attack_fields():
    from ehrbackdoor.pipeline.cell import AttackConfig

    with pytest.raises(ValueError, match="seed"):
        AttackConfig("temporal", trigger_params={"seed": 3, "rank": 1})
