"""One cell of a backdoor study: poison, train the victims and their clean baselines, evaluate,
defend. `run_attack`, `run_audit` and the experiment runner's steps all evaluate cells here, so
the three can never drift apart.

A cell is described by one `AttackConfig` (trigger family and parameters, threat model, seed).
Every field of it reaches the results: `AttackConfig.to_dict` (the `attack` entry of
results.json / audit.json) and `AttackConfig.from_setting` (the experiment planner's settings)
both derive from the dataclass fields, so a new threat-model axis is one new field here plus the
code that honours it.

Flow (`run_cell`): the trigger is fit on the clean training stays and one poisoned training cohort
and one attacked test cohort are built (`build_attack`; the runner does this once per setting and
shares it); each victim is trained on the poisoned cohort and, with the same seed, on the clean
cohort (the baseline; the runner passes shared fitted baselines), and both are evaluated on the
clean and attacked test cohorts (`evaluate_attacked`); with a `DefenceSpec`, every detector
scores the poisoned training stays and its top-k stays are removed and the victims retrained
(`defend`, in `ehrbackdoor.pipeline.defend`).

Three axes of Joe et al. (2021)'s faithful reproduction run through here (`pipeline.protocols`):
`AttackConfig.space` (``raw`` events or the victims' hourly ``grid``; in grid space window-feature
victims use hourly statistics, poisoned and baseline alike), `AttackConfig.protocol` (``honest``:
epoch and threshold from clean validation data only; ``paper``: threshold 0.5 and the paper's
epoch rule, the same rule and triggered validation stays for the poisoned victim and its
baseline) and the run's `victim_preset` (``tuned`` or ``paper`` hyperparameters).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from ehrbackdoor import metrics
from ehrbackdoor.attacks import Poisoned, ThreatModel, attack_test, make_trigger, poison
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.pipeline.defend import (
    DefenceSpec,
    StepFn,
    _no_step,
    defence_columns,
    defend,
    jsonable,
    without_trigger,
)
from ehrbackdoor.pipeline.protocols import (
    check_protocol,
    selection_summary,
    selections_for,
    victim_params_for,
)
from ehrbackdoor.victims import fit as _fit

__all__ = [
    "AttackConfig",
    "AttackData",
    "CellResult",
    "DefenceSpec",
    "StepFn",
    "VictimResult",
    "backdoor_summary",
    "build_attack",
    "defence_columns",
    "defend",
    "evaluate_attacked",
    "jsonable",
    "metric_columns",
    "pick_columns",
    "run_cell",
]


@dataclass(frozen=True)
class AttackConfig:
    """Everything that defines an attack: the trigger family and its parameters plus the threat
    model (target, rate, selection, apply mode, space) and the evaluation protocol. `seed` drives
    the trigger draw, the choice of poisoned stays and the victims' initialisation.

    - `space`: ``raw`` (default) edits raw events; ``grid`` adds the trigger to the victims'
      hourly bins (Joe et al. 2021; `ehrbackdoor.attacks.threat.ThreatModel`).
    - `protocol`: ``honest`` (default) or ``paper`` (`ehrbackdoor.victims.protocol`).
    """

    attack: str = "temporal"
    target: int = 1
    rate: float = 0.02
    apply: str = "observed"
    selection: str = "non-target"
    seed: int = 0
    trigger_params: dict[str, Any] = field(default_factory=dict)
    space: str = "raw"
    protocol: str = "honest"

    #: Names of the experiment planner's setting keys that differ from the field names.
    SETTING_NAMES = {"attack": "trigger"}

    @classmethod
    def from_setting(cls, setting: Mapping[str, Any], seed: int) -> AttackConfig:
        """The attack of one experiment setting (`AttackSpec.settings`) and seed: every field is
        read from the setting key of the same name (`trigger` for the family), so a field added
        here is picked up from the planner without further edits."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            key = cls.SETTING_NAMES.get(f.name, f.name)
            if f.name == "seed":
                kw["seed"] = int(seed)
            elif key in setting:
                value = setting[key]
                kw[f.name] = dict(value) if isinstance(value, Mapping) else value
        return cls(**kw)

    def __post_init__(self) -> None:
        check_protocol(self.protocol)
        clash = sorted(set(self.trigger_params) & {f.name for f in fields(self)})
        if clash:  # to_dict flattens the parameters in: a clash would overwrite a field
            raise ValueError(f"trigger_params must not set attack fields {clash}")

    def threat(self) -> ThreatModel:
        return ThreatModel(
            self.target, self.rate, self.selection, self.apply, self.seed, self.space
        )

    def make_trigger(self):
        return make_trigger(self.attack, seed=self.seed, **self.trigger_params)

    def to_dict(self) -> dict[str, Any]:
        """Every field, with the trigger parameters flattened in (results.json `attack`)."""
        d = asdict(self)
        params = d.pop("trigger_params")
        return {**d, **params}


# ------------------------------------------------------------------------------------ poison
@dataclass(frozen=True)
class AttackData:
    """What one attack setting produces, shared by every victim it is run against: the fitted
    trigger, the poisoned training cohort, the attacked test cohort and its triggered positions."""

    trigger: Any
    poisoned: Poisoned
    attacked: Cohort
    triggered_idx: np.ndarray
    seconds: float


def build_attack(
    config: AttackConfig, train: Cohort, test: Cohort, trigger: Any | None = None
) -> AttackData:
    """Fit the trigger on the clean training stays (unless a fitted `trigger` is given), poison
    them and attack the test stays."""
    threat = config.threat()
    t0 = time.perf_counter()
    if trigger is None:
        threat.check_trigger(config.attack)  # a bad apply mode fails before the fit
        trigger = config.make_trigger().fit(train)
    poisoned = poison(train, trigger, threat)
    attacked, triggered_idx = attack_test(test, trigger, threat)
    return AttackData(trigger, poisoned, attacked, triggered_idx, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------- evaluate
def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auroc": metrics.auroc(y, p), "auprc": metrics.auprc(y, p)}


def evaluate_attacked(
    victim,
    baseline,
    test: Cohort,
    attacked: Cohort,
    triggered_idx: np.ndarray,
    val: Cohort,
    target: int,
    seed: int,
    n_bootstrap: int = 1000,
) -> dict[str, Any]:
    """Metrics of one victim trained on poisoned data and its clean-trained baseline: clean and
    triggered AUROC/AUPRC, attack success rate (with a bootstrap CI; none with
    ``n_bootstrap=0``) at the victim's clean validation threshold, and the baseline's success
    rate (the trigger's effect without poisoning).
    """
    y_test = test.label.astype(np.int64)
    y_val = val.label.astype(np.int64)
    p_clean = victim.predict_proba(test)
    p_att = victim.predict_proba(attacked)
    p_base = baseline.predict_proba(test)
    p_base_att = baseline.predict_proba(attacked)
    y_trig = y_test[triggered_idx]
    asr = metrics.attack_success_rate(y_trig, p_att[triggered_idx], victim.threshold_, target)
    asr_ci = asr_baseline_ci = (float("nan"), float("nan"))
    if n_bootstrap > 0:
        asr_ci = metrics.attack_success_ci(
            y_trig,
            p_att[triggered_idx],
            victim.threshold_,
            target,
            n_resamples=n_bootstrap,
            seed=seed,
        )
        asr_baseline_ci = metrics.attack_success_ci(  # the same trigger, unpoisoned model
            y_trig,
            p_base_att[triggered_idx],
            baseline.threshold_,
            target,
            n_resamples=n_bootstrap,
            seed=seed,
        )
    return {
        "clean": _scores(y_test, p_clean),
        "clean_baseline": _scores(y_test, p_base),
        "triggered": _scores(y_test, p_att),
        "triggered_baseline": _scores(y_test, p_base_att),
        "asr": asr,
        "asr_ci": list(asr_ci),
        "asr_baseline": metrics.attack_success_rate(
            y_trig, p_base_att[triggered_idx], baseline.threshold_, target
        ),
        "asr_baseline_ci": list(asr_baseline_ci),
        "threshold": float(victim.threshold_),
        "threshold_baseline": float(baseline.threshold_),
        "val_auprc": metrics.auprc(y_val, victim.predict_proba(val)),
    }


def backdoor_summary(res: dict[str, Any], baseline: bool = False) -> dict[str, float]:
    """{"asr", "clean_auroc", "clean_auprc"} of the victim (or its baseline) from
    `evaluate_attacked` (the numbers `defences.evaluate.backdoor_metrics` gives)."""
    if baseline:
        s = res["clean_baseline"]
        return {"asr": res["asr_baseline"], "clean_auroc": s["auroc"], "clean_auprc": s["auprc"]}
    s = res["clean"]
    return {"asr": res["asr"], "clean_auroc": s["auroc"], "clean_auprc": s["auprc"]}


def pick_columns(res: Mapping[str, Any], paths: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Flat columns out of a nested result: each column's value is found by following its path
    of keys (or indices) from `res`, so results stores name every measure once."""
    out: dict[str, Any] = {}
    for column, path in paths.items():
        value: Any = res
        for key in path:
            value = value[key]
        out[column] = value
    return out


_ATTACK_COLUMNS = {
    "asr": ("asr",),
    "asr_ci_low": ("asr_ci", 0),
    "asr_ci_high": ("asr_ci", 1),
    "asr_baseline": ("asr_baseline",),
}
_SCORE_COLUMNS = {
    f"{prefix}_{score}": (entry, score)
    for prefix, entry in (
        ("clean", "clean"),
        ("triggered", "triggered"),
        ("baseline", "clean_baseline"),
        ("baseline_triggered", "triggered_baseline"),
    )
    for score in ("auroc", "auprc")
}
_THRESHOLD_COLUMNS = {
    "threshold": ("threshold",),
    "threshold_baseline": ("threshold_baseline",),
    "val_auprc": ("val_auprc",),
}


def metric_columns(res: dict[str, Any]) -> dict[str, float]:
    """The flat metric columns of one victim's `evaluate_attacked` result (results store)."""
    baseline_ci = res.get("asr_baseline_ci", (float("nan"),) * 2)
    return {
        **pick_columns(res, _ATTACK_COLUMNS),
        "asr_baseline_ci_low": baseline_ci[0],
        "asr_baseline_ci_high": baseline_ci[1],
        **pick_columns(res, _SCORE_COLUMNS),
        "auroc_cost": res["clean_baseline"]["auroc"] - res["clean"]["auroc"],
        "auprc_cost": res["clean_baseline"]["auprc"] - res["clean"]["auprc"],
        **pick_columns(res, _THRESHOLD_COLUMNS),
        **_selected_epochs(res),
    }


def _selected_epochs(res: dict[str, Any]) -> dict[str, Any]:
    """The selected epochs of victim and baseline, as columns under the paper protocol only (the
    honest protocol's columns stay as they were)."""
    info, base = res.get("victim_info") or {}, res.get("baseline_info") or {}
    if info.get("selection", {}).get("protocol") != "paper":
        return {}
    return {
        "selected_epoch": info.get("selected_epoch"),
        "selected_epoch_baseline": base.get("selected_epoch"),
    }


# -------------------------------------------------------------------------------------- cell
@dataclass
class VictimResult:
    """One victim of a cell: the fitted poisoned victim and baseline and their metrics."""

    victim: Any
    baseline: Any
    metrics: dict[str, Any]  # evaluate_attacked
    train_seconds: float
    baseline_seconds: float | None  # None when a fitted baseline was passed in


@dataclass
class CellResult:
    victims: dict[str, VictimResult]
    defences: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    inspect: str | None = None
    eval_seconds: float = 0.0
    defence_seconds: float = 0.0


def run_cell(
    config: AttackConfig,
    train: Cohort,
    val: Cohort,
    test: Cohort,
    attack: AttackData | None,
    models: Sequence[str],
    *,
    victim_params: Mapping[str, dict] | None = None,
    baselines: Mapping[str, Any] | None = None,
    n_bootstrap: int = 1000,
    defence: DefenceSpec | None = None,
    detectors: Mapping[str, Any] | None = None,
    inspect: str | None = None,
    shared_scores: Mapping[str, np.ndarray] | None = None,
    on_step: StepFn | None = None,
    victim_preset: str = "tuned",
) -> tuple[AttackData, CellResult]:
    """Evaluate one attack against `models` (module docstring).

    - `attack`: the poisoned / attacked cohorts (None: built here from `train` and `test`); the
      paper protocol needs its fitted trigger for lr / mlp (triggered validation stays).
    - `victim_params`: hyperparameters by victim name, over the `victim_preset` ("tuned" or
      "paper"); in grid space window-feature victims get ``features="hourly"`` (noted in the
      victim's `notes`).
    - `baselines`: fitted clean baselines by victim name (the rest are trained here), trained
      with the same parameters and selection as the poisoned victims.
    - `defence` (or ready `detectors` with it): defend; model-level detectors inspect
      `inspect` (default: the first model), trained on the poisoned cohort if not in `models`.
    """
    models = list(models)
    if not models:
        raise ValueError("models must name at least one victim")
    step = on_step or _no_step
    if attack is None:
        step(f"fitting {config.attack} trigger")
        attack = build_attack(config, train, test)
    setup = {
        n: victim_params_for(n, (victim_params or {}).get(n), victim_preset, config.space)
        for n in dict.fromkeys([*models, inspect or models[0]])
    }
    vp = {n: p for n, (p, _) in setup.items()}
    threat = config.threat()
    sel = selections_for(config.protocol, list(setup), val, attack.trigger, threat)
    cohort = attack.poisoned.cohort
    victims: dict[str, VictimResult] = {}
    eval_seconds = 0.0
    for name in models:
        step(f"{name}: training on the poisoned cohort")
        victim, secs = _fit.fit_victim(
            name, cohort, val, config.seed, vp[name], selection=sel[name]
        )
        base_secs = None
        base = (baselines or {}).get(name)
        if base is None:
            step(f"{name}: training the clean baseline")
            base, base_secs = _fit.fit_victim(
                name, train, val, config.seed, vp[name], selection=sel[name]
            )
        t0 = time.perf_counter()
        res = evaluate_attacked(
            victim,
            base,
            test,
            attack.attacked,
            attack.triggered_idx,
            val,
            config.target,
            config.seed,
            n_bootstrap,
        )
        res["victim_info"] = selection_summary(victim)
        res["baseline_info"] = selection_summary(base)
        if setup[name][1]:
            res["notes"] = setup[name][1]
        eval_seconds += time.perf_counter() - t0
        victims[name] = VictimResult(victim, base, res, secs, base_secs)
    result = CellResult(victims, eval_seconds=eval_seconds)
    if defence is None:
        return attack, result
    t0 = time.perf_counter()
    detectors = detectors if detectors is not None else defence.detectors(config.seed)
    inspect = inspect or models[0]
    inspected = victims[inspect].victim if inspect in victims else None
    if inspected is None and any(d.needs_victim for d in detectors.values()):
        step(f"{inspect}: training the inspected victim on the poisoned cohort")
        inspected = _fit.fit_victim(
            inspect, cohort, val, config.seed, vp[inspect], selection=sel[inspect]
        )[0]
    result.defences, result.scores = defend(
        config,
        detectors,
        cohort,
        val,
        test,
        attack.attacked,
        attack.triggered_idx,
        models,
        inspected,
        inspect,
        vp,
        defence.k_factor,
        defence.mitigation,
        shared_scores,
        step,
        sel,
        no_trigger=(
            without_trigger(train, cohort, attack.poisoned.indices) if defence.baseline else None
        ),
    )
    result.inspect = inspect
    result.defence_seconds = time.perf_counter() - t0
    return attack, result
