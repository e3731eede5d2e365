"""Evaluation protocols: the paper's threshold and epoch rule, and the honest default unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ehrbackdoor.attacks import ThreatModel, make_trigger
from ehrbackdoor.attacks.protocol import paper_selection, triggered_validation
from ehrbackdoor.metrics import attack_success_rate
from ehrbackdoor.victims import make_victim
from ehrbackdoor.victims.protocol import EpochChooser, Selection, as_selection, paper, scores_at
from ehrbackdoor.victims.training import (
    EpochSelector,
    TrainConfig,
    _weighted_loss,
    torch_session,
    train_model,
)
from tests.victims.conftest import make_cohort


# ------------------------------------------------------------------ the rule on a constructed case
def _offer_all(chooser: EpochChooser, rows: list[tuple[float, float, float]]) -> list[bool]:
    return [
        chooser.offer(e, {"precision": p, "recall": r, "f1": 0.0, "asr": a})
        for e, (p, r, a) in enumerate(rows, start=1)
    ]


def test_chooser_picks_the_asr_best_qualifying_epoch():
    rows = [
        (0.30, 0.90, 0.99),  # precision too low: the highest ASR, but excluded
        (0.50, 0.50, 0.40),
        (0.45, 0.60, 0.70),  # the pick
        (0.50, 0.41, 0.70),  # ties the pick: the earlier epoch stays
        (0.60, 0.40, 0.95),  # recall not ABOVE 0.4: excluded
        (0.41, 0.41, 0.10),
    ]
    chooser = EpochChooser("asr", 0.4, 0.4)
    assert _offer_all(chooser, rows) == [False, True, True, False, False, False]
    assert chooser.chosen == 3 and chooser.final_epoch == 3
    summary = chooser.summary()
    assert summary["selected_epoch"] == 3 and not summary["fallback"]
    assert summary["n_qualifying"] == 4 and summary["threshold"] == 0.5


def test_chooser_falls_back_to_the_last_epoch():
    chooser = EpochChooser("asr", 0.4, 0.4)
    assert not any(_offer_all(chooser, [(0.1, 0.9, 0.9), (0.9, 0.1, 0.8), (0.3, 0.3, 0.7)]))
    assert chooser.chosen is None and chooser.final_epoch == 3
    assert chooser.summary()["fallback"]


def test_scores_at_uses_threshold_half_and_target():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.2, 0.6, 0.5, 0.4])  # predicted positive: the 0.6 and the 0.5
    s = scores_at(y, p, np.array([0.7, 0.5, 0.49]), target=1)
    assert s["precision"] == 0.5 and s["recall"] == 0.5 and s["f1"] == 0.5
    assert s["asr"] == pytest.approx(2 / 3)
    assert scores_at(y, p, np.array([0.7, 0.5, 0.49]), target=0)["asr"] == pytest.approx(1 / 3)


# ----------------------------------------------------- the loop keeps the selected epoch's weights
class _Scripted(EpochSelector):
    """Feeds scripted scores to the chooser and snapshots the weights of every epoch."""

    def __init__(self, rows):
        super().__init__(EpochChooser("asr", 0.4, 0.4), np.zeros(1))
        self.rows, self.states = rows, []

    def offer(self, epoch, model, val_logits, device):
        self.states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        p, r, a = self.rows[epoch - 1]
        return self.chooser.offer(epoch, {"precision": p, "recall": r, "f1": 0.0, "asr": a})


def _train_scripted(rows, ema=None):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    config = TrainConfig(lr=0.05, batch_size=16, max_epochs=len(rows), patience=1, ema=ema)
    selector = _Scripted(rows)
    device = torch.device("cpu")
    with torch_session(0, device):
        model = nn.Sequential(nn.Linear(5, 1), nn.Flatten(0))
        result = train_model(model, [X], y, [X], y, config, device, selector=selector)
    return model, result, selector


@pytest.mark.parametrize("ema", [None, 0.5])
def test_loop_restores_the_selected_epoch_not_the_last(ema):
    rows = [(0.5, 0.5, 0.2), (0.5, 0.5, 0.9), (0.5, 0.5, 0.1), (0.5, 0.5, 0.3), (0.1, 0.9, 1.0)]
    model, result, selector = _train_scripted(rows, ema)
    # No early stopping under a selector, though patience=1 and the AUPRC may not improve.
    assert len(result.history) == 5 and len(selector.states) == 5
    assert result.best_epoch == 2
    final = model.state_dict()
    for k, v in final.items():
        assert torch.equal(v, selector.states[1][k])
    assert any(not torch.equal(final[k], selector.states[-1][k]) for k in final)


def test_loop_fallback_keeps_the_last_epoch():
    model, result, selector = _train_scripted([(0.1, 0.1, 0.5)] * 3)
    assert result.best_epoch == 3
    for k, v in model.state_dict().items():
        assert torch.equal(v, selector.states[-1][k])


def test_weighted_loss_equals_weighted_nll_of_two_class_softmax():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(50, 2, generator=g)
    y = (torch.rand(50, generator=g) < 0.3).long()
    w = torch.tensor([0.3, 1.0])
    ref = nn.functional.nll_loss(torch.log_softmax(out, dim=1), y, weight=w)
    ours = _weighted_loss((0.3, 1.0))(out[:, 1] - out[:, 0], y.float())
    assert torch.allclose(ours, ref, atol=1e-6)


# ------------------------------------------------------------------------------ on real victims
@pytest.fixture(scope="module")
def cohorts():
    train, val = make_cohort(300, 0), make_cohort(150, 1, "v")
    threat = ThreatModel(target=1, rate=0.05)
    trigger = make_trigger("temporal", strength=2.0).fit(train)
    return train, val, trigger, threat


def _final_scores(victim, val, trig_val, target=1):
    idx = np.flatnonzero(trig_val.label != target)
    p_trig = victim.predict_proba(trig_val.subset(idx))
    return scores_at(val.label, victim.predict_proba(val), p_trig, target)


@pytest.mark.parametrize("name", ["mlp", "lr"])
def test_paper_protocol_on_a_victim(cohorts, name, tmp_path):
    train, val, trigger, threat = cohorts
    selection = paper_selection(val, trigger, threat)
    victim = make_victim(name, preset="paper", max_epochs=6).fit(train, val, selection=selection)
    assert victim.threshold_ == 0.5
    sel = victim.fit_info_["selection"]
    assert sel["protocol"] == "paper" and sel["rule"] == "asr" and len(sel["history"]) == 6
    hist = sel["history"]
    qual = [h for h in hist if h["precision"] > 0.4 and h["recall"] > 0.4]
    if qual:
        best = max(h["asr"] for h in qual)
        expected = next(h["epoch"] for h in qual if h["asr"] == best)
    else:
        expected = hist[-1]["epoch"]
    assert sel["selected_epoch"] == expected
    # The kept weights are that epoch's: its recorded scores are reproduced by the final model.
    got = _final_scores(victim, val, selection.triggered_val)
    rec = hist[expected - 1]
    for k in ("precision", "recall", "asr"):
        assert got[k] == pytest.approx(rec[k], abs=1e-9)
    victim.save(tmp_path / name)
    saved = json.loads((tmp_path / name / "victim.json").read_text())
    assert saved["threshold"] == 0.5 and saved["fit_info"]["protocol"] == "paper"
    assert saved["fit_info"]["selection"]["selected_epoch"] == expected


def test_lbfgs_lr_paper_picks_among_c_candidates(cohorts):
    train, val, trigger, threat = cohorts
    selection = paper_selection(val, trigger, threat)
    victim = make_victim("lr", C=[1e-4, 1e-2, 1.0]).fit(train, val, selection=selection)
    sel = victim.fit_info_["selection"]
    assert victim.threshold_ == 0.5 and len(sel["history"]) == 3
    assert sel["C"] == sel["history"][sel["selected_epoch"] - 1]["C"] == victim.C_
    got = _final_scores(victim, val, selection.triggered_val)
    assert got["asr"] == pytest.approx(sel["history"][sel["selected_epoch"] - 1]["asr"])


def test_recurrent_paper_rule_is_f1_with_lstm_gates(cohorts):
    train, val, _, _ = cohorts
    victim = make_victim("gru", preset="paper", max_epochs=3).fit(train, val, selection="paper")
    sel = victim.fit_info_["selection"]
    assert (sel["rule"], sel["min_precision"], sel["min_recall"]) == ("f1", 0.6, 0.3)
    assert victim.threshold_ == 0.5 and "asr" not in sel["history"][0]


def test_mlp_without_trigger_falls_back_to_f1(cohorts):
    train, val, _, _ = cohorts
    victim = make_victim("mlp", preset="paper", max_epochs=2).fit(train, val, selection=paper())
    assert victim.fit_info_["selection"]["rule"] == "f1 (no triggered validation)"


def test_victims_outside_the_paper_keep_their_selection(cohorts):
    train, val, _, _ = cohorts
    victim = make_victim("gbdt", max_iter=20).fit(train, val, selection="paper")
    assert victim.threshold_ == 0.5 and victim.fit_info_["protocol"] == "paper"
    assert "history" not in victim.fit_info_["selection"]


def test_honest_is_the_default_and_records_itself(cohorts):
    train, val, _, _ = cohorts
    a = make_victim("mlp", max_epochs=3).fit(train, val)
    b = make_victim("mlp", max_epochs=3).fit(train, val, selection="honest")
    assert a.threshold_ == b.threshold_ != 0.5
    np.testing.assert_array_equal(a.predict_proba(val), b.predict_proba(val))
    assert a.fit_info_["protocol"] == "honest"
    assert a.fit_info_["selection"]["selected_epoch"] == a.fit_info_["best_epoch"]


def test_selection_validation(cohorts):
    _, val, trigger, threat = cohorts
    trig = triggered_validation(val, trigger, threat)
    assert as_selection(None).protocol == "honest"
    with pytest.raises(ValueError, match="unknown protocol"):
        Selection("cheating")
    with pytest.raises(ValueError, match="honest protocol uses no triggered"):
        Selection("honest", trig)
    with pytest.raises(ValueError, match="selection must be"):
        as_selection(3)
    # The triggered stays are exactly the non-target ones, with the trigger written in.
    stays = paper(trig, 1).triggered_stays()
    assert (stays.label == 0).all() and stays.n_stays == int((val.label == 0).sum())
    assert attack_success_rate(np.zeros(3), [0.6, 0.4, 0.5], 0.5, 1) == pytest.approx(2 / 3)


def test_protocols_train_the_same_trajectory(cohorts):
    """Under the paper preset (no early stopping) both protocols run the same epochs bit for bit;
    only which epoch is kept and the threshold differ."""
    train, val, trigger, threat = cohorts
    selection = paper_selection(val, trigger, threat)
    honest = make_victim("mlp", preset="paper", max_epochs=4).fit(train, val)
    paper_ = make_victim("mlp", preset="paper", max_epochs=4).fit(train, val, selection=selection)
    assert honest.fit_info_["history"] == paper_.fit_info_["history"]
    assert honest.fit_info_["epochs_run"] == paper_.fit_info_["epochs_run"] == 4
    if honest.fit_info_["best_epoch"] == paper_.fit_info_["best_epoch"]:
        np.testing.assert_array_equal(honest.predict_proba(val), paper_.predict_proba(val))
