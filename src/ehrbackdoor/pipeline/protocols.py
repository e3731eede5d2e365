"""How a cell's victims are built and selected: the preset, the space and the protocol axes.

Three run choices reach every victim of a cell, poisoned and baseline alike, so the two are always
judged the same way:

* the victim preset (``tuned`` or ``paper``, `ehrbackdoor.victims.presets`) gives the starting
  hyperparameters; a config's or caller's parameters override it;
* in grid space (``AttackConfig.space == "grid"``) the trigger lives in the hourly grid, which
  window statistics computed from raw events never see; window-feature victims (lr, mlp, gbdt)
  are therefore switched to ``features="hourly"`` (statistics over the hourly forward-filled grid,
  the paper's way), and the switch is recorded (`victim_params_for` returns a note);
* under the paper protocol every victim uses threshold 0.5 and the paper's epoch rule; lr / mlp
  pick the epoch with the highest attack success on triggered validation stays. The unpoisoned
  baseline gets the SAME rule with the SAME triggered validation stays (`selection_for`), so its
  rate of the trigger is what the paper's pipeline would report at rate 0 (the rule's own
  contribution to the ASR), reported beside every ASR. lstm / gru pick by clean F1, which needs no
  trigger, so their baselines are shared by every attack setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ehrbackdoor.attacks import ThreatModel
from ehrbackdoor.attacks.protocol import paper_selection
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.victims import VICTIMS, preset_params
from ehrbackdoor.victims.protocol import PAPER_RULES, PROTOCOLS, Selection

#: The window-feature representation grid-space poison reaches.
GRID_FEATURES = "hourly"


def takes_features(name: str) -> bool:
    """True for victims on window statistics (they take a ``features`` parameter)."""
    return "features" in VICTIMS[name].param_names()


def victim_params_for(
    name: str, params: Mapping[str, Any] | None, preset: str = "tuned", space: str = "raw"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The constructor parameters of victim `name` in a cell, and notes on what was changed.

    Preset parameters first, `params` over them; in grid space a window-feature victim gets
    ``features="hourly"`` (note ``features_forced``), since grid poison never reaches statistics
    of raw events. With the tuned preset in raw space `params` come back unchanged.
    """
    out = {**preset_params(preset, name), **dict(params or {})}
    notes: dict[str, Any] = {}
    if space == "grid" and takes_features(name) and out.get("features", "events") != GRID_FEATURES:
        notes["features_forced"] = (
            f"{GRID_FEATURES} (was {out.get('features', 'events')!r}): grid-space poison edits "
            "the hourly grid, which window statistics of raw events never see"
        )
        out["features"] = GRID_FEATURES
    return out, notes


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    return protocol


def needs_triggered_val(protocol: str, name: str) -> bool:
    """True if `name`'s selection under `protocol` reads triggered validation stays."""
    return protocol == "paper" and PAPER_RULES.get(name, ("",))[0] == "asr"


def selection_for(
    protocol: str, name: str, val: Cohort, trigger: Any, threat: ThreatModel
) -> Selection | None:
    """The selection of victim `name` (poisoned or baseline: the same) under `protocol`.

    None under the honest protocol; under the paper protocol the triggered validation stays of
    the fitted `trigger` where the rule needs them (lr / mlp), else the trigger-free paper rule.
    """
    check_protocol(protocol)
    if protocol == "honest":
        return None
    if needs_triggered_val(protocol, name):
        if trigger is None:
            raise ValueError(
                f"the paper protocol selects {name} by attack success: needs the trigger"
            )
        return paper_selection(val, trigger, threat)
    return Selection("paper", target=threat.target)


def selections_for(
    protocol: str, names: list[str], val: Cohort, trigger: Any, threat: ThreatModel
) -> dict[str, Selection | None]:
    """`selection_for` of every victim in `names`, the triggered validation stays built once."""
    shared: Selection | None = None
    out: dict[str, Selection | None] = {}
    for n in names:
        if needs_triggered_val(protocol, n):
            shared = shared or selection_for(protocol, n, val, trigger, threat)
            out[n] = shared
        else:
            out[n] = selection_for(protocol, n, val, trigger, threat)
    return out


def selection_summary(victim: Any) -> dict[str, Any]:
    """What a fitted victim reports about its inputs and its selection (results.json): the input
    representation, the protocol, rule, selected epoch, threshold (no per-epoch history)."""
    sel = dict((getattr(victim, "fit_info_", {}) or {}).get("selection") or {})
    sel.pop("history", None)
    return {
        "representation": getattr(victim, "representation", "grid"),
        "selection": sel,
        "selected_epoch": sel.get("selected_epoch"),
        "threshold": float(victim.threshold_),
    }


__all__ = [
    "GRID_FEATURES",
    "check_protocol",
    "needs_triggered_val",
    "selection_for",
    "selection_summary",
    "selections_for",
    "takes_features",
    "victim_params_for",
]
