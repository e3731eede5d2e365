"""What the config may name: triggers, apply modes, victims, defences and their parameters.

The one place the experiment layer asks the attack, victim and defence registries about names;
everything else in `config` goes through these functions. Trigger questions (family, apply
modes, parameters) are answered by `ehrbackdoor.attacks.trigger_info`.
"""

from __future__ import annotations


def trigger_names() -> list[str]:
    from ehrbackdoor.attacks import TRIGGERS

    return sorted(TRIGGERS)


def trigger_param_names(trigger: str) -> list[str]:
    """Constructor parameters of a trigger family (what an attack's grid may set)."""
    from ehrbackdoor.attacks import trigger_info

    return [p for p in trigger_info(trigger).params if p != "seed"]


def is_missing_trigger(trigger: str) -> bool:
    """Triggers that change which values are observed rather than the values themselves."""
    from ehrbackdoor.attacks import TRIGGERS, trigger_info

    return trigger in TRIGGERS and trigger_info(trigger).family == "missing"


def apply_modes(trigger: str | None = None) -> tuple[str, ...]:
    """Apply modes a trigger accepts (value triggers' modes when no trigger is named)."""
    from ehrbackdoor.attacks import TRIGGERS, trigger_info
    from ehrbackdoor.attacks.triggers.base import APPLY_MODES

    if trigger and trigger in TRIGGERS:
        return tuple(trigger_info(trigger).apply_modes)
    return tuple(APPLY_MODES)


def selection_names() -> tuple[str, ...]:
    from ehrbackdoor.attacks.threat import SELECTIONS

    return tuple(SELECTIONS)


def defence_names() -> list[str]:
    """What `defences` accepts: "all", a family or registry names."""
    from ehrbackdoor.defences import DEFENCES, FAMILIES

    return ["all", *FAMILIES, *sorted(DEFENCES)]


def victim_names() -> list[str]:
    from ehrbackdoor.victims import VICTIMS

    return sorted(VICTIMS)


def victim_param_names(name: str) -> list[str]:
    from ehrbackdoor.victims import VICTIMS

    return [p for p in VICTIMS[name].param_names() if p != "seed"]


def space_names() -> tuple[str, ...]:
    """Where a trigger may live: raw events or the victims' hourly grid."""
    from ehrbackdoor.attacks.threat import SPACES

    return tuple(SPACES)


def grid_apply_modes() -> tuple[str, ...]:
    from ehrbackdoor.data.perturbation import GRID_MODES

    return tuple(GRID_MODES)


def has_grid_form(trigger: str) -> bool:
    """True for the additive value triggers, the ones that exist in grid space."""
    from ehrbackdoor.attacks import TRIGGERS

    return trigger in TRIGGERS and hasattr(TRIGGERS[trigger], "grid_pattern")


def protocol_names() -> tuple[str, ...]:
    from ehrbackdoor.victims.protocol import PROTOCOLS

    return tuple(PROTOCOLS)


def preset_names() -> tuple[str, ...]:
    from ehrbackdoor.victims.presets import PRESET_NAMES

    return tuple(PRESET_NAMES)
