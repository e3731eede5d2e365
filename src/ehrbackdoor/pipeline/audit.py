"""Stealth audit: can a hospital detect or remove a backdoor? (`ehrbackdoor audit`).

One attack (same configuration as `run_attack`) is run once; then every detector scores the stays
of the poisoned training cohort (model-level detectors inspect one victim trained on it), the
scores are judged against the ground truth (detection AUROC, TPR at 5 % FPR, precision at k = the
number of poisoned stays), and each detector is used as a filter: its top-k stays are removed,
every victim is retrained on the rest and the backdoor is measured again (`after`) next to the
victims trained on the poisoned cohort (`before`) and on the clean cohort (`clean_baseline`, the
level a perfect defence should reach). The distribution tests between poisoned and clean stays
form the `stealth` entry.

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
from ehrbackdoor.pipeline.cell import (
    AttackConfig,
    DefenceSpec,
    StepFn,
    backdoor_summary,
    defence_columns,
    jsonable,
    run_cell,
)
from ehrbackdoor.pipeline.prepare import Prepared, prepare_data

AUDIT_FILE = "audit.json"
SCORES_FILE = "scores.npz"
_jsonable = jsonable


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
    stealth: bool = True,
    correction: str = "bh",
    n_permutations: int = 500,
    on_step: StepFn | None = None,
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
    - `stealth`: False skips the distribution tests; `correction` ("bh" or "holm") and
      `n_permutations` configure them.
    """
    models = list(models)
    if not models:
        raise ValueError("models must name at least one victim")
    names = parse_defences(defences)
    defence_params = dict(defence_params or {})
    unknown = sorted(set(defence_params) - set(DEFENCES))
    if unknown:
        raise ValueError(f"defence_params names unknown defences {unknown}")
    spec = DefenceSpec(tuple(names), defence_params, k_factor, mitigation)
    detectors = spec.detectors(config.seed)  # fail on bad parameters before any work
    inspect = inspect_model or models[0]
    step = on_step or (lambda _msg: None)

    prep = data if isinstance(data, Prepared) else prepare_data(data, test_data, None, split_seed)
    att, cell = run_cell(
        config,
        prep.train,
        prep.val,
        prep.test,
        None,
        models,
        victim_params=victim_params,
        n_bootstrap=0,
        defence=spec,
        detectors=detectors,
        inspect=inspect,
        on_step=step,
    )
    trigger, poisoned, triggered_idx = att.trigger, att.poisoned, att.triggered_idx
    cohort = poisoned.cohort
    is_poison = cohort.modified.copy()
    before = {n: backdoor_summary(v.metrics) for n, v in cell.victims.items()}
    baseline = {n: backdoor_summary(v.metrics, baseline=True) for n, v in cell.victims.items()}
    results, all_scores = cell.defences, cell.scores
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
        "attack": config.to_dict(),
        "data": prep.data,
        "test_data": prep.test_data,
        **prep.sizes(),
        "n_poisoned": int(is_poison.sum()),
        "n_triggered_test": int(len(triggered_idx)),
        "models": models,
        "inspect_model": inspect,
        "k_factor": k_factor,
        "k_remove": k,
        "before": before,
        "clean_baseline": baseline,
        "defences": results,
        "stealth": _jsonable(stealth_result),
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        prep.split.save(out / "splits.json")
        trigger.save(out / "trigger")
        atomic_write_json(out / "poisoned.json", poisoned.to_dict())
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


def audit_rows(result: dict) -> list[dict[str, Any]]:
    """Flat rows of an audit result for tables (CLI, report): one per defence, with per-victim
    ASR / clean AUROC before and after (the reference filters bound the other rows)."""
    rows = []
    for name, d in result["defences"].items():
        row: dict[str, Any] = {
            "defence": name,
            "family": d["family"],
            "auroc": d.get("auroc"),
            "tpr_at_5fpr": d.get("tpr_at_5fpr"),
            "precision_at_k": d.get("precision_at_k"),
            "n_removed": d.get("n_removed"),
            "n_poisoned_removed": d.get("n_poisoned_removed"),
        }
        for victim, before in result["before"].items():
            after = d.get("after", {}).get(victim, {})
            row[f"{victim}/asr_before"] = before["asr"]
            row[f"{victim}/asr_after"] = after.get("asr")
            row[f"{victim}/clean_auroc_before"] = before["clean_auroc"]
            row[f"{victim}/clean_auroc_after"] = after.get("clean_auroc")
        rows.append(row)
    return rows


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
        out.update(
            {
                "stealth_ks_n_significant": st["ks"]["n_significant"],
                "stealth_ks_share_significant": st["ks"]["share_significant"],
                "stealth_ks_max_statistic": st["ks"]["max_statistic"],
                "stealth_mmd2": st["mmd"]["mmd2"],
                "stealth_mmd_p": st["mmd"]["p"],
                "stealth_missing_n_significant": st["missing_rate"]["n_significant"],
            }
        )
    out.update(defence_columns(result["defences"], victim))
    return out
