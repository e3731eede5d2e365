"""Model-agnostic trigger design: search the temporal family under a fixed budget with a surrogate.

The realistic attacker edits recorded values under the same plausibility rules and Mahalanobis
budget (`strength`) as any temporal trigger, but may choose *which* trigger: which covariance
draw, how many leading eigen-shapes carry it (`rank`) and which variables (all, or only densely
charted ones). It does not know the victim's model or training run, so every candidate is scored
with a surrogate victim trained on data the attacker holds itself (`attacker_split`: a stratified
half of the training pool the victim never trains on), split into surrogate train / validation /
test; the score is the surrogate's attack success rate at its clean-validation threshold, among
candidates whose clean AUROC cost on the surrogate's test part is at most `max_auroc_cost` and,
when `detectors` are given (public poison detectors the attacker runs on its own poisoned
surrogate data, e.g. ``ehrbackdoor.defences.make_defence("isolation-forest")``), whose detection
AUROC with every one is at most `max_detection_auroc`. Detectors are passed in as objects, so
this layer imports no defence.

The chosen trigger is returned fitted on the attacker's stays (its covariances come from them), so
applying it to the victim's data reads nothing the attacker does not hold. Every random choice
comes from `seed`: the same attacker cohort and seed give the same design.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ehrbackdoor import metrics
from ehrbackdoor.attacks.engine import attack_test, poison
from ehrbackdoor.attacks.threat import ThreatModel
from ehrbackdoor.attacks.triggers import make_trigger
from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.checks import check_int
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.splits import stratified_split
from ehrbackdoor.preprocess.grid import grid_raw


def attacker_split(train: Cohort, seed: int = 0, share: float = 0.5) -> tuple[Cohort, Cohort]:
    """(attacker's stays, victim's stays): a stratified, seeded, disjoint cut of a training pool.

    The attacker designs on its part only; the victim trains (poisoned) on the other.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share!r}")
    s = stratified_split(train, (share, 1 - share, 0.0), seed)
    return train.subset(train.indices_of(s.train)), train.subset(train.indices_of(s.val))


def dense_variables(cohort: Cohort, min_share: float = 0.25) -> list[str]:
    """Continuous/ordinal variables recorded in at least `min_share` of the 48 hours on average
    over the stays that record them at all (vitals charted hourly: they carry a pattern)."""
    mask = grid_raw(cohort, impute="none").mask
    hours = mask.sum(axis=1)  # (n, F)
    out = []
    for j, v in enumerate(cohort.schema.variables):
        rec = hours[:, j] > 0
        if v.kind.value != "binary" and rec.any() and hours[rec, j].mean() / 48 >= min_share:
            out.append(v.name)
    return out


@dataclass(frozen=True)
class DesignSpace:
    """Candidates: every (rank, variable set) pair with `n_draws` covariance draws each.

    `ranks`: eigen-shapes per variable (None = the full 48-dimensional draw). `variable_sets`:
    "all" (every non-binary variable) and/or "dense" (`dense_variables` of the attacker's data).
    """

    ranks: tuple[int | None, ...] = (1, 2, 3, None)
    variable_sets: tuple[str, ...] = ("all", "dense")
    n_draws: int = 4
    params: dict[str, Any] = field(default_factory=dict)  # fixed temporal parameters

    def __post_init__(self) -> None:
        check_int("n_draws", self.n_draws, 1)
        bad = [s for s in self.variable_sets if s not in ("all", "dense")]
        if bad or not self.variable_sets:
            raise ValueError(f"variable_sets must be 'all' and/or 'dense', got {bad}")


@dataclass
class Design:
    """The chosen trigger (fitted on the attacker's stays), its parameters and every candidate's
    surrogate scores; `used_stay_ids` are all the stays the search read."""

    trigger: Trigger
    params: dict[str, Any]
    candidates: list[dict[str, Any]]
    used_stay_ids: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "candidates": self.candidates,
            "n_used_stays": int(len(self.used_stay_ids)),
        }


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
    strength: float = 2.0,
    space: DesignSpace | None = None,
    surrogate: str = "lr",
    surrogate_params: dict | None = None,
    max_auroc_cost: float = 0.01,
    detectors: Mapping[str, Any] | None = None,
    max_detection_auroc: float = 0.65,
    seed: int = 0,
) -> Design:
    """Search `space` on the attacker's stays only and return the best temporal trigger.

    The attacker cohort is cut (stratified, `seed`) into surrogate train / val / test
    (0.6 / 0.2 / 0.2); each candidate is fit on surrogate train, poisons it with `threat`, and a
    `surrogate` victim is trained on it (threshold on surrogate val); the score is its ASR on the
    surrogate test stays. The winner: the highest ASR among candidates within both limits (clean
    AUROC cost, detection AUROC of each detector on the poisoned surrogate training stays with
    surrogate val as the trusted reference), else the candidate with the smallest summed excess.
    It is refit on the whole attacker cohort.
    """
    space = space or DesignSpace()
    seed = check_int("seed", seed, 0)
    parts = stratified_split(attacker, (0.6, 0.2, 0.2), seed).apply(attacker)
    s_train, s_val, s_test = parts["train"], parts["val"], parts["test"]
    y_test = s_test.label.astype(np.int64)
    clean = _surrogate(surrogate, s_train, s_val, seed, surrogate_params)
    clean_auroc = metrics.auroc(y_test, clean.predict_proba(s_test))
    dense = dense_variables(s_train) if "dense" in space.variable_sets else []
    draw_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, space.n_draws)
    candidates: list[dict[str, Any]] = []
    for vset in space.variable_sets:
        for rank in space.ranks:
            for ds in draw_seeds:
                params = {
                    **space.params,
                    "rank": rank,
                    "seed": int(ds),
                    "variables": dense if vset == "dense" else None,
                }
                trig = make_trigger("temporal", strength=strength, **params).fit(s_train)
                poisoned = poison(s_train, trig, threat).cohort
                model = _surrogate(surrogate, poisoned, s_val, seed, surrogate_params)
                attacked, idx = attack_test(s_test, trig, threat)
                p_att = model.predict_proba(attacked)[idx]
                asr = metrics.attack_success_rate(
                    y_test[idx], p_att, model.threshold_, threat.target
                )
                cost = clean_auroc - metrics.auroc(y_test, model.predict_proba(s_test))
                base = metrics.attack_success_rate(
                    y_test[idx], clean.predict_proba(attacked)[idx], clean.threshold_, threat.target
                )
                detection = _detection(detectors or {}, poisoned, model, s_val)
                excess = max(cost - max_auroc_cost, 0.0) + sum(
                    max(a - max_detection_auroc, 0.0) for a in detection.values()
                )
                candidates.append(
                    {
                        "variable_set": vset,
                        "params": params,
                        "asr": float(asr),
                        "asr_clean_surrogate": float(base),
                        "auroc_cost": float(cost),
                        "detection_auroc": detection,
                        "excess": float(excess),
                    }
                )
    ok = [c for c in candidates if c["excess"] == 0]
    best = (
        max(ok, key=lambda c: c["asr"])
        if ok
        else min(candidates, key=lambda c: (c["excess"], -c["asr"]))
    )
    trigger = make_trigger("temporal", strength=strength, **best["params"]).fit(attacker)
    return Design(
        trigger, {"strength": strength, **best["params"]}, candidates, attacker.stay_id.copy()
    )
