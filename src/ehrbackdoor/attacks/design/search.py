"""The design search: score every candidate of a space with a surrogate victim the attacker trains.

The realistic attacker edits recorded values, or removes recorded observations, under the same
plausibility rules and budget as the family's trigger, but may choose *which* trigger. It does not
know the victim's model or training run, so every candidate is scored with a surrogate victim
trained on data the attacker holds itself (`attacker_split`: a stratified half of the training
pool the victim never trains on), split into surrogate train / validation / test.

Per candidate: the surrogate is trained on its poisoned surrogate-train stays (threshold on the
clean surrogate validation stays) and measured on the surrogate test stays: attack success
(`asr`), the same trigger's rate on the clean surrogate (`asr_clean_surrogate`: what the
trigger does without any backdoor, e.g. a pattern that looks sicker), clean AUROC cost and the
AUPRC drop on triggered stays. When `detectors` are given (public poison detectors the attacker
runs on its own poisoned surrogate data, e.g. ``ehrbackdoor.defences.make_defence("mask-rarity")``;
passed in as objects so this layer imports no defence), each one's detection AUROC is recorded.

The winner: among candidates with clean AUROC cost <= `max_auroc_cost` and every detection AUROC
<= `max_detection_auroc`, the highest `score` -- ``asr``, or ``lift`` (asr minus the clean
surrogate's rate: the backdoor's own effect); if none qualifies, the smallest summed excess over
the limits. Every random choice comes from `seed`: the same attacker cohort and seed give the same
design.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ehrbackdoor import metrics
from ehrbackdoor.attacks.design.spaces import MissingSpace, TemporalSpace
from ehrbackdoor.attacks.engine import attack_test, poison
from ehrbackdoor.attacks.threat import ThreatModel
from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.checks import check_choice, check_float, check_int
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.splits import stratified_split

#: What the winner maximises: ``asr`` or ``lift`` (asr minus the clean surrogate's rate).
OBJECTIVES = ("asr", "lift")


def attacker_split(train: Cohort, seed: int = 0, share: float = 0.5) -> tuple[Cohort, Cohort]:
    """(attacker's stays, victim's stays): a stratified, seeded, disjoint cut of a training pool.

    The attacker designs on its part only; the victim trains (poisoned) on the other.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share!r}")
    s = stratified_split(train, (share, 1 - share, 0.0), seed)
    return train.subset(train.indices_of(s.train)), train.subset(train.indices_of(s.val))


@dataclass
class Design:
    """The chosen trigger, its parameters and every candidate's surrogate scores;
    `used_stay_ids` are all the stays the search read (the attacker's)."""

    trigger: Trigger
    params: dict[str, Any]
    candidates: list[dict[str, Any]]
    used_stay_ids: np.ndarray
    chosen: int = 0
    fitted_stay_ids: np.ndarray | None = None  # the stays the deployed trigger is fitted on

    @property
    def fitted_ids(self) -> np.ndarray:
        """The stays the deployed trigger is fitted on (all the stays read, unless recorded)."""
        return self.used_stay_ids if self.fitted_stay_ids is None else self.fitted_stay_ids

    @property
    def feasible(self) -> bool:
        """Whether the chosen candidate met every limit (else: the least excess was chosen)."""
        return self.candidates[self.chosen]["excess"] == 0

    def frontier(self) -> list[int]:
        """Indices of the candidates no other candidate beats on both surrogate ASR and its
        strongest detector's AUROC (higher ASR at no higher detection), by rising detection: the
        efficacy-stealth frontier of the search itself, what a stricter or looser detection limit
        would have bought."""
        pts = [
            (max(c["detection_auroc"].values(), default=float("nan")), c["asr"], i)
            for i, c in enumerate(self.candidates)
        ]
        pts = [p for p in pts if np.isfinite(p[0]) and np.isfinite(p[1])]
        out, best = [], -np.inf
        for _det, asr, i in sorted(pts, key=lambda p: (p[0], -p[1], p[2])):
            if asr > best:
                out.append(i)
                best = asr
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "chosen": self.chosen,
            "feasible": self.feasible,
            "frontier": self.frontier(),
            "candidates": self.candidates,
            "n_used_stays": int(len(self.used_stay_ids)),
            "n_fitted_stays": int(len(self.fitted_ids)),
        }


def _over(value: float, limit: float) -> float:
    """How far `value` exceeds `limit`; an undefined value (NaN) counts as the largest possible
    excess, 1, since it cannot be shown to meet the limit."""
    return max(value - limit, 0.0) if np.isfinite(value) else 1.0


def _surrogate(name: str, train: Cohort, val: Cohort, seed: int, params: dict | None):
    from ehrbackdoor.victims import make_victim

    return make_victim(name, seed=seed, **(params or {})).fit(train, val)


def _detection(
    detectors: Mapping[str, Any], poisoned: Cohort, model: Any, reference: Cohort
) -> dict[str, float]:
    """Detection AUROC of each detector at finding the poisoned stays of `poisoned`."""
    out = {}
    for name, det in detectors.items():
        scores = det.score(poisoned, model if det.needs_victim else None, reference=reference)
        out[name] = float(metrics.auroc(poisoned.modified.astype(np.int64), scores))
    return out


def design_trigger(
    attacker: Cohort,
    threat: ThreatModel,
    space: TemporalSpace | MissingSpace | None = None,
    surrogate: str = "lr",
    surrogate_params: dict | None = None,
    max_auroc_cost: float = 0.01,
    detectors: Mapping[str, Any] | None = None,
    max_detection_auroc: float = 0.65,
    objective: str = "asr",
    seed: int = 0,
) -> Design:
    """Search `space` (default: the temporal family's) on the attacker's stays only and return
    the best candidate (module docstring). The attacker cohort is cut (stratified, `seed`) into
    surrogate train / val / test (0.6 / 0.2 / 0.2)."""
    space = space or TemporalSpace()
    seed = check_int("seed", seed, 0)
    objective = check_choice("objective", objective, OBJECTIVES)
    max_auroc_cost = check_float("max_auroc_cost", max_auroc_cost)
    max_detection_auroc = check_float("max_detection_auroc", max_detection_auroc, 0.0, 1.0)
    parts = stratified_split(attacker, (0.6, 0.2, 0.2), seed).apply(attacker)
    s_train, s_val, s_test = parts["train"], parts["val"], parts["test"]
    y_test = s_test.label.astype(np.int64)
    clean = _surrogate(surrogate, s_train, s_val, seed, surrogate_params)
    p_clean = clean.predict_proba(s_test)
    clean_auroc = metrics.auroc(y_test, p_clean)
    candidates: list[dict[str, Any]] = []
    triggers: list[Trigger] = []
    for desc, trig in space.candidates(s_train, seed):
        poisoned = poison(s_train, trig, threat).cohort
        model = _surrogate(surrogate, poisoned, s_val, seed, surrogate_params)
        attacked, idx = attack_test(s_test, trig, threat)
        p_test, p_att = model.predict_proba(s_test), model.predict_proba(attacked)
        asr = metrics.attack_success_rate(y_test[idx], p_att[idx], model.threshold_, threat.target)
        base = metrics.attack_success_rate(
            y_test[idx], clean.predict_proba(attacked)[idx], clean.threshold_, threat.target
        )
        cost = clean_auroc - metrics.auroc(y_test, p_test)
        detection = _detection(detectors or {}, poisoned, model, s_val)
        excess = _over(cost, max_auroc_cost) + sum(
            _over(a, max_detection_auroc) for a in detection.values()
        )
        candidates.append(
            {
                **desc,
                "asr": float(asr),
                "asr_clean_surrogate": float(base),
                "lift": float(asr - base),
                "auroc_cost": float(cost),
                "auprc_drop": float(metrics.auprc(y_test, p_test) - metrics.auprc(y_test, p_att)),
                "detection_auroc": detection,
                "excess": float(excess),
            }
        )
        triggers.append(trig)
    if not candidates:
        raise ValueError("the design space has no candidate")
    ok = [i for i, c in enumerate(candidates) if c["excess"] == 0]
    if ok:
        best = max(ok, key=lambda i: (candidates[i][objective], -i))
    else:
        best = min(
            range(len(candidates)),
            key=lambda i: (candidates[i]["excess"], -candidates[i][objective], i),
        )
    params = candidates[best]["params"]
    trigger, fitted_on = space.final(attacker, params, triggers[best], s_train)
    return Design(
        trigger, dict(params), candidates, attacker.stay_id.copy(), best, fitted_on.stay_id.copy()
    )
