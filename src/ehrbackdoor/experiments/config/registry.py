"""What the config may name: triggers, apply modes, victims, defences and their parameters.

The one place the experiment layer asks the attack, victim and defence registries about names;
everything else in `config` goes through these functions. The trigger questions (family, apply
modes, parameters) map one to one onto a per-trigger description from the attacks layer, which
is what these should read once it offers one.
"""

from __future__ import annotations

import inspect


def trigger_names() -> list[str]:
    from ehrbackdoor.attacks import TRIGGERS

    return sorted(TRIGGERS)


def _trigger_class(trigger: str) -> type:
    from ehrbackdoor.attacks import TRIGGERS

    return TRIGGERS[trigger]


def trigger_param_names(trigger: str) -> list[str]:
    """Constructor parameters of a trigger family (what an attack's grid may set)."""
    return init_params(_trigger_class(trigger))


def is_missing_trigger(trigger: str) -> bool:
    """Triggers that change which values are observed rather than the values themselves."""
    from ehrbackdoor.attacks import TRIGGERS
    from ehrbackdoor.attacks.triggers.missing import MissingTrigger

    cls = TRIGGERS.get(trigger)
    return cls is not None and issubclass(cls, MissingTrigger)


def apply_modes(trigger: str | None = None) -> tuple[str, ...]:
    """Apply modes a trigger accepts (its own `apply_modes` if it declares them)."""
    from ehrbackdoor.attacks import TRIGGERS
    from ehrbackdoor.attacks.triggers.base import APPLY_MODES

    cls = TRIGGERS.get(trigger) if trigger else None
    modes = getattr(cls, "apply_modes", None)
    if modes is None and cls is not None and is_missing_trigger(trigger):
        from ehrbackdoor.attacks.triggers.missing import MISSING_APPLY_MODES, MODE_ALIASES

        modes = (*MISSING_APPLY_MODES, *MODE_ALIASES)
    return tuple(modes or APPLY_MODES)


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

    return [p for p in init_params(VICTIMS[name]) if p != "seed"]


def init_params(cls: type) -> list[str]:
    """Named constructor parameters of a class, without `self` and `seed`."""
    sig = inspect.signature(cls.__init__)
    return [
        p.name
        for p in sig.parameters.values()
        if p.name not in ("self", "seed") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
