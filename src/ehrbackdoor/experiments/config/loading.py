"""Reading a config: bounded YAML, `${VAR:-default}` expansion, validation, absolute paths."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ehrbackdoor.experiments.config.errors import ConfigError, format_errors, listed
from ehrbackdoor.experiments.config.expand import MAX_CELLS
from ehrbackdoor.experiments.config.schema import (
    DataSpec,
    EvaluationSpec,
    ExperimentConfig,
    SplitSpec,
    SyntheticSpec,
)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: Most YAML nodes a config may expand to once aliases are followed (a 352-byte alias bomb
#: expands to billions); real configs have a few hundred.
MAX_YAML_NODES = 100_000


def read_yaml(text: str, source: str = "") -> Any:
    """Parse one YAML document safely, refusing recursive aliases and alias bombs."""
    where = source or "config"
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {e}") from None
    if node is None:
        return None
    _check_size(node, where)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} is not valid YAML: {e}") from None
    finally:
        loader.dispose()


def _check_size(root: yaml.Node, where: str) -> None:
    """Count nodes as if every alias were copied out, without copying (memoised per node)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ConfigError(f"{where}: a YAML alias refers to a node that contains it")
        active.add(key)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                n += size(child)
                if n > MAX_YAML_NODES:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                n += size(k) + size(v)
                if n > MAX_YAML_NODES:
                    break
        active.discard(key)
        if n > MAX_YAML_NODES:
            raise ConfigError(
                f"{where}: the YAML expands to more than {MAX_YAML_NODES:,} nodes once its "
                "aliases are followed; write the config out without nested aliases"
            )
        sizes[key] = n
        return n

    size(root)


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


_KEYS = {
    "": ExperimentConfig,
    "data": DataSpec,
    "split": SplitSpec,
    "synthetic": SyntheticSpec,
    "evaluation": EvaluationSpec,
}


def parse_config(doc: Any, source: str = "", max_cells: int | None = MAX_CELLS) -> ExperimentConfig:
    """Validate a parsed YAML document (env variables already expanded); a config expanding to
    more than `max_cells` cells is refused (None: no limit)."""
    if not isinstance(doc, dict):
        raise ConfigError(
            f"invalid experiment config {source}: expected a mapping with data, victims, attacks"
        )
    try:
        return ExperimentConfig.model_validate(doc, context={"max_cells": max_cells})
    except ValidationError as e:
        raise ConfigError(format_errors(e, source, _KEYS)) from None


def load_config(
    path: str | Path,
    data: str | None = None,
    base_dir: str | Path | None = None,
    max_cells: int | None = MAX_CELLS,
) -> ExperimentConfig:
    """Read, expand and validate a YAML config; relative data paths resolve against its folder.

    `data` overrides the data path: `PATH` for a config with one source, `NAME=PATH` for one of
    several (what `ehrbackdoor run --data` passes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config {path} not found")
    doc = read_yaml(path.read_text(), source=str(path))
    return config_from_dict(
        doc, base_dir or path.resolve().parent, data, source=str(path), max_cells=max_cells
    )


def config_from_dict(
    doc: Any,
    base_dir: str | Path,
    data: str | None = None,
    source: str = "",
    max_cells: int | None = MAX_CELLS,
) -> ExperimentConfig:
    """Validate a parsed document, then make its data paths absolute against `base_dir`."""
    doc = expand_env(doc)
    cfg = parse_config(doc, source, max_cells=max_cells)
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
                    f"allowed: {listed(d.label for d in sources)}"
                )
            i = idx[0]
        else:
            if len(sources) != 1:
                raise ConfigError(
                    f"--data: the config has {len(sources)} data sources; use NAME=PATH with NAME "
                    f"one of {listed(d.label for d in sources)}"
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
