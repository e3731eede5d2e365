"""The attack entries of an experiment config: one trigger family with a grid over its threat
model (target, rate, apply, selection, space), evaluation protocol and trigger parameters.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ehrbackdoor.experiments.config.errors import KeyValidationError, listed
from ehrbackdoor.experiments.config.expand import MAX_CELLS, as_grid, grid_size, product
from ehrbackdoor.experiments.config.registry import (
    apply_modes,
    grid_apply_modes,
    has_grid_form,
    protocol_names,
    selection_names,
    space_names,
    trigger_names,
    trigger_param_names,
)

#: Attack fields that belong to the threat model; every other key of an attack is a trigger
#: parameter.
THREAT_FIELDS = ("target", "rate", "apply", "selection", "space")
#: Grid axes of an attack besides the trigger and its parameters, in settings order.
AXES = ("target", "rate", "apply", "selection", "space", "protocol")
#: Axes whose default value is left out of a setting (and of the config digest), so runs and
#: results of configs that do not use them stay exactly as they were.
AXIS_DEFAULTS = {"space": "raw", "protocol": "honest"}


def _check_targets(v: Any, is_label: Callable[[Any], bool]) -> Any:
    """`v` (a target or a grid of them) unchanged, or the one error for its first value that
    `is_label` refuses (before and after pydantic's coercion: YAML `true` is refused too)."""
    for t in as_grid(v):
        if not is_label(t):
            raise ValueError(
                f"{t!r} is not allowed; allowed: 0 (missed detection), 1 (false alarm)"
            )
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttackSpec(_Model):
    """One attack family with a grid over its threat model and trigger parameters.

    Keys other than the named fields are trigger parameters (`strength`, `variable`, ...); they may
    also be given under `params`. Every list is a grid axis, `space` (raw / grid) and `protocol`
    (honest / paper) included. `victims` (optional) limits the attack to some of the config's
    victims.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str | None = None
    trigger: str | list[str]
    target: StrictInt | list[StrictInt] = 1
    rate: float | list[float] = 0.02
    apply: str | list[str] = "observed"
    selection: str | list[str] = "non-target"
    space: str | list[str] = "raw"
    protocol: str | list[str] = "honest"
    victims: list[str] | None = None
    params: dict[str, Any] = {}

    @property
    def triggers(self) -> list[str]:
        return as_grid(self.trigger)

    @property
    def label(self) -> str:
        return self.name or "+".join(self.triggers)

    def trigger_params(self) -> dict[str, Any]:
        return {**self.params, **(self.model_extra or {})}

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, v):
        names = trigger_names()
        for t in as_grid(v):
            if t not in names:
                raise ValueError(f"unknown trigger {t!r}; allowed: {listed(names)}")
        if not as_grid(v):
            raise ValueError("needs at least one trigger")
        return v

    @field_validator("target", mode="before")
    @classmethod
    def _target_not_bool(cls, v):
        # YAML `true` is not the label 1: refuse it with the allowed values, in one line.
        return _check_targets(v, lambda t: not isinstance(t, bool))

    @field_validator("target")
    @classmethod
    def _target(cls, v):
        return _check_targets(v, lambda t: t in (0, 1))

    @field_validator("rate")
    @classmethod
    def _rate(cls, v):
        for r in as_grid(v):
            if not 0 < r < 1:
                raise ValueError(
                    f"{r!r} is not a share of the training stays; allowed: 0 < rate < 1"
                )
        return v

    @field_validator("selection", "space", "protocol")
    @classmethod
    def _named(cls, v, info: ValidationInfo):
        allowed = {"selection": selection_names, "space": space_names, "protocol": protocol_names}[
            info.field_name
        ]()
        for s in as_grid(v):
            if s not in allowed:
                raise ValueError(f"{s!r} is not allowed; allowed: {listed(allowed)}")
        return v

    def applies_to(self, victim: str) -> bool:
        return self.victims is None or victim in self.victims

    def n_settings(self) -> int:
        """Number of points of this attack's grid (what `settings()` would return)."""
        axes = [as_grid(getattr(self, a)) for a in AXES]
        return (
            len(self.triggers) * math.prod(len(a) for a in axes) * grid_size(self.trigger_params())
        )

    @model_validator(mode="after")
    def _grid_is_valid(self, info: ValidationInfo):
        limit = (info.context or {}).get("max_cells", MAX_CELLS)
        if limit is not None and self.n_settings() > limit:
            raise ValueError(
                f"the grid of this attack has {self.n_settings():,} points, more than the limit "
                f"of {limit:,} cells; shrink the grid or raise the limit (run --max-cells)"
            )
        for axis in (*AXES, "trigger"):
            if not as_grid(getattr(self, axis)):
                raise ValueError(f"`{axis}` is an empty list")
        tp = self.trigger_params()
        for name in tp:
            if not as_grid(tp[name]):
                raise ValueError(f"trigger parameter `{name}` is an empty list")
        for trig in self.triggers:
            modes = apply_modes(trig)
            if "grid" in as_grid(self.space):
                if not has_grid_form(trig):
                    raise KeyValidationError(
                        "space",
                        f"{trig} has no grid-space form (grid space adds a value pattern to "
                        "hourly bins); use temporal, white-noise or full-cov, or space: raw",
                    )
                grid_modes = grid_apply_modes()
                for a in as_grid(self.apply):
                    if a not in grid_modes:
                        raise KeyValidationError(
                            "apply",
                            f"{a!r} is not allowed in grid space; allowed: {listed(grid_modes)}",
                        )
            for a in as_grid(self.apply):
                if a not in modes:
                    raise KeyValidationError(
                        "apply", f"{a!r} is not allowed for {trig}; allowed: {listed(modes)}"
                    )
            allowed = trigger_param_names(trig)
            bad = sorted(set(tp) - set(allowed))
            if bad:
                raise KeyValidationError(
                    bad[0],
                    f"not a parameter of the {trig} trigger; allowed: {listed(allowed)}",
                )
            from ehrbackdoor.attacks import make_trigger

            for combo in product(tp):
                try:
                    make_trigger(trig, seed=0, **combo)
                except (ValueError, TypeError) as e:
                    key = next((k for k in sorted(combo) if k in str(e)), None)
                    msg = f"{trig} trigger: {e}"
                    raise (KeyValidationError(key, msg) if key else ValueError(msg)) from None
        return self

    def settings(self) -> list[dict[str, Any]]:
        """Every point of this attack's grid (without the seed), in a stable order."""
        out = []
        for trig in self.triggers:
            for target, rate, apply, sel, space, protocol in itertools.product(
                *(as_grid(getattr(self, a)) for a in AXES)
            ):
                for params in product(self.trigger_params()):
                    setting = {
                        "attack": self.label,
                        "trigger": trig,
                        "target": int(target),
                        "rate": float(rate),
                        "apply": apply,
                        "selection": sel,
                    }
                    for axis, value in (("space", space), ("protocol", protocol)):
                        if value != AXIS_DEFAULTS[axis]:
                            setting[axis] = value
                    setting["trigger_params"] = dict(sorted(params.items()))
                    out.append(setting)
        return out
