"""The pydantic models of an experiment config (its YAML format: `ehrbackdoor.experiments.config`).

The attack entries live in `config.attack`. Errors name the offending key (`attacks[0].apply`) and, where there is a fixed set, the allowed
values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ehrbackdoor.experiments.config.attack import (  # noqa: F401 - re-exported
    AXES,
    AXIS_DEFAULTS,
    THREAT_FIELDS,
    AttackSpec,
    _Model,
)
from ehrbackdoor.experiments.config.errors import KeyValidationError, listed
from ehrbackdoor.experiments.config.expand import MAX_CELLS, as_grid
from ehrbackdoor.experiments.config.hashing import stable_hash
from ehrbackdoor.experiments.config.registry import (
    defence_names,
    preset_names,
    victim_names,
    victim_param_names,
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class SplitSpec(_Model):
    """How a source is cut into train / validation / test (its official split wins, if any)."""

    seed: int = Field(0, ge=0)
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    file: str | None = None

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v):
        if any(f < 0 for f in v) or abs(sum(v) - 1) > 1e-9:
            raise ValueError(f"must be three non-negative numbers summing to 1, got {list(v)}")
        return v


class SyntheticSpec(_Model):
    stays: int = Field(2000, ge=50)
    seed: int = Field(0, ge=0)


class DataSpec(_Model):
    """One data source: a path (any format `ehrbackdoor data info` reads) or a synthetic cohort."""

    name: str | None = None
    path: str | None = None
    synthetic: SyntheticSpec | None = None
    test_path: str | None = None
    split: SplitSpec = SplitSpec()

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.synthetic is None):
            raise ValueError("give exactly one of `path` or `synthetic`")
        if self.synthetic is not None and self.test_path is not None:
            raise ValueError("`test_path` needs a `path` source, not `synthetic`")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.synthetic is not None:
            return f"synthetic-{self.synthetic.stays}"
        return Path(self.path).name

    def identity(self) -> dict:
        """What the clean cohorts depend on (the cache key of the data step)."""
        d = self.model_dump(exclude={"name"})
        if self.synthetic is None:
            d.pop("synthetic")
        return d


class VictimSpec(_Model):
    name: str
    params: dict[str, Any] = {}

    @model_validator(mode="after")
    def _known(self):
        names = victim_names()
        if self.name not in names:
            raise KeyValidationError(
                "name", f"unknown victim {self.name!r}; allowed: {listed(names)}"
            )
        allowed = victim_param_names(self.name)
        bad = sorted(set(self.params) - set(allowed))
        if bad:
            raise KeyValidationError(
                f"params.{bad[0]}",
                f"not a parameter of the {self.name} victim; allowed: {listed(allowed)}",
            )
        from ehrbackdoor.victims import make_victim

        try:
            make_victim(self.name, seed=0, **self.params)
        except (ValueError, TypeError) as e:
            raise KeyValidationError("params", f"{self.name}: {e}") from None
        return self


class EvaluationSpec(_Model):
    bootstrap: int = Field(1000, ge=1)


class ExperimentConfig(_Model):
    """A whole experiment: data sources x attacks x victims x seeds, each cell with its defences."""

    name: str = "experiment"
    description: str | None = None
    data: list[DataSpec]
    victims: list[VictimSpec]
    attacks: list[AttackSpec]
    seeds: list[StrictInt] = [0]
    evaluation: EvaluationSpec = EvaluationSpec()
    defences: list[str] = []
    defence_params: dict[str, dict[str, Any]] = {}
    k_factor: float = Field(1.5, gt=0)
    #: False scores the stays (detection metrics) without removing them and retraining.
    mitigation: bool = True
    #: True also scores the poisoned stays with their target labels but without the trigger, so
    #: each data-level detector's AUROC stands beside what it finds from the selection alone.
    detection_baseline: bool = False
    victim_preset: str = "tuned"

    @field_validator("victim_preset")
    @classmethod
    def _preset(cls, v: str) -> str:
        allowed = preset_names()
        if v not in allowed:
            raise ValueError(f"{v!r} is not allowed; allowed: {listed(allowed)}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # The name is the default run directory (runs/<name>): it must stay one plain folder.
        if not _NAME.fullmatch(v) or ".." in v:
            raise ValueError(
                f"{v!r} is not allowed; use letters, digits, '.', '_' and '-' (no path "
                "separators or '..'), starting with a letter or digit"
            )
        return v

    @field_validator("data", "attacks", mode="before")
    @classmethod
    def _one_or_list(cls, v):
        return [v] if isinstance(v, dict) else v

    @field_validator("victims", mode="before")
    @classmethod
    def _victim_list(cls, v):
        if v is None:
            return []
        if isinstance(v, str):
            v = [v]
        if isinstance(v, dict):
            v = [{"name": k, "params": p or {}} for k, p in v.items()]
        out = []
        for item in v or []:
            if isinstance(item, str):
                out.append({"name": item})
            elif isinstance(item, dict) and "name" not in item and len(item) == 1:
                (k, p), *_ = item.items()
                out.append({"name": k, "params": p or {}})
            else:
                out.append(item)
        return out

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v):
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError(f"a number of seeds must be >= 1, got {v}")
            return list(range(v))
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds_non_negative(cls, v):
        bad = [s for s in v if s < 0]
        if bad:
            raise ValueError(f"seeds must be >= 0, got {bad[0]}")
        return v

    @field_validator("defences", mode="before")
    @classmethod
    def _defences(cls, v):
        from ehrbackdoor.defences import parse_defences

        if v is None or v == []:
            return []
        if not isinstance(v, str | list | tuple) or not all(isinstance(x, str) for x in as_grid(v)):
            raise ValueError(f"give defence names, a family or 'all', got {v!r}")
        try:
            return parse_defences(v)
        except ValueError as e:
            raise ValueError(f"{e}; allowed: {listed(defence_names())}") from None

    @model_validator(mode="after")
    def _defence_params(self):
        from ehrbackdoor.defences import make_defence

        for name, params in self.defence_params.items():
            if name not in self.defences:
                raise KeyValidationError(
                    f"defence_params.{name}",
                    f"not a defence of this config; allowed: {listed(self.defences) or '(none)'}",
                )
            try:
                make_defence(name, **{"seed": 0, **params})
            except (ValueError, TypeError) as e:
                raise KeyValidationError(f"defence_params.{name}", f"{name}: {e}") from None
        return self

    @model_validator(mode="after")
    def _unique(self):
        for what, labels in (
            ("data", [d.label for d in self.data]),
            ("victims", [v.name for v in self.victims]),
            ("seeds", self.seeds),
        ):
            dup = sorted({str(x) for x in labels if labels.count(x) > 1})
            if dup:
                raise ValueError(f"`{what}` lists {listed(dup)} more than once")
        for what in ("data", "victims", "attacks", "seeds"):
            if not getattr(self, what):
                raise KeyValidationError(what, "must list at least one entry")
        names = [v.name for v in self.victims]
        for i, a in enumerate(self.attacks):
            bad = sorted(set(a.victims or []) - set(names))
            if bad or a.victims == []:
                raise KeyValidationError(
                    f"attacks[{i}].victims",
                    f"{listed(bad) or '(empty)'}: name victims of this config; allowed: "
                    f"{listed(names)}",
                )
        return self

    def n_cells(self) -> int:
        """Number of cells the config expands to (data x attack settings x victims x seeds)."""
        per_data = sum(
            a.n_settings() * sum(a.applies_to(v.name) for v in self.victims) for a in self.attacks
        )
        return len(self.data) * per_data * len(self.seeds)

    @model_validator(mode="after")
    def _not_too_many_cells(self, info: ValidationInfo):
        limit = (info.context or {}).get("max_cells", MAX_CELLS)
        if limit is not None and self.n_cells() > limit:
            raise ValueError(
                f"the config expands to {self.n_cells():,} cells, more than the limit of "
                f"{limit:,}; shrink the grid or raise the limit (run --max-cells)"
            )
        return self

    def canonical(self) -> dict:
        """The config as plain JSON-able data (stored with the run; compared on resume). Without
        defences the defence options are left out, so runs from before they existed resume."""
        d = json.loads(self.model_dump_json())
        if not self.defences:
            d.pop("defence_params")
            d.pop("k_factor")
        if d.get("mitigation", True):  # the default leaves digests of earlier runs unchanged
            d.pop("mitigation", None)
        if not d.get("detection_baseline", False):
            d.pop("detection_baseline", None)
        if d.get("victim_preset") == "tuned":  # options at their default leave the digest alone
            d.pop("victim_preset")
        for a in d["attacks"]:
            for axis, default in AXIS_DEFAULTS.items():
                if a.get(axis) == default:
                    a.pop(axis)
            if a.get("victims") is None:
                a.pop("victims", None)
        return d

    def defence_spec(self) -> dict[str, Any] | None:
        """What the defence metrics of a cell depend on (None without defences)."""
        if not self.defences:
            return None
        return {
            "names": list(self.defences),
            "params": {
                n: dict(sorted(self.defence_params.get(n, {}).items())) for n in self.defences
            },
            "k_factor": float(self.k_factor),
            **({} if self.mitigation else {"mitigation": False}),
            **({"baseline": True} if self.detection_baseline else {}),
        }

    def digest(self) -> str:
        return stable_hash(self.canonical())
