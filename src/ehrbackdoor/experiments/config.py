"""The experiment config: one YAML file, validated by pydantic, expanded into cells.

```yaml
name: quickstart
data:                        # one source, or a list of them (each with a `name`)
  path: ${EHRBACKDOOR_DATA:-../data/physionet2012}   # relative to this file; env override
  # synthetic: {stays: 1500, seed: 0}                 # ... or a generated cohort
  split: {seed: 0, fractions: [0.7, 0.15, 0.15]}
victims:                     # names, or name: {hyperparameters}
  lr: {}
  gru: {max_epochs: 5}
attacks:                     # every list is a grid; scalars are fixed
  - name: value
    trigger: temporal
    target: [0, 1]
    rate: [0.01, 0.02, 0.05]
    strength: [0.5, 1, 2]    # any other key is a parameter of the trigger
    apply: [observed, all]
seeds: 5                     # or a list: [0, 1, 2]
evaluation: {bootstrap: 1000}
defences: [range-check, spectral, perfect]   # or "all", a family; optional
defence_params: {range-check: {z_max: 6}}    # optional, per defence
k_factor: 1.5                # mitigation removes ceil(k_factor * rate * n_train) stays
```

Errors name the offending key (`attacks[0].apply`) and, where there is a fixed set, the allowed
values. A trigger parameter whose value is itself a list (`variables`) is written as a list of
lists: every list is a grid.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

#: Attack fields that belong to the threat model; every other key of an attack is a trigger
#: parameter.
THREAT_FIELDS = ("target", "rate", "apply", "selection")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """An invalid experiment config; the message names the key and the allowed values."""


# ------------------------------------------------------------------------------ registries
def trigger_names() -> list[str]:
    from ehrbackdoor.attacks import TRIGGERS

    return sorted(TRIGGERS)


def trigger_param_names(trigger: str) -> list[str]:
    from ehrbackdoor.attacks import TRIGGERS

    return _init_params(TRIGGERS[trigger])


def apply_modes(trigger: str | None = None) -> tuple[str, ...]:
    """Apply modes a trigger accepts (its own `apply_modes` if it declares them)."""
    from ehrbackdoor.attacks import TRIGGERS
    from ehrbackdoor.attacks.triggers.base import APPLY_MODES

    cls = TRIGGERS.get(trigger) if trigger else None
    modes = getattr(cls, "apply_modes", None)
    if modes is None and cls is not None and is_missing_trigger(trigger):
        try:
            from ehrbackdoor.attacks.triggers.missing import MISSING_APPLY_MODES, MODE_ALIASES

            modes = (*MISSING_APPLY_MODES, *MODE_ALIASES)
        except ImportError:  # pragma: no cover - missing triggers reorganised
            modes = None
    return tuple(modes or APPLY_MODES)


def is_missing_trigger(trigger: str) -> bool:
    """Triggers that change which values are observed rather than the values themselves."""
    from ehrbackdoor.attacks import TRIGGERS

    try:
        from ehrbackdoor.attacks.triggers.missing import MissingTrigger
    except ImportError:  # pragma: no cover
        return trigger.startswith("missing")
    cls = TRIGGERS.get(trigger)
    return cls is not None and issubclass(cls, MissingTrigger)


def defence_names() -> list[str]:
    """What `defences` accepts: "all", a family or registry names."""
    from ehrbackdoor.defences import DEFENCES, FAMILIES

    return ["all", *FAMILIES, *sorted(DEFENCES)]


def victim_names() -> list[str]:
    from ehrbackdoor.victims import VICTIMS

    return sorted(VICTIMS)


def victim_param_names(name: str) -> list[str]:
    from ehrbackdoor.victims import VICTIMS

    return [p for p in _init_params(VICTIMS[name]) if p != "seed"]


def _init_params(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [
        p.name
        for p in sig.parameters.values()
        if p.name not in ("self", "seed") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]


def _listed(values) -> str:
    return ", ".join(str(v) for v in values)


def _as_grid(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


# --------------------------------------------------------------------------------- models
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Model):
    """How a source is cut into train / validation / test (its official split wins, if any)."""

    seed: int = 0
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
    seed: int = 0


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
            raise _KeyError("name", f"unknown victim {self.name!r}; allowed: {_listed(names)}")
        allowed = victim_param_names(self.name)
        bad = sorted(set(self.params) - set(allowed))
        if bad:
            raise _KeyError(
                f"params.{bad[0]}",
                f"not a parameter of the {self.name} victim; allowed: {_listed(allowed)}",
            )
        from ehrbackdoor.victims import make_victim

        try:
            make_victim(self.name, seed=0, **self.params)
        except (ValueError, TypeError) as e:
            raise _KeyError("params", f"{self.name}: {e}") from None
        return self


class AttackSpec(_Model):
    """One attack family with a grid over its threat model and trigger parameters.

    Keys other than the named fields are trigger parameters (`strength`, `variable`, ...); they may
    also be given under `params`. Every list is a grid axis.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str | None = None
    trigger: str | list[str]
    target: int | list[int] = 1
    rate: float | list[float] = 0.02
    apply: str | list[str] = "observed"
    selection: str | list[str] = "non-target"
    params: dict[str, Any] = {}

    @property
    def triggers(self) -> list[str]:
        return _as_grid(self.trigger)

    @property
    def label(self) -> str:
        return self.name or "+".join(self.triggers)

    def trigger_params(self) -> dict[str, Any]:
        return {**self.params, **(self.model_extra or {})}

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, v):
        names = trigger_names()
        for t in _as_grid(v):
            if t not in names:
                raise ValueError(f"unknown trigger {t!r}; allowed: {_listed(names)}")
        if not _as_grid(v):
            raise ValueError("needs at least one trigger")
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v):
        for t in _as_grid(v):
            if t not in (0, 1):
                raise ValueError(
                    f"{t!r} is not allowed; allowed: 0 (missed detection), 1 (false alarm)"
                )
        return v

    @field_validator("rate")
    @classmethod
    def _rate(cls, v):
        for r in _as_grid(v):
            if not 0 < r < 1:
                raise ValueError(
                    f"{r!r} is not a share of the training stays; allowed: 0 < rate < 1"
                )
        return v

    @field_validator("selection")
    @classmethod
    def _selection(cls, v):
        from ehrbackdoor.attacks.threat import SELECTIONS

        for s in _as_grid(v):
            if s not in SELECTIONS:
                raise ValueError(f"{s!r} is not allowed; allowed: {_listed(SELECTIONS)}")
        return v

    @model_validator(mode="after")
    def _grid_is_valid(self):
        for axis in ("target", "rate", "apply", "selection", "trigger"):
            if not _as_grid(getattr(self, axis)):
                raise ValueError(f"`{axis}` is an empty list")
        tp = self.trigger_params()
        for name in tp:
            if not _as_grid(tp[name]):
                raise ValueError(f"trigger parameter `{name}` is an empty list")
        for trig in self.triggers:
            modes = apply_modes(trig)
            for a in _as_grid(self.apply):
                if a not in modes:
                    raise _KeyError(
                        "apply", f"{a!r} is not allowed for {trig}; allowed: {_listed(modes)}"
                    )
            allowed = trigger_param_names(trig)
            bad = sorted(set(tp) - set(allowed))
            if bad:
                raise _KeyError(
                    bad[0],
                    f"not a parameter of the {trig} trigger; allowed: {_listed(allowed)}",
                )
            from ehrbackdoor.attacks import make_trigger

            for combo in _product(tp):
                try:
                    make_trigger(trig, seed=0, **combo)
                except (ValueError, TypeError) as e:
                    key = next((k for k in sorted(combo) if k in str(e)), None)
                    msg = f"{trig} trigger: {e}"
                    raise (_KeyError(key, msg) if key else ValueError(msg)) from None
        return self

    def settings(self) -> list[dict[str, Any]]:
        """Every point of this attack's grid (without the seed), in a stable order."""
        out = []
        for trig in self.triggers:
            for target, rate, apply, sel in itertools.product(
                _as_grid(self.target),
                _as_grid(self.rate),
                _as_grid(self.apply),
                _as_grid(self.selection),
            ):
                for params in _product(self.trigger_params()):
                    out.append(
                        {
                            "attack": self.label,
                            "trigger": trig,
                            "target": int(target),
                            "rate": float(rate),
                            "apply": apply,
                            "selection": sel,
                            "trigger_params": dict(sorted(params.items())),
                        }
                    )
        return out


class _KeyError(ValueError):
    """A validation error that belongs to one key of the model (moved there in the message)."""

    def __init__(self, key: str, msg: str) -> None:
        super().__init__(msg)
        self.key = key


def _product(params: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(params)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(_as_grid(params[k]) for k in keys))
    ]


class EvaluationSpec(_Model):
    bootstrap: int = Field(1000, ge=1)


class ExperimentConfig(_Model):
    """A whole experiment: data sources x attacks x victims x seeds, each cell with its defences."""

    name: str = "experiment"
    description: str | None = None
    data: list[DataSpec]
    victims: list[VictimSpec]
    attacks: list[AttackSpec]
    seeds: list[int] = [0]
    evaluation: EvaluationSpec = EvaluationSpec()
    defences: list[str] = []
    defence_params: dict[str, dict[str, Any]] = {}
    k_factor: float = Field(1.5, gt=0)

    @field_validator("data", mode="before")
    @classmethod
    def _data_list(cls, v):
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

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_list(cls, v):
        return [v] if isinstance(v, dict) else v

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v):
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError(f"a number of seeds must be >= 1, got {v}")
            return list(range(v))
        return v

    @field_validator("defences", mode="before")
    @classmethod
    def _defences(cls, v):
        from ehrbackdoor.defences import parse_defences

        if v is None or v == []:
            return []
        if not isinstance(v, str | list | tuple) or not all(
            isinstance(x, str) for x in _as_grid(v)
        ):
            raise ValueError(f"give defence names, a family or 'all', got {v!r}")
        try:
            return parse_defences(v)
        except ValueError as e:
            raise ValueError(f"{e}; allowed: {_listed(defence_names())}") from None

    @model_validator(mode="after")
    def _defence_params(self):
        from ehrbackdoor.defences import make_defence

        for name, params in self.defence_params.items():
            if name not in self.defences:
                raise _KeyError(
                    f"defence_params.{name}",
                    f"not a defence of this config; allowed: {_listed(self.defences) or '(none)'}",
                )
            try:
                make_defence(name, **{"seed": 0, **params})
            except (ValueError, TypeError) as e:
                raise _KeyError(f"defence_params.{name}", f"{name}: {e}") from None
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
                raise ValueError(f"`{what}` lists {_listed(dup)} more than once")
        for what in ("data", "victims", "attacks", "seeds"):
            if not getattr(self, what):
                raise _KeyError(what, "must list at least one entry")
        return self

    def canonical(self) -> dict:
        """The config as plain JSON-able data (stored with the run; compared on resume). Without
        defences the defence options are left out, so runs from before they existed resume."""
        d = json.loads(self.model_dump_json())
        if not self.defences:
            d.pop("defence_params")
            d.pop("k_factor")
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
        }

    def digest(self) -> str:
        return stable_hash(self.canonical())


def stable_hash(obj: Any, n: int = 16) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# -------------------------------------------------------------------------------- loading
def expand_env(value: Any, where: str = "") -> Any:
    """Substitute `${VAR}` and `${VAR:-default}` in every string of a parsed YAML document."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        got = os.environ.get(name)
        if got:
            return got
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set and has no default")

    return _ENV.sub(sub, value)


def _format_errors(e: ValidationError, source: str) -> str:
    lines = []
    for err in e.errors():
        loc = list(err["loc"])
        ctx = err.get("ctx") or {}
        exc = ctx.get("error")
        msg = err["msg"]
        if isinstance(exc, _KeyError):
            loc.extend(exc.key.split("."))
            msg = str(exc)
        elif isinstance(exc, ValueError):
            msg = str(exc)
        elif err["type"] == "extra_forbidden":
            msg = "unknown key" + _allowed_keys(loc)
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{_loc(loc)}: {msg}")
    head = f"invalid experiment config {source}" if source else "invalid experiment config"
    return head + ":\n  " + "\n  ".join(lines)


_KEYS = {
    "": ExperimentConfig,
    "data": DataSpec,
    "split": SplitSpec,
    "synthetic": SyntheticSpec,
    "evaluation": EvaluationSpec,
}


def _allowed_keys(loc: list) -> str:
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    model = _KEYS.get(parents[-1] if parents else "")
    if model is None:
        return ""
    return "; allowed: " + _listed(model.model_fields)


def _loc(loc: list) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "config"


def parse_config(doc: Any, source: str = "") -> ExperimentConfig:
    """Validate a parsed YAML document (env variables already expanded)."""
    if not isinstance(doc, dict):
        raise ConfigError(
            f"invalid experiment config {source}: expected a mapping with data, victims, attacks"
        )
    try:
        return ExperimentConfig.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def load_config(
    path: str | Path, data: str | None = None, base_dir: str | Path | None = None
) -> ExperimentConfig:
    """Read, expand and validate a YAML config; relative data paths resolve against its folder.

    `data` overrides the data path: `PATH` for a config with one source, `NAME=PATH` for one of
    several (what `ehrbackdoor run --data` passes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config {path} not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    return config_from_dict(doc, base_dir or path.resolve().parent, data, source=str(path))


def config_from_dict(
    doc: Any, base_dir: str | Path, data: str | None = None, source: str = ""
) -> ExperimentConfig:
    doc = expand_env(doc)
    cfg = parse_config(doc, source)
    return resolve_paths(cfg, Path(base_dir), data)


def resolve_paths(cfg: ExperimentConfig, base: Path, data: str | None = None) -> ExperimentConfig:
    """Make data paths absolute (relative to `base`) and apply a `--data` override."""
    sources = list(cfg.data)
    if data is not None:
        name, sep, p = data.partition("=")
        if sep and not Path(data).exists():
            idx = [i for i, d in enumerate(sources) if d.label == name]
            if not idx:
                raise ConfigError(
                    f"--data {data}: no data source named {name!r}; "
                    f"allowed: {_listed(d.label for d in sources)}"
                )
            i = idx[0]
        else:
            if len(sources) != 1:
                raise ConfigError(
                    f"--data: the config has {len(sources)} data sources; use NAME=PATH with NAME "
                    f"one of {_listed(d.label for d in sources)}"
                )
            i, p = 0, data
        d = sources[i]
        sources[i] = d.model_copy(
            update={"path": str(Path(p).expanduser().resolve()), "synthetic": None}
        )

    def absolute(p: str | None) -> str | None:
        if p is None:
            return None
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else (base / q).resolve())

    out = []
    for d in sources:
        split = d.split.model_copy(update={"file": absolute(d.split.file)})
        out.append(
            d.model_copy(
                update={
                    "path": absolute(d.path),
                    "test_path": absolute(d.test_path),
                    "split": split,
                }
            )
        )
    return cfg.model_copy(update={"data": out})
