"""Surrogate-scored trigger design: deterministic for a seed, reads only the attacker's stays,
for both families."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.attacks import ThreatModel, make_trigger
from ehrbackdoor.attacks.design import (
    MissingSpace,
    TemporalSpace,
    attacker_split,
    dense_variables,
    design_trigger,
)
from ehrbackdoor.data.schema import physionet2012_schema

from .conftest import random_cohort

SPACE = TemporalSpace(
    strength=2.0, ranks=(1, None), variable_sets=("all", "dense"), n_draws=2, dense_share=0.0
)


@pytest.fixture(scope="module")
def pool():
    return random_cohort(physionet2012_schema(), n=400, per_stay=60, seed=7)


def test_attacker_split_is_disjoint_and_stratified(pool):
    att, vic = attacker_split(pool, seed=1)
    assert not set(att.stay_id) & set(vic.stay_id)
    assert att.n_stays + vic.n_stays == pool.n_stays
    assert abs(att.label.mean() - vic.label.mean()) < 0.02


def test_design_is_deterministic_and_reads_only_the_attacker(pool):
    att, vic = attacker_split(pool, seed=1)
    threat = ThreatModel(target=1, rate=0.05, seed=0)
    a = design_trigger(att, threat, space=SPACE, seed=3)
    b = design_trigger(att, threat, space=SPACE, seed=3)
    assert a.params == b.params
    assert a.candidates == b.candidates
    np.testing.assert_array_equal(a.trigger.pattern_, b.trigger.pattern_)
    assert len(a.candidates) == 2 * 2 * 2
    assert set(a.used_stay_ids) == set(att.stay_id)
    assert not set(a.used_stay_ids) & set(vic.stay_id)
    # the chosen trigger is a fitted temporal trigger within the budget
    d = a.trigger.mahalanobis()
    np.testing.assert_allclose(d[d > 0], 2.0, rtol=1e-6)
    ok = [x for x in a.candidates if x["auroc_cost"] <= 0.01]
    if ok:
        assert a.params["seed"] == max(ok, key=lambda x: x["asr"])["params"]["seed"]
    a.to_dict()


def test_another_seed_another_search(pool):
    att, _ = attacker_split(pool, seed=1)
    threat = ThreatModel(target=1, rate=0.05, seed=0)
    space = TemporalSpace(ranks=(None,), variable_sets=("all",), n_draws=2)
    a = design_trigger(att, threat, space=space, seed=3)
    b = design_trigger(att, threat, space=space, seed=4)
    assert [c["params"]["seed"] for c in a.candidates] != [
        c["params"]["seed"] for c in b.candidates
    ]


def test_dense_variables_are_the_charted_ones(pool):
    names = dense_variables(pool, min_share=0.0)
    assert "MechVent" not in names and "HR" in names
    assert dense_variables(pool, min_share=1.01) == []


def test_space_checks():
    for bad in ("vitals", "dense-0", "dense-x"):
        with pytest.raises(ValueError, match="variable_sets"):
            TemporalSpace(variable_sets=(bad,))
    with pytest.raises(ValueError, match="searched"):
        TemporalSpace(params={"rank": 2})
    with pytest.raises(ValueError, match="ranks"):
        TemporalSpace(ranks=(0,))
    with pytest.raises(ValueError, match="strength"):
        TemporalSpace(strength=0.0)


def test_dense_subsets_carry_k_dense_variables(pool):
    att, _ = attacker_split(pool, seed=1)
    threat = ThreatModel(target=1, rate=0.05, seed=0)
    space = TemporalSpace(ranks=(1,), variable_sets=("dense-2",), n_draws=3, dense_share=0.0)
    d = design_trigger(att, threat, space=space, max_auroc_cost=1.0, seed=3)
    dense = set(dense_variables(att, min_share=0.0))
    subsets = [tuple(c["params"]["variables"]) for c in d.candidates]
    assert all(len(v) == 2 and set(v) <= dense for v in subsets)
    assert len(set(subsets)) > 1  # each draw its own subset
    # K covering every dense variable would repeat the "dense" set: skipped
    every = TemporalSpace(ranks=(1,), variable_sets=("dense", f"dense-{len(dense)}"), n_draws=1,
                          dense_share=0.0)  # fmt: skip
    d = design_trigger(att, threat, space=every, max_auroc_cost=1.0, seed=3)
    assert [c["variable_set"] for c in d.candidates] == ["dense"]
    # nothing densely charted: dense sets are skipped, not silently widened to every variable
    sparse = TemporalSpace(ranks=(1,), variable_sets=("all", "dense"), n_draws=1, dense_share=1.0)
    d = design_trigger(att, threat, space=sparse, max_auroc_cost=1.0, seed=3)
    assert [c["variable_set"] for c in d.candidates] == ["all"]


def test_detectors_constrain_the_choice(pool):
    from ehrbackdoor.defences import make_defence

    att, _ = attacker_split(pool, seed=1)
    threat = ThreatModel(target=1, rate=0.05, seed=0)
    space = TemporalSpace(ranks=(1, None), variable_sets=("all",), n_draws=2)
    dets = {"range-check": make_defence("range-check")}
    # an unreachable detection limit: every candidate exceeds it, the least-detected one wins
    d = design_trigger(att, threat, space=space, detectors=dets, max_detection_auroc=0.0, seed=3)
    assert all(set(c["detection_auroc"]) == {"range-check"} for c in d.candidates)
    assert all(c["excess"] > 0 for c in d.candidates)
    best = min(d.candidates, key=lambda c: (c["excess"], -c["asr"]))
    assert d.params["seed"] == best["params"]["seed"] and d.params["rank"] == best["params"]["rank"]


def test_lift_objective_maximises_asr_over_the_clean_surrogate(pool):
    att, _ = attacker_split(pool, seed=1)
    threat = ThreatModel(target=1, rate=0.05, seed=0)
    d = design_trigger(att, threat, space=SPACE, objective="lift", max_auroc_cost=1.0, seed=3)
    for c in d.candidates:
        assert c["lift"] == pytest.approx(c["asr"] - c["asr_clean_surrogate"])
    assert d.candidates[d.chosen]["lift"] == max(c["lift"] for c in d.candidates)
    with pytest.raises(ValueError, match="objective"):
        design_trigger(att, threat, space=SPACE, objective="auc", seed=3)


VAE = {"epochs": 3, "n_candidates": 60, "latent_dim": 4}


def test_reselect_equals_a_fresh_fit_with_that_rule(pool):
    base = make_trigger("missing-vae", seed=5, **VAE).fit(pool)
    other = base.reselect(objective="hamming", pick=1)
    fresh = make_trigger("missing-vae", seed=5, objective="hamming", pick=1, **VAE).fit(pool)
    np.testing.assert_array_equal(other.pattern_, fresh.pattern_)
    assert other.selection_ == fresh.selection_
    assert base.get_params()["objective"] == "deleted"  # the original is unchanged
    assert other.selection_["objective"] == "hamming" and other.selection_["pick"] == 1
    # a place past the survivors is clipped to the last one, and the place used is recorded
    far = base.reselect(pick=10**6)
    assert far.selection_["pick"] == 10**6
    assert far.selection_["place"] == far.selection_["n_passed"] - 1
    with pytest.raises(ValueError, match="objective"):
        base.reselect(objective="densest")


def test_missing_design_is_deterministic_and_reads_only_the_attacker(pool):
    att, vic = attacker_split(pool, seed=1)
    threat = ThreatModel(target=0, rate=0.05, apply="exact", seed=0)
    space = MissingSpace(picks=(0, 1), params=VAE)
    a = design_trigger(att, threat, space=space, max_auroc_cost=1.0, seed=2)
    b = design_trigger(att, threat, space=space, max_auroc_cost=1.0, seed=2)
    assert a.candidates == b.candidates and a.params == b.params
    np.testing.assert_array_equal(a.trigger.pattern_, b.trigger.pattern_)
    assert 1 <= len(a.candidates) <= len(space.objectives) * 2
    assert set(a.used_stay_ids) == set(att.stay_id)
    assert not set(a.used_stay_ids) & set(vic.stay_id)
    # every candidate is a different pattern, and the winner is the best-scoring one
    assert len({c["pattern_index"] for c in a.candidates}) == len(a.candidates)
    assert all(c["relaxed"] in ("none", "typicality widened", "min_hamming dropped",
                                "all filters dropped") for c in a.candidates)  # fmt: skip
    assert a.to_dict()["feasible"] == (a.candidates[a.chosen]["excess"] == 0)
    assert a.to_dict()["n_fitted_stays"] < len(att.stay_id)  # kept as scored: surrogate train
    assert a.trigger.name == "missing-vae"
    assert a.params == a.candidates[a.chosen]["params"]
    assert a.candidates[a.chosen]["asr"] == max(c["asr"] for c in a.candidates)


def test_missing_space_checks():
    with pytest.raises(ValueError, match="objectives"):
        MissingSpace(objectives=("dense",))
    with pytest.raises(ValueError, match="picks"):
        MissingSpace(picks=(-1,))


def test_design_on_a_24_hour_window(pool):
    """Cohorts of other windows (YAIB's 24-hour tasks): shares are of the window's hours and
    missing-value patterns have the window's bins."""
    short = pool.first_hours(24.0)
    assert dense_variables(short, min_share=0.0) == dense_variables(pool, min_share=0.0)
    # in this pool a recorded variable fills about 3.3% of 48 hours and 5% of the first 24:
    # judged against 48 hours the short window would fall to 2.5% and keep no variable
    assert dense_variables(pool, min_share=0.045) == []
    assert "HR" in dense_variables(short, min_share=0.045)
    att, _ = attacker_split(short, seed=1)
    threat = ThreatModel(target=0, rate=0.05, apply="exact", seed=0)
    d = design_trigger(att, threat, space=MissingSpace(picks=(0,), params=VAE), seed=2)
    assert d.trigger.pattern_.shape[0] == 24


def test_the_search_frontier_keeps_only_undominated_candidates():
    from ehrbackdoor.attacks.design import Design

    def cand(asr, *det):
        return {"asr": asr, "detection_auroc": {f"d{i}": a for i, a in enumerate(det)}}

    cands = [
        cand(0.9, 0.80, 0.60),  # strongest detector 0.80
        cand(0.5, 0.55, 0.50),
        cand(0.4, 0.70),  # dominated by the 0.5 one (lower ASR, higher detection)
        cand(0.7, 0.65),
        cand(0.95, 0.99),
        cand(0.6, float("nan")),  # undefined detection: not on the frontier
    ]
    d = Design(None, {}, cands, np.arange(2))
    assert d.frontier() == [1, 3, 0, 4]
