"""Declarative experiments: a YAML config expanded into cells, run with shared steps on a local
process pool or Ray, each cell's result one row of a SQLite store in the run directory.

```python
from ehrbackdoor.experiments import format_results, load_config, run_experiment

cfg = load_config("configs/quickstart.yaml")
run_experiment(cfg, "runs/quickstart", jobs=2)
print(format_results("runs/quickstart"))
```

Modules: `config` (schema, loading), `plan` (cells and shared steps), `runner` (scheduling,
resume), `executors` (local pool, Ray), `tasks` (the steps workers run), `store` (SQLite),
`results` (aggregation), `frontier` (ASR against the strongest data-level detector, and the
poisoning rate an ASR level needs), `presets` (the quickstart); the CLI commands live in
`ehrbackdoor.cli.experiments`. Names are imported
lazily so the CLI and worker processes start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "config",
    "ExperimentConfig": "config",
    "load_config": "config",
    "Cell": "plan",
    "Plan": "plan",
    "expand": "plan",
    "aggregate": "results",
    "format_results": "results",
    "frontier_table": "frontier",
    "rate_for_asr": "frontier",
    "ConfigChangedError": "runner",
    "RunSummary": "runner",
    "run_experiment": "runner",
    "Store": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
