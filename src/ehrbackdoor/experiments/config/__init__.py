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

Modules: `schema` (the pydantic models), `loading` (bounded
YAML, env expansion, paths), `registry` (trigger, victim and defence names the config may use),
`expand` (grid axes and the cell limit), `hashing` (stable content hashes), `errors` (messages
that name the offending key).
"""

from __future__ import annotations

from ehrbackdoor.experiments.config.errors import ConfigError
from ehrbackdoor.experiments.config.expand import MAX_CELLS
from ehrbackdoor.experiments.config.hashing import stable_hash
from ehrbackdoor.experiments.config.loading import (
    MAX_YAML_NODES,
    config_from_dict,
    expand_env,
    load_config,
    parse_config,
    read_yaml,
    resolve_paths,
)
from ehrbackdoor.experiments.config.registry import (
    apply_modes,
    defence_names,
    is_missing_trigger,
    trigger_names,
    trigger_param_names,
    victim_names,
    victim_param_names,
)
from ehrbackdoor.experiments.config.schema import (
    THREAT_FIELDS,
    AttackSpec,
    DataSpec,
    EvaluationSpec,
    ExperimentConfig,
    SplitSpec,
    SyntheticSpec,
    VictimSpec,
)

__all__ = [
    "MAX_CELLS",
    "MAX_YAML_NODES",
    "THREAT_FIELDS",
    "AttackSpec",
    "ConfigError",
    "DataSpec",
    "EvaluationSpec",
    "ExperimentConfig",
    "SplitSpec",
    "SyntheticSpec",
    "VictimSpec",
    "apply_modes",
    "config_from_dict",
    "defence_names",
    "expand_env",
    "is_missing_trigger",
    "load_config",
    "parse_config",
    "read_yaml",
    "resolve_paths",
    "stable_hash",
    "trigger_names",
    "trigger_param_names",
    "victim_names",
    "victim_param_names",
]
