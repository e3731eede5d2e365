"""Evaluation protocols: how a victim's epoch (or regularisation setting) and threshold are chosen.

Two protocols, passed to ``Victim.fit(train, val, selection=...)``:

``honest`` (the default)
    Model selection / early stopping on the CLEAN validation stays (AUPRC) and the operating
    threshold that maximises F1 on them. Nothing the attacker knows enters the victim.

``paper`` -- the protocol of Joe et al. (2021), "Exploiting missing value patterns ..." code
(github byunggilljoe/mimic3_td_backdoor), done the way the paper describes it:

* the decision threshold is 0.5 (the paper's argmax of a 2-class softmax; here ``p >= 0.5``);
* no early stopping: every epoch is trained, and after each one the network is scored at 0.5;
* ``lr`` / ``mlp``: among the epochs whose clean-validation precision and recall are both above
  0.4, the one with the highest attack success rate (ASR) on the triggered validation stays
  (share of triggered stays whose true label differs from the target that are predicted as the
  target); for the scikit-learn ``lr`` the same rule picks among the ``C`` candidates;
* ``lstm`` / ``gru``: among the epochs with precision above 0.6 and recall above 0.3, the one
  with the highest clean-validation F1 (the paper's LSTM rule, on clean validation stays);
* ties go to the earliest epoch (the paper's strict ``>``); when no epoch qualifies the LAST
  epoch is kept (the paper's fallback), recorded as ``fallback: true``;
* the selected epoch's weights are really those of that epoch (a deep copy of the state dict),
  and gradients are zeroed every step -- the paper's code did neither;
* victims outside the paper (``grud``, ``gbdt``) keep their usual selection and get threshold 0.5.

``lr`` / ``mlp`` need the triggered validation cohort (built by the caller with the attack engine,
see `ehrbackdoor.attacks.protocol.paper_selection`). Without one (a clean victim trained before any
trigger exists) they fall back to the F1 rule with the 0.4 / 0.4 gate, recorded as rule
``"f1 (no triggered validation)"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort

PROTOCOLS = ("honest", "paper")
#: Decision threshold of the paper protocol.
PAPER_THRESHOLD = 0.5
#: The paper's per-victim rule: (score maximised, precision gate, recall gate); both gates strict.
PAPER_RULES: dict[str, tuple[str, float, float]] = {
    "lr": ("asr", 0.4, 0.4),
    "mlp": ("asr", 0.4, 0.4),
    "lstm": ("f1", 0.6, 0.3),
    "gru": ("f1", 0.6, 0.3),
}


@dataclass(frozen=True, eq=False)
class Selection:
    """Which protocol selects a victim, and (paper, lr/mlp) the triggered validation stays.

    ``triggered_val`` is the validation cohort with the trigger written into the stays whose
    label differs from ``target`` (what `attacks.attack_test(val, trigger, threat)` returns);
    only those stays enter the ASR.
    """

    protocol: str = "honest"
    triggered_val: Cohort | None = None
    target: int = 1

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; valid: {', '.join(PROTOCOLS)}")
        if self.target not in (0, 1) or isinstance(self.target, bool):
            raise ValueError(f"target must be 0 or 1, got {self.target!r}")
        if self.triggered_val is not None:
            if not isinstance(self.triggered_val, Cohort):
                raise ValueError(
                    f"triggered_val must be a Cohort, got {type(self.triggered_val).__name__}"
                )
            if self.protocol == "honest":
                raise ValueError("the honest protocol uses no triggered data; drop triggered_val")
            if not (np.asarray(self.triggered_val.label) != self.target).any():
                raise ValueError(f"triggered_val has no stay with a label other than {self.target}")

    @property
    def is_paper(self) -> bool:
        return self.protocol == "paper"

    def triggered_stays(self) -> Cohort | None:
        """The triggered stays that enter the ASR (label != target), or None."""
        if self.triggered_val is None:
            return None
        return self.triggered_val.subset(np.flatnonzero(self.triggered_val.label != self.target))

    def rule_for(self, victim: str) -> tuple[str, float, float] | None:
        """(score, precision gate, recall gate) of the paper rule for `victim`, or None."""
        if not self.is_paper or victim not in PAPER_RULES:
            return None
        score, p_min, r_min = PAPER_RULES[victim]
        if score == "asr" and self.triggered_val is None:
            return ("f1", p_min, r_min)
        return (score, p_min, r_min)


HONEST = Selection()


def as_selection(selection: Selection | str | None) -> Selection:
    """A `Selection` from a Selection, a protocol name or None (= honest)."""
    if selection is None:
        return HONEST
    if isinstance(selection, str):
        return Selection(protocol=selection)
    if not isinstance(selection, Selection):
        raise ValueError(
            f"selection must be a Selection, a protocol name or None, got {selection!r}"
        )
    return selection


def paper(triggered_val: Cohort | None = None, target: int = 1) -> Selection:
    """The paper protocol (see module docstring)."""
    return Selection("paper", triggered_val, target)


def scores_at(
    y_val: np.ndarray,
    p_val: np.ndarray,
    p_trig: np.ndarray | None = None,
    target: int = 1,
    threshold: float = PAPER_THRESHOLD,
) -> dict[str, float]:
    """Precision, recall, F1 of class 1 on clean stays and the ASR on triggered ones at `threshold`.

    `p_trig` are the probabilities of triggered stays whose true label differs from `target`.
    Precision / recall are 0 when undefined (no predicted / no true positive).
    """
    y = np.asarray(y_val).astype(bool)
    pred = np.asarray(p_val) >= threshold
    tp = int(np.count_nonzero(pred & y))
    n_pred, n_pos = int(pred.sum()), int(y.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * tp / (n_pred + n_pos) if n_pred + n_pos else 0.0
    out = {"precision": precision, "recall": recall, "f1": f1}
    if p_trig is not None and len(p_trig):
        hit = np.asarray(p_trig) >= threshold
        out["asr"] = float(np.mean(hit if target == 1 else ~hit))
    return out


@dataclass
class EpochChooser:
    """Streaming paper rule: offer each epoch's scores, learn whether it is the pick so far.

    The caller copies the weights whenever `offer` returns True; at the end `chosen` is the picked
    epoch, or None when no epoch passed the gates (then the last epoch is kept: `final_epoch`).
    """

    score: str
    min_precision: float
    min_recall: float
    chosen: int | None = None
    best: float = -np.inf
    last: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def offer(self, epoch: int, scores: dict[str, float]) -> bool:
        self.last = epoch
        ok = scores["precision"] > self.min_precision and scores["recall"] > self.min_recall
        self.history.append({"epoch": epoch, **scores, "qualifies": bool(ok)})
        if ok and scores[self.score] > self.best:
            self.best, self.chosen = float(scores[self.score]), epoch
            return True
        return False

    @property
    def final_epoch(self) -> int:
        return self.chosen if self.chosen is not None else self.last

    def summary(self, rule_name: str | None = None) -> dict[str, Any]:
        return {
            "protocol": "paper",
            "rule": rule_name or self.score,
            "min_precision": self.min_precision,
            "min_recall": self.min_recall,
            "selected_epoch": self.final_epoch,
            "fallback": self.chosen is None,
            "n_qualifying": int(sum(h["qualifies"] for h in self.history)),
            "threshold": PAPER_THRESHOLD,
            "history": self.history,
        }


def make_chooser(selection: Selection, victim: str) -> tuple[EpochChooser, str] | None:
    """An `EpochChooser` for `victim` under `selection` (and its rule name), or None."""
    rule = selection.rule_for(victim)
    if rule is None:
        return None
    score, p_min, r_min = rule
    name = score
    if PAPER_RULES[victim][0] == "asr" and score == "f1":
        name = "f1 (no triggered validation)"
    return EpochChooser(score, p_min, r_min), name


__all__ = [
    "HONEST",
    "PAPER_RULES",
    "PAPER_THRESHOLD",
    "PROTOCOLS",
    "EpochChooser",
    "Selection",
    "as_selection",
    "make_chooser",
    "paper",
    "scores_at",
]
