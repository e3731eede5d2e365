"""How faithful the trigger is as the victims see it: measured on the poisoned training stays.

`trigger_fidelity` compares the clean and the poisoned version of the same poisoned training
stays (what the victims are trained on) and gives two JSON-able entries, written by
`ehrbackdoor attack` / `ehrbackdoor audit` (results.json / audit.json) and by the experiment
runner's poison step (the artifact's ``fidelity.json`` and the cells' ``fidelity_*`` columns):

- ``trigger_fidelity``: value triggers: the per-variable `ValueTrigger.fidelity_report` (new
  bound hits, changed values, realised vs designed Mahalanobis distance, stays with new
  within-stay variance); missing-value triggers: the mask measures of
  `attacks.masks.pattern_diagnostics` on the poisoned stays' clean masks plus the share of
  observed cells removed and added; ``None`` where fidelity of raw events means nothing (grid
  space: the raw events are unchanged) or the trigger has no designed pattern (``fixed``).
- ``trigger_fidelity_summary``: a few numbers (`SUMMARY_KEYS`) and ``reason`` (why there is no
  report, else ``None``); `fidelity_columns` flattens it into ``fidelity_*`` columns, NaN where a
  measure does not apply.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ehrbackdoor.attacks import Poisoned
from ehrbackdoor.attacks.masks import hamming_to_masks, observation_masks, pattern_diagnostics
from ehrbackdoor.attacks.triggers.missing_base import MissingTrigger, resolve_mode
from ehrbackdoor.data.cohort import Cohort

__all__ = [
    "FIDELITY_COLUMNS",
    "GRID_REASON",
    "SUMMARY_KEYS",
    "fidelity_columns",
    "fidelity_entries",
    "fidelity_summary",
    "trigger_fidelity",
]

GRID_REASON = (
    "grid space: the trigger is added to the victims' hourly grid and the raw events stay as "
    "recorded, so the fidelity of raw events does not apply"
)
FIXED_REASON = (
    "the {name} trigger sets values rather than adding a pattern drawn at a designed distance; "
    "no fidelity report"
)

#: Summary numbers (None where they do not apply), in column order.
SUMMARY_KEYS = (
    "new_bound_hits",
    "changed_values",
    "realised_mahalanobis",
    "designed_mahalanobis",
    "new_within_stay_variance",
    "removed_share",
    "added_share",
)
#: The flat columns of a summary (experiment cells).
FIDELITY_COLUMNS = tuple(f"fidelity_{k}" for k in SUMMARY_KEYS)


def _empty(reason: str | None, **values: Any) -> dict[str, Any]:
    return {**dict.fromkeys(SUMMARY_KEYS), **values, "reason": reason}


def fidelity_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The compact summary of a value trigger's `fidelity_report`: total new bound hits, total
    changed values (None when events were added, ``apply="all"``), the median over variables of
    the realised (median over stays) and of the designed Mahalanobis distance, and the number of
    (stay, variable) pairs that gained within-stay variance."""
    rows = list(report["variables"].values())
    changed = [r["changed_values"] for r in rows if "changed_values" in r]
    designed = [r["designed_mahalanobis"] for r in rows if "designed_mahalanobis" in r]
    return _empty(
        None,
        new_bound_hits=int(report["new_bound_hits"]),
        changed_values=int(sum(changed)) if rows and len(changed) == len(rows) else None,
        realised_mahalanobis=report["realised_mahalanobis_median"],
        designed_mahalanobis=float(np.median(designed)) if designed else None,
        new_within_stay_variance=int(report["new_within_stay_variance"]),
    )


def _missing_fidelity(
    trigger: MissingTrigger, clean: Cohort, apply: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mask measures of a missing-value trigger on the poisoned stays: `pattern_diagnostics`
    against their clean masks (``mean_deleted_fraction``: the share of a stay's observed cells
    the trigger removes) and, in ``exact`` mode, the share it adds (pattern cells a stay did not
    observe, relative to its observed cells; none in ``delete`` mode)."""
    mode = resolve_mode(apply)
    masks = observation_masks(clean)
    diag = pattern_diagnostics(trigger.pattern_, masks)
    n_obs = masks.reshape(len(masks), -1).sum(axis=1)
    added = 0.0
    if mode == "exact" and np.any(n_obs > 0):
        ham, outside = hamming_to_masks(trigger.pattern_[None], masks)
        share = (ham[0] - outside[0]) / np.maximum(n_obs, 1)
        added = float(share[n_obs > 0].mean())
    removed = float(diag["mean_deleted_fraction"])
    report = {
        "trigger": trigger.name,
        "apply": mode,
        "n_stays": int(clean.n_stays),
        "removed_share": removed,
        "added_share": added,
        "pattern_diagnostics": diag,
    }
    return report, _empty(None, removed_share=removed, added_share=added)


def trigger_fidelity(
    trigger: Any, train: Cohort, poisoned: Poisoned, space: str = "raw", apply: str = "observed"
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(report, summary) of `trigger` on the poisoned training stays: `train` (clean) against
    `poisoned.cohort` at `poisoned.indices` (module docstring). `space` and `apply` are the
    threat model's."""
    if space == "grid":
        return None, _empty(GRID_REASON)
    idx = np.asarray(poisoned.indices)
    clean = train.subset(idx)
    if isinstance(trigger, MissingTrigger):
        return _missing_fidelity(trigger, clean, apply)
    if not hasattr(trigger, "fidelity_report"):
        return None, _empty(FIXED_REASON.format(name=trigger.name))
    report = trigger.fidelity_report(clean, poisoned.cohort.subset(idx))
    return report, fidelity_summary(report)


def fidelity_entries(
    trigger: Any, train: Cohort, poisoned: Poisoned, space: str = "raw", apply: str = "observed"
) -> dict[str, Any]:
    """``trigger_fidelity`` and ``trigger_fidelity_summary`` (the results.json / audit.json
    entries) of `trigger_fidelity`."""
    report, summary = trigger_fidelity(trigger, train, poisoned, space, apply)
    return {"trigger_fidelity": report, "trigger_fidelity_summary": summary}


def fidelity_columns(summary: dict[str, Any] | None) -> dict[str, float]:
    """The ``fidelity_*`` columns of a summary: NaN where a measure does not apply (or no summary
    was recorded, e.g. a run directory from before fidelity was measured)."""
    summary = summary or {}
    out: dict[str, float] = {}
    for key, column in zip(SUMMARY_KEYS, FIDELITY_COLUMNS, strict=True):
        value = summary.get(key)
        out[column] = math.nan if value is None else float(value)
    return out
