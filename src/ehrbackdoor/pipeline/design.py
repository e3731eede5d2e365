"""Design a trigger as the realistic attacker would and measure how it transfers: `ehrbackdoor
design`.

The training pool is cut into the attacker's and the victim's halves (`attacker_split`, seeded,
stratified, disjoint). The design search (`ehrbackdoor.attacks.design`) reads the attacker's
half only: a surrogate victim and the public detectors run there. The chosen trigger then poisons
the victim's half (raw records, the threat model given) and every victim is trained on it and,
with the same seed, on the clean victim half (the baseline), honest protocol, and evaluated on
the held-out test stays; the same detectors score the victim's poisoned stays (detection only).
Optionally the family's default trigger, fitted on the attacker's whole half, runs the same way
(`compare_default`), so the gain of designing is measured, not assumed (a designed missing-value
pattern is kept as scored, fitted on the surrogate's 60 % of that half; `trigger_fitted_on`).

`attack.seed` in the results is the run's seed (split, poisoned stays, victims); the designed
trigger's own draw seed is `trigger_seed`. Model-level detectors, if passed, inspect the first
victim only.

Written to `out`: results.json (everything returned), design.json (every candidate's surrogate
scores), attacker.json (the stay ids each half holds), poisoned.json and the trigger (trigger/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ehrbackdoor.attacks.design import (
    MissingSpace,
    TemporalSpace,
    attacker_split,
    design_trigger,
)
from ehrbackdoor.checks import check_choice
from ehrbackdoor.io import atomic_write_json
from ehrbackdoor.pipeline.cell import AttackConfig, DefenceSpec, StepFn, _no_step, build_attack
from ehrbackdoor.pipeline.cell import run_cell as _run_cell
from ehrbackdoor.pipeline.fidelity import fidelity_entries
from ehrbackdoor.pipeline.prepare import Prepared, prepare_data

#: Per family: the default threat model and the deployable data-level detectors that see it.
FAMILIES: dict[str, dict[str, Any]] = {
    "value": {
        "trigger": "temporal",
        "target": 1,
        "apply": "observed",
        "detectors": ("isolation-forest", "lof", "range-check", "two-sample"),
    },
    "missing": {
        "trigger": "missing-vae",
        "target": 0,
        "apply": "exact",
        "detectors": (
            "isolation-forest-mask",
            "lof-mask",
            "mask-rarity",
            "mask-duplicates",
            "two-sample",
        ),
    },
}


def default_space(family: str) -> TemporalSpace | MissingSpace:
    """The documented search space of a family (`TemporalSpace` / `MissingSpace` defaults, with
    the dense-4 subsets for value triggers)."""
    family = check_choice("family", family, tuple(FAMILIES))
    if family == "value":
        return TemporalSpace(variable_sets=("all", "dense", "dense-4"), n_draws=3)
    return MissingSpace()


def _victims(cell, detection: dict[str, float]) -> dict[str, Any]:
    out = {}
    for name, v in cell.victims.items():
        m = v.metrics
        out[name] = {
            **m,
            "clean_auroc_change": m["clean"]["auroc"] - m["clean_baseline"]["auroc"],
            "clean_auprc_change": m["clean"]["auprc"] - m["clean_baseline"]["auprc"],
            "auprc_drop": m["clean"]["auprc"] - m["triggered"]["auprc"],
        }
    return {"models": out, "detection_auroc": detection}


def _transfer(config, prep, victim_half, trigger, models, spec, n_bootstrap, on_step):
    """(the attack, its results entry): `trigger` poisons the victim's half, every victim is
    trained on it and evaluated, the detectors score the poisoned stays."""
    attack = build_attack(config, victim_half, prep.test, trigger=trigger)
    _, cell = _run_cell(
        config,
        victim_half,
        prep.val,
        prep.test,
        attack,
        models,
        defence=spec,
        n_bootstrap=n_bootstrap,
        on_step=on_step,
    )
    detection = {n: float(d["auroc"]) for n, d in cell.defences.items()}
    fidelity = fidelity_entries(trigger, victim_half, attack.poisoned, config.space, config.apply)
    return attack, {**_victims(cell, detection), **fidelity}


def run_design(
    data: str | Path | Prepared,
    family: str = "value",
    models: Sequence[str] = ("lr", "mlp", "gru", "lstm"),
    out: str | Path | None = None,
    *,
    rate: float = 0.02,
    target: int | None = None,
    apply: str | None = None,
    selection: str = "non-target",
    seed: int = 0,
    share: float = 0.5,
    space: TemporalSpace | MissingSpace | None = None,
    surrogate: str = "lr",
    detectors: Sequence[str] | None = None,
    max_auroc_cost: float = 0.01,
    max_detection_auroc: float = 0.65,
    objective: str = "asr",
    compare_default: bool = False,
    test_data: str | Path | None = None,
    split_seed: int = 0,
    n_bootstrap: int = 1000,
    on_step: StepFn | None = None,
) -> dict[str, Any]:
    """Design a trigger of `family` ("value" or "missing") on the attacker's half of the
    training pool and attack `models` trained on the victim's half (module docstring).

    `target`, `apply` and `detectors` default to the family's (`FAMILIES`); `space` to
    `default_space(family)`. Returns (and writes to `out/results.json`) the design, the transfer
    to every victim (ASR beside the clean model's rate of the same trigger, clean AUROC / AUPRC
    change, AUPRC drop on triggered stays), each detector's AUROC on the victim's data and the
    trigger's fidelity on the victim's poisoned stays (`pipeline.fidelity`).
    """
    from ehrbackdoor.victims import VICTIMS

    family = check_choice("family", family, tuple(FAMILIES))
    fam = FAMILIES[family]
    models = list(models)
    if not models:
        raise ValueError("models must name at least one victim")
    for name in [*models, surrogate]:  # before the search, not after it
        check_choice("victim", name, tuple(VICTIMS))
    if isinstance(data, Prepared) and test_data is not None:
        raise ValueError("test_data is read only with a data path; a Prepared run has its test")
    step = on_step or _no_step
    space = space or default_space(family)
    if space.family != family:
        raise ValueError(
            f"a {type(space).__name__} searches the {space.family} family, not {family}"
        )
    config = AttackConfig(
        fam["trigger"],
        fam["target"] if target is None else target,
        rate,
        fam["apply"] if apply is None else apply,
        selection,
        seed,
    )
    config.threat().check_trigger(config.attack)
    prep = data if isinstance(data, Prepared) else prepare_data(data, test_data, None, split_seed)
    attacker, victim_half = attacker_split(prep.train, seed=seed, share=share)
    spec = DefenceSpec(tuple(detectors or fam["detectors"]), mitigation=False)
    step(f"design: searching on {attacker.n_stays} attacker stays")
    design = design_trigger(
        attacker,
        config.threat(),
        space=space,
        surrogate=surrogate,
        max_auroc_cost=max_auroc_cost,
        detectors=spec.detectors(seed),
        max_detection_auroc=max_detection_auroc,
        objective=objective,
        seed=seed,
    )
    trigger_params = {k: v for k, v in design.params.items() if k != "seed"}
    designed = replace(config, trigger_params=trigger_params)
    step(f"design: attacking {len(models)} victims on {victim_half.n_stays} victim stays")
    attack, result = _transfer(
        designed, prep, victim_half, design.trigger, models, spec, n_bootstrap, step
    )
    n_fitted = len(design.fitted_ids)
    report: dict[str, Any] = {
        "attack": designed.to_dict(),
        "trigger_seed": design.params.get("seed"),
        "trigger_fitted_on": {
            "stays": "attacker" if n_fitted == attacker.n_stays else "attacker's surrogate train",
            "n_stays": n_fitted,
        },
        "family": family,
        "data": prep.data,
        "test_data": prep.test_data,
        "n_attacker": attacker.n_stays,
        "n_victim_train": victim_half.n_stays,
        "n_val": prep.val.n_stays,
        "n_test": prep.test.n_stays,
        "n_poisoned": int(len(attack.poisoned.indices)),
        "surrogate": surrogate,
        "objective": objective,
        "limits": {"auroc_cost": max_auroc_cost, "detection_auroc": max_detection_auroc},
        "feasible": design.feasible,
        "chosen": {k: v for k, v in design.candidates[design.chosen].items() if k != "params"},
        "n_candidates": len(design.candidates),
        "frontier": [
            {
                "asr": design.candidates[i]["asr"],
                "asr_clean_surrogate": design.candidates[i]["asr_clean_surrogate"],
                "detection_auroc": max(design.candidates[i]["detection_auroc"].values()),
                "params": design.candidates[i]["params"],
            }
            for i in design.frontier()
        ],
        "designed": result,
    }
    if compare_default:
        step("design: the family's default trigger, for comparison")
        trig = config.make_trigger().fit(attacker)
        _, report["default"] = _transfer(
            config, prep, victim_half, trig, models, spec, n_bootstrap, step
        )
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        design.trigger.save(out / "trigger")
        atomic_write_json(out / "design.json", design.to_dict())
        atomic_write_json(
            out / "attacker.json",
            {
                "seed": seed,
                "share": share,
                "attacker_stay_ids": [str(s) for s in attacker.stay_id],
                "victim_stay_ids": [str(s) for s in victim_half.stay_id],
            },
        )
        atomic_write_json(out / "poisoned.json", attack.poisoned.to_dict())
        atomic_write_json(out / "results.json", report)
    return report
