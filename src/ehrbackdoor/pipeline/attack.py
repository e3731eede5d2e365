"""One backdoor attack against several victims at once: `ehrbackdoor attack`.

The trigger is fit on the clean training stays; one poisoned training cohort is built and every
victim is trained on it and, with the same seed, on the clean cohort (the baseline that shows the
clean-performance cost of poisoning). Every victim is evaluated on the clean test cohort and on the
attacked test cohort (trigger on each test stay whose true label differs from the target, labels
unchanged). Thresholds come from clean validation data only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ehrbackdoor import metrics
from ehrbackdoor.attacks import Poisoned, ThreatModel, attack_test, make_trigger, poison
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.io import atomic_write_json
from ehrbackdoor.pipeline.prepare import Prepared, prepare_data
from ehrbackdoor.pipeline.train import fit_victim

StepFn = Callable[[str], None]


@dataclass(frozen=True)
class AttackConfig:
    """Everything that defines an attack: the trigger family and its parameters plus the threat
    model (target, rate, selection, apply mode). `seed` drives the trigger draw, the choice of
    poisoned stays and the victims' initialisation."""

    attack: str = "temporal"
    target: int = 1
    rate: float = 0.02
    apply: str = "observed"
    selection: str = "non-target"
    seed: int = 0
    trigger_params: dict[str, Any] = field(default_factory=dict)

    def threat(self) -> ThreatModel:
        return ThreatModel(self.target, self.rate, self.selection, self.apply, self.seed)

    def make_trigger(self):
        return make_trigger(self.attack, seed=self.seed, **self.trigger_params)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        params = d.pop("trigger_params")
        return {**d, **params}


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auroc": metrics.auroc(y, p), "auprc": metrics.auprc(y, p)}


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
        trigger = config.make_trigger().fit(train)
    poisoned = poison(train, trigger, threat)
    attacked, triggered_idx = attack_test(test, trigger, threat)
    return AttackData(trigger, poisoned, attacked, triggered_idx, time.perf_counter() - t0)


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
    triggered AUROC/AUPRC, attack success rate (with a bootstrap CI) at the victim's clean
    validation threshold, and the baseline's success rate (the trigger's effect without poisoning).
    """
    y_test = test.label.astype(np.int64)
    y_val = val.label.astype(np.int64)
    p_clean = victim.predict_proba(test)
    p_att = victim.predict_proba(attacked)
    p_base = baseline.predict_proba(test)
    p_base_att = baseline.predict_proba(attacked)
    y_trig = y_test[triggered_idx]
    asr = metrics.attack_success_rate(y_trig, p_att[triggered_idx], victim.threshold_, target)
    asr_ci = metrics.attack_success_ci(
        y_trig,
        p_att[triggered_idx],
        victim.threshold_,
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
        "threshold": float(victim.threshold_),
        "threshold_baseline": float(baseline.threshold_),
        "val_auprc": metrics.auprc(y_val, victim.predict_proba(val)),
    }


def missing_stealth(trigger, prep: Prepared, attacked, triggered_idx, seed: int) -> dict | None:
    """Stealth measures of a missing-value trigger: the triggered test stays against the same
    stays before the trigger, the rarity detector fit on clean training masks. None for value
    triggers (their stealth is measured by `ehrbackdoor audit`)."""
    from ehrbackdoor.attacks.stealth import missingness_stealth
    from ehrbackdoor.attacks.triggers.missing import MissingTrigger

    if not isinstance(trigger, MissingTrigger):
        return None
    return missingness_stealth(
        prep.test.subset(triggered_idx),
        attacked.subset(triggered_idx),
        getattr(trigger, "vae_", None),
        trigger.pattern_,
        reference=prep.train,
        seed=seed,
    )


def run_attack(
    config: AttackConfig,
    models: Sequence[str],
    data: str | Path | Prepared,
    out: str | Path | None = None,
    test_data: str | Path | None = None,
    split_seed: int = 0,
    n_bootstrap: int = 1000,
    victim_params: dict[str, dict] | None = None,
    on_step: StepFn | None = None,
) -> dict:
    """Run one attack against `models`; returns (and writes to `out/results.json`) the results.

    `out` also receives the trigger (`trigger/`), the poisoned stays (`poisoned.json`) and the split
    (`splits.json`) so the run can be reproduced and audited.
    """
    if not models:
        raise ValueError("models must name at least one victim")
    step = on_step or (lambda _msg: None)
    prep = data if isinstance(data, Prepared) else prepare_data(data, test_data, None, split_seed)

    step(f"fitting {config.attack} trigger")
    att = build_attack(config, prep.train, prep.test)
    poisoned = att.poisoned

    results: dict[str, Any] = {}
    for name in models:
        params = (victim_params or {}).get(name)
        step(f"{name}: training on the poisoned cohort")
        victim, secs = fit_victim(name, poisoned.cohort, prep.val, config.seed, params)
        step(f"{name}: training the clean baseline")
        baseline, base_secs = fit_victim(name, prep.train, prep.val, config.seed, params)
        results[name] = {
            **evaluate_attacked(
                victim,
                baseline,
                prep.test,
                att.attacked,
                att.triggered_idx,
                prep.val,
                config.target,
                config.seed,
                n_bootstrap,
            ),
            "train_seconds": round(secs, 3),
            "baseline_train_seconds": round(base_secs, 3),
        }

    out_dict = {
        "attack": config.to_dict(),
        "data": prep.data,
        "test_data": prep.test_data,
        **prep.sizes(),
        "n_poisoned": int(len(poisoned.indices)),
        "n_triggered_test": int(len(att.triggered_idx)),
        "attack_seconds": round(att.seconds, 3),
        "models": results,
    }
    stealth = missing_stealth(att.trigger, prep, att.attacked, att.triggered_idx, config.seed)
    if stealth is not None:
        out_dict["stealth"] = stealth
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        prep.split.save(out / "splits.json")
        att.trigger.save(out / "trigger")
        atomic_write_json(out / "poisoned.json", poisoned.to_dict())
        atomic_write_json(out / "results.json", out_dict)
    return out_dict
