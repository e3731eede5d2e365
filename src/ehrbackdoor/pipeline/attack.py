"""One backdoor attack against several victims at once: `ehrbackdoor attack`.

The trigger is fit on the clean training stays; one poisoned training cohort is built and every
victim is trained on it and, with the same seed, on the clean cohort (the baseline that shows the
clean-performance cost of poisoning). Every victim is evaluated on the clean test cohort and on the
attacked test cohort (trigger on each test stay whose true label differs from the target, labels
unchanged). Thresholds come from clean validation data only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ehrbackdoor.io import atomic_write_json
from ehrbackdoor.pipeline.cell import (
    AttackConfig,
    AttackData,
    CellResult,
    StepFn,
    build_attack,
    evaluate_attacked,
    run_cell,
)
from ehrbackdoor.pipeline.fidelity import fidelity_entries
from ehrbackdoor.pipeline.prepare import Prepared, prepare_data

__all__ = [
    "AttackConfig",
    "AttackData",
    "build_attack",
    "evaluate_attacked",
    "missing_stealth",
    "prepared_cell",
    "run_attack",
    "run_header",
    "save_attack_files",
]


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


def prepared_cell(
    config: AttackConfig,
    models: Sequence[str],
    data: str | Path | Prepared,
    test_data: str | Path | None = None,
    split_seed: int = 0,
    **cell_options: Any,
) -> tuple[Prepared, AttackData, CellResult]:
    """Prepare the data (unless already `Prepared`) and run one cell on it (`run_cell` with
    `cell_options`): the shared first half of `run_attack` and `run_audit`."""
    models = list(models)
    if not models:
        raise ValueError("models must name at least one victim")
    prep = data if isinstance(data, Prepared) else prepare_data(data, test_data, None, split_seed)
    att, cell = run_cell(config, prep.train, prep.val, prep.test, None, models, **cell_options)
    return prep, att, cell


def run_header(config: AttackConfig, prep: Prepared, att: AttackData, preset: str) -> dict:
    """The entries results.json and audit.json share: the attack (with its space and protocol),
    the victim preset, the data, what was poisoned and how faithful the trigger is on the
    poisoned training stays (`trigger_fidelity`, `trigger_fidelity_summary`:
    `ehrbackdoor.pipeline.fidelity`)."""
    return {
        "attack": config.to_dict(),
        "victim_preset": preset,
        "data": prep.data,
        "test_data": prep.test_data,
        **prep.sizes(),
        "n_poisoned": int(len(att.poisoned.indices)),
        "n_triggered_test": int(len(att.triggered_idx)),
        **fidelity_entries(att.trigger, prep.train, att.poisoned, config.space, config.apply),
    }


def save_attack_files(out: Path, prep: Prepared, att: AttackData) -> None:
    """The split, the fitted trigger and the poisoned stays, so a run can be reproduced."""
    out.mkdir(parents=True, exist_ok=True)
    prep.split.save(out / "splits.json")
    att.trigger.save(out / "trigger")
    atomic_write_json(out / "poisoned.json", att.poisoned.to_dict())


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
    victim_preset: str = "tuned",
) -> dict:
    """Run one attack against `models`; returns (and writes to `out/results.json`) the results.

    `victim_preset` ("tuned" or "paper") gives the victims' starting hyperparameters
    (`victim_params` override them); `config.space` and `config.protocol` choose where the
    trigger lives and how victims are selected (`ehrbackdoor.pipeline.protocols`). Each victim's
    entry records its input `representation`, its and its baseline's selection (`victim_info`,
    `baseline_info`: rule, selected epoch, threshold) and `notes` on forced parameters.

    The header (`run_header`) records the trigger's fidelity on the poisoned training stays:
    `trigger_fidelity` (per variable for value triggers; mask measures for missing-value
    triggers; null in grid space, with the reason in `trigger_fidelity_summary`).

    `out` also receives the trigger (`trigger/`), the poisoned stays (`poisoned.json`) and the split
    (`splits.json`) so the run can be reproduced and audited.
    """
    prep, att, cell = prepared_cell(
        config,
        models,
        data,
        test_data,
        split_seed,
        victim_params=victim_params,
        n_bootstrap=n_bootstrap,
        on_step=on_step,
        victim_preset=victim_preset,
    )
    results: dict[str, Any] = {
        name: {
            **v.metrics,
            "representation": v.metrics["victim_info"]["representation"],
            "train_seconds": round(v.train_seconds, 3),
            "baseline_train_seconds": round(v.baseline_seconds or 0.0, 3),
        }
        for name, v in cell.victims.items()
    }
    out_dict = {
        **run_header(config, prep, att, victim_preset),
        "attack_seconds": round(att.seconds, 3),
        "models": results,
    }
    stealth = missing_stealth(att.trigger, prep, att.attacked, att.triggered_idx, config.seed)
    if stealth is not None:
        out_dict["stealth"] = stealth
    if out is not None:
        out = Path(out)
        save_attack_files(out, prep, att)
        atomic_write_json(out / "results.json", out_dict)
    return out_dict
