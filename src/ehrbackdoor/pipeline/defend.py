"""Defend one cell: every detector scores the poisoned training stays, is judged against the
ground truth and, with mitigation, its most suspicious stays are removed and the victims retrained
(`defend`). Used by `run_cell` (and so by `run_audit` and the experiment runner's cells).

Retraining uses the cell's victim parameters and the same selection (protocol) as the victim it
replaces, so "after" is comparable with "before".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.victims import fit as _fit

if TYPE_CHECKING:
    from ehrbackdoor.pipeline.cell import AttackConfig

StepFn = Callable[[str], None]


def _no_step(_msg: str) -> None:
    pass


@dataclass(frozen=True)
class DefenceSpec:
    """Which detectors defend a cell and how: registry names, per-detector constructor
    parameters (every detector's seed defaults to the attack seed), the mitigation budget factor
    (``ceil(k_factor * rate * n_train)`` stays removed) and whether to retrain at all."""

    names: tuple[str, ...]
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    k_factor: float = 1.5
    mitigation: bool = True
    baseline: bool = False  # also score the poisoned stays without their trigger (data-level)

    def __post_init__(self) -> None:
        from ehrbackdoor.checks import check_float

        check_float("k_factor", self.k_factor, 0.0, low_open=True)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> DefenceSpec:
        """From `ExperimentConfig.defence_spec()` ({names, params, k_factor})."""
        return cls(
            tuple(spec["names"]),
            dict(spec.get("params") or {}),
            spec["k_factor"],
            bool(spec.get("mitigation", True)),
            bool(spec.get("baseline", False)),
        )

    def detectors(self, seed: int) -> dict[str, Any]:
        from ehrbackdoor.defences import make_defence

        return {n: make_defence(n, **{"seed": seed, **self.params.get(n, {})}) for n in self.names}


def jsonable(obj: Any) -> Any:
    """NumPy values and tuples as plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


#: Suffix of a detector's scores of the poisoned stays without their trigger (shared scores).
NO_TRIGGER = "@no-trigger"


def without_trigger(clean_train: Cohort, poisoned: Cohort, idx: np.ndarray) -> Cohort:
    """The clean training stays with the poisoned stays' labels (positions `idx`) and the same
    stays marked as the ones to find, but no trigger in their records: what a detector finds
    here comes from the choice of stays and the label flips alone."""
    idx = np.asarray(idx, dtype=np.int64)
    if len(idx) == 0:
        return clean_train
    return clean_train.with_labels(idx, int(poisoned.label[idx[0]]))  # one target label


def defend(
    config: AttackConfig,
    detectors: Mapping[str, Any],
    poisoned: Cohort,
    val: Cohort,
    test: Cohort,
    attacked: Cohort,
    triggered_idx: np.ndarray,
    models: Sequence[str],
    inspected: Any = None,
    inspect: str | None = None,
    victim_params: Mapping[str, dict] | None = None,
    k_factor: float = 1.5,
    mitigation: bool = True,
    shared_scores: Mapping[str, np.ndarray] | None = None,
    on_step: StepFn | None = None,
    selections: Mapping[str, Any] | None = None,
    no_trigger: Cohort | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Every detector scores the poisoned training stays (model-level detectors inspect the
    fitted `inspected` victim; scores in `shared_scores` are reused), is judged against the
    ground truth, and with `mitigation` its top-k stays are removed and `models` retrained with
    the attack seed. With `no_trigger` (`without_trigger`), every data-level detector also scores
    the poisoned stays without their trigger (`auroc_no_trigger`: what the selection and labels
    alone give away). Returns the entry of each detector (audit.json `defences`) and its scores."""
    from ehrbackdoor.defences.evaluate import default_budget, detection_metrics, mitigate

    step = on_step or _no_step
    shared = shared_scores or {}
    is_poison = np.asarray(poisoned.modified, dtype=bool).copy()
    k = default_budget(poisoned.n_stays, config.rate, k_factor)
    results: dict[str, dict[str, Any]] = {}
    all_scores: dict[str, np.ndarray] = {}
    for name, det in detectors.items():
        step(f"{name}: scoring {poisoned.n_stays} training stays")
        t0 = time.perf_counter()
        if name in shared:
            scores = shared[name]
        else:
            victim = inspected if det.needs_victim else None
            scores = det.score(poisoned, victim, reference=val)
        all_scores[name] = scores
        entry: dict[str, Any] = {
            "family": det.family,
            "params": det.get_params(),
            **detection_metrics(is_poison, scores),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if det.needs_victim and inspect is not None:
            entry["victim"] = inspect
        if no_trigger is not None and det.family == "data":
            bare = shared.get(name + NO_TRIGGER)
            if bare is None:
                bare = det.score(no_trigger, None, reference=val)
            entry["auroc_no_trigger"] = detection_metrics(is_poison, bare)["auroc"]
        if mitigation:
            step(f"{name}: removing the most suspicious stays and retraining")
            entry.update(
                mitigate(
                    poisoned,
                    scores,
                    det.removal_count(poisoned, k),
                    list(models),
                    val,
                    test,
                    attacked,
                    triggered_idx,
                    config.target,
                    config.seed,
                    dict(victim_params or {}),
                    fit=_refit(selections or {}),
                )
            )
        entry["info"] = jsonable(getattr(det, "info_", {}))
        results[name] = entry
    return results, all_scores


def _refit(selections: Mapping[str, Any]):
    """The retraining function of mitigation: each victim with its own selection."""

    def fit_only(name: str, train: Cohort, val: Cohort, seed: int, params: dict | None):
        return _fit.fit_victim(name, train, val, seed, params, selection=selections.get(name))[0]

    return fit_only


def defence_columns(defences: Mapping[str, dict[str, Any]], victim: str) -> dict[str, Any]:
    """Flat ``defence_<name>_<metric>`` columns of `defend`'s entries for one victim: detection
    metrics and, after mitigation, its ASR and clean AUROC / AUPRC."""
    out: dict[str, Any] = {}
    for name, d in defences.items():
        key = "defence_" + name.replace("-", "_")
        for m in ("auroc", "tpr_at_5fpr", "precision_at_k"):
            out[f"{key}_{m}"] = d.get(m)
        if "auroc_no_trigger" in d:
            out[f"{key}_auroc_no_trigger"] = d["auroc_no_trigger"]
        after = d.get("after", {}).get(victim)
        if after is not None:
            out[f"{key}_asr_after"] = after["asr"]
            out[f"{key}_clean_auroc_after"] = after["clean_auroc"]
            out[f"{key}_clean_auprc_after"] = after["clean_auprc"]
    return out
