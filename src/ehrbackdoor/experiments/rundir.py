"""The run directory: one driver at a time, leftovers of killed runs, and the config it holds.

A run directory holds `results.sqlite` (the store), `config.yaml`, `run.log`, `artifacts/` and a
`.lock` file. `open_run` opens (or creates) the store, refuses a directory that holds results of
another config unless forced, and records the plan's cells as pending rows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import yaml

from ehrbackdoor.experiments.artifacts import remove_stale_temporaries
from ehrbackdoor.experiments.config import ExperimentConfig
from ehrbackdoor.experiments.plan import Plan, expand
from ehrbackdoor.experiments.store import SCHEMA_VERSION, Store, StoreDamagedError
from ehrbackdoor.io import atomic_write_text

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"
log = logging.getLogger("ehrbackdoor.experiments")

__all__ = [
    "CONFIG_FILE",
    "ConfigChangedError",
    "RunLock",
    "check_config",
    "open_run",
    "remove_stale_temporaries",
]


class ConfigChangedError(ValueError):
    """The run directory holds results of another config."""


class RunLock:
    """One driver per run directory: an exclusive lock the OS releases if the driver dies."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._f = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            return self
        self._f = open(self.path, "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._f.seek(0)
            holder = self._f.read().strip() or "?"
            self._f.close()
            self._f = None
            raise ValueError(
                f"{self.path.parent} is in use by another run (pid {holder}); wait for it to "
                "finish or stop it first"
            ) from None
        self._f.seek(0)
        self._f.truncate()
        self._f.write(str(os.getpid()))
        self._f.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self._f is not None:
            self._f.close()  # closing releases the lock


def check_config(store: Store, config: ExperimentConfig, force: bool) -> bool:
    """True if the store holds another config (allowed only with `force` once a cell has
    finished)."""
    old = store.get_meta("config_digest")
    if old is None or old == config.digest():
        return False
    counts = store.counts()
    if not force and counts["ok"] + counts["failed"] > 0:  # nothing finished: nothing to lose
        before = json.loads(store.get_meta("config_json") or "{}")
        after = config.canonical()
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        raise ConfigChangedError(
            f"{store.path.parent} holds results of a different config (changed: "
            f"{', '.join(keys) or 'details'}); rerun with --force to replace it (cells no longer in "
            "the config are dropped, finished cells still in it are kept), or choose another --out"
        )
    return True


def open_run(
    run_dir: Path, config: ExperimentConfig, config_text: str | None, force: bool
) -> tuple[Store, Plan]:
    """Open (or create) the store, check the config, and record the plan as pending rows.

    A damaged store is set aside (``results.sqlite.damaged-<time>``) and a new one created; the
    runner then restores finished cells from their results in `artifacts/cell/`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = expand(config)
    try:
        store = Store.open_run(run_dir)
    except StoreDamagedError as e:
        moved = Store.set_aside(e.path)
        log.warning("%s; set aside as %s, rebuilding it from artifacts/cell", e, moved.name)
        store = Store.open_run(run_dir)
    try:
        changed = check_config(store, config, force)
        canonical = yaml.safe_dump(config.canonical(), sort_keys=False)
        meta = {
            "config_digest": config.digest(),
            "config_json": json.dumps(config.canonical()),
            "config_yaml": config_text or canonical,
            "name": config.name,
            "schema_version": SCHEMA_VERSION,
        }
        if store.get_meta("created") is None:
            meta["created"] = time.strftime("%Y-%m-%d %H:%M:%S")
        store.sync_plan(plan.cells, drop_others=changed)
        store.set_meta(meta)
        atomic_write_text(run_dir / CONFIG_FILE, canonical)
    except BaseException:
        store.close()
        raise
    return store, plan
