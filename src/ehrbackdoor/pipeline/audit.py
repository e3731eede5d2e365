"""Stealth audit: can a hospital detect or remove a backdoor? (`ehrbackdoor audit`).

One attack (same configuration as `run_attack`) is run once; then every detector scores the stays
of the poisoned training cohort (model-level detectors inspect one victim trained on it), the
scores are judged against the ground truth (detection AUROC, TPR at 5 % FPR, precision at k = the
number of poisoned stays), and each detector is used as a filter: its top-k stays are removed,
every victim is retrained on the rest and the backdoor is measured again (`after`) next to the
victims trained on the poisoned cohort (`before`) and on the clean cohort (`clean_baseline`, the
level a perfect defence should reach). The distribution tests between poisoned and clean stays
form the `stealth` entry.

In grid space (`AttackConfig.space == "grid"`) the poison lives in the victims' hourly grid and the
raw events stay as recorded, so `imputation-consistency` (which rebuilds each stay's grid) is
always among the detectors, and every defence entry says what it reads (`reads`): detectors and
distribution tests that read raw events (or masks and window statistics computed from them) are
blind to grid-space poison by construction, and audit.json says so (`space_note`).

Writes `out/audit.json` (atomically), `out/scores.npz` (every detector's scores, the poison flags
and stay ids), `out/poisoned.json`, `out/splits.json` and `out/trigger/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ehrbackdoor.defences import DEFENCES, parse_defences
from ehrbackdoor.defences.distribution import stealth_tests
from ehrbackdoor.defences.evaluate import default_budget
from ehrbackdoor.io import atomic_savez, atomic_write_json
from ehrbackdoor.pipeline.attack import prepared_cell, run_header, save_attack_files
from ehrbackdoor.pipeline.cell import (
    AttackConfig,
    DefenceSpec,
    StepFn,
    backdoor_summary,
    defence_columns,
    jsonable,
    pick_columns,
)
from ehrbackdoor.pipeline.prepare import Prepared

AUDIT_FILE = "audit.json"
SCORES_FILE = "scores.npz"
_jsonable = jsonable
#: The detector that reads the victims' hourly grid (the one that sees grid-space poison).
GRID_DETECTOR = "imputation-consistency"
GRID_NOTE = (
    "grid-space poison: the trigger is added to the victims' hourly grid and the raw events stay "
    "as recorded; detectors and distribution tests that read raw events (values, masks, window "
    "statistics of events) are blind to it by construction; imputation-consistency rebuilds the "
    "grid and model-level detectors see it through the victim"
)


def detector_reads(name: str, detector: Any) -> str:
    """What a detector looks at: ``hourly grid``, ``victim``, ``ground truth`` or ``raw events``."""
    if name == GRID_DETECTOR:
        return "hourly grid"
    if detector.needs_victim:
        return "victim"
    if detector.family == "reference":
        return "ground truth"
    return "raw events"


def audit_defences(names: Sequence[str], space: str) -> list[str]:
    """The detectors of an audit: `names`, and in grid space also `GRID_DETECTOR`."""
    names = list(names)
    if space == "grid" and GRID_DETECTOR not in names:
        names.append(GRID_DETECTOR)
    return names


def run_audit(
    config: AttackConfig,
    defences: Sequence[str] | str,
    models: Sequence[str],
    data: str | Path | Prepared,
    out: str | Path | None = None,
    k_factor: float = 1.5,
    test_data: str | Path | None = None,
    split_seed: int = 0,
    victim_params: dict[str, dict] | None = None,
    defence_params: dict[str, dict] | None = None,
    inspect_model: str | None = None,
    mitigation: bool = True,
    detection_baseline: bool = False,
    stealth: bool = True,
    correction: str = "bh",
    n_permutations: int = 500,
    on_step: StepFn | None = None,
    victim_preset: str = "tuned",
) -> dict:
    """Audit one attack with `defences` against `models`; returns (and writes to
    `out/audit.json`) the results.

    - `defences`: registry names, families or "all" (see `ehrbackdoor.defences.parse_defences`).
    - `k_factor`: mitigation removes ``ceil(k_factor * rate * n_train)`` top-scored stays (the
      reference filters remove as many stays as were poisoned).
    - `inspect_model`: the victim that model-level detectors inspect (default: the first model).
    - `defence_params`: per-defence constructor parameters; every detector's seed defaults to the
      attack seed.
    - `mitigation`: False skips the retraining (detection metrics only).
    - `detection_baseline`: True also scores the poisoned stays without their trigger (labels
      and selection alone; each data-level detector's `auroc_no_trigger`).
    - `stealth`: False skips the distribution tests; `correction` ("bh" or "holm") and
      `n_permutations` configure them.
    - `victim_preset`, `config.space`, `config.protocol`: as in `run_attack`; in grid space
      `imputation-consistency` is added to the detectors.
    """
    models = list(models)
    if not models:
        raise ValueError("models must name at least one victim")
    names = audit_defences(parse_defences(defences), config.space)
    defence_params = dict(defence_params or {})
    unknown = sorted(set(defence_params) - set(DEFENCES))
    if unknown:
        raise ValueError(f"defence_params names unknown defences {unknown}")
    spec = DefenceSpec(tuple(names), defence_params, k_factor, mitigation, detection_baseline)
    detectors = spec.detectors(config.seed)  # fail on bad parameters before any work
    inspect = inspect_model or models[0]
    step = on_step or (lambda _msg: None)

    prep, att, cell = prepared_cell(
        config,
        models,
        data,
        test_data,
        split_seed,
        victim_params=victim_params,
        n_bootstrap=0,
        defence=spec,
        detectors=detectors,
        inspect=inspect,
        on_step=step,
        victim_preset=victim_preset,
    )
    cohort = att.poisoned.cohort
    is_poison = cohort.modified.copy()
    before = {n: backdoor_summary(v.metrics) for n, v in cell.victims.items()}
    baseline = {n: backdoor_summary(v.metrics, baseline=True) for n, v in cell.victims.items()}
    results, all_scores = cell.defences, cell.scores
    for name, entry in results.items():
        entry["reads"] = detector_reads(name, detectors[name])
    k = default_budget(cohort.n_stays, config.rate, k_factor)

    stealth_result = None
    if stealth:
        step("distribution tests of poisoned vs clean stays")
        clean_label = 1 - config.target if config.selection == "non-target" else None
        stealth_result = stealth_tests(
            cohort,
            is_poison,
            clean_label=clean_label,
            correction=correction,
            n_permutations=n_permutations,
            seed=config.seed,
        )

    out_dict = {
        **run_header(config, prep, att, victim_preset),
        "models": models,
        "inspect_model": inspect,
        "k_factor": k_factor,
        "k_remove": k,
        "before": before,
        "clean_baseline": baseline,
        "defences": results,
        "stealth": _jsonable(stealth_result),
        "victims": {
            n: {
                "representation": v.metrics["victim_info"]["representation"],
                "victim_info": v.metrics["victim_info"],
                "baseline_info": v.metrics["baseline_info"],
                **({"notes": v.metrics["notes"]} if "notes" in v.metrics else {}),
            }
            for n, v in cell.victims.items()
        },
    }
    if config.space == "grid":
        out_dict["space_note"] = GRID_NOTE
    if out is not None:
        out = Path(out)
        save_attack_files(out, prep, att)
        atomic_savez(
            out / SCORES_FILE,
            {
                "stay_id": cohort.stay_id.astype(str),
                "is_poison": is_poison,
                **{f"score/{n}": s for n, s in all_scores.items()},
            },
        )
        atomic_write_json(out / AUDIT_FILE, out_dict)
    return out_dict


_ROW_METRICS = ("auroc", "tpr_at_5fpr", "precision_at_k", "n_removed", "n_poisoned_removed")


def audit_rows(result: dict) -> list[dict[str, Any]]:
    """Flat rows of an audit result for tables (CLI, report): one per defence, with per-victim
    ASR / clean AUROC before and after (the reference filters bound the other rows)."""
    rows = []
    for name, d in result["defences"].items():
        row: dict[str, Any] = {"defence": name, "family": d["family"]}
        if "reads" in d:
            row["reads"] = d["reads"]
        row.update({m: d.get(m) for m in _ROW_METRICS})
        for victim, before in result["before"].items():
            after = d.get("after", {}).get(victim, {})
            row[f"{victim}/asr_before"] = before["asr"]
            row[f"{victim}/asr_after"] = after.get("asr")
            row[f"{victim}/clean_auroc_before"] = before["clean_auroc"]
            row[f"{victim}/clean_auroc_after"] = after.get("clean_auroc")
        rows.append(row)
    return rows


# The stealth columns of `audit_metrics`: where each stands in the audit's "stealth" entry.
_STEALTH_COLUMNS = {
    "stealth_ks_n_significant": ("ks", "n_significant"),
    "stealth_ks_share_significant": ("ks", "share_significant"),
    "stealth_ks_max_statistic": ("ks", "max_statistic"),
    "stealth_mmd2": ("mmd", "mmd2"),
    "stealth_mmd_p": ("mmd", "p"),
    "stealth_missing_n_significant": ("missing_rate", "n_significant"),
}


def audit_metrics(result: dict, victim: str) -> dict[str, float | None]:
    """Flat scalar metrics of an audit for one victim, named for results stores and reports:
    ``stealth_*`` (distribution tests) and ``defence_{name}_*`` (detection and mitigation), plus
    ``asr_before`` and ``asr_clean_baseline``."""
    out: dict[str, float | None] = {
        "asr_before": result["before"][victim]["asr"],
        "asr_clean_baseline": result["clean_baseline"][victim]["asr"],
    }
    st = result.get("stealth")
    if st:
        out.update(pick_columns(st, _STEALTH_COLUMNS))
    out.update(defence_columns(result["defences"], victim))
    return out
