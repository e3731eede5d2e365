"""Run an experiment: plan the cells, share the expensive steps, record each cell as it ends.

The driver (this process) owns the results store. It prepares each data source once, then keeps
the executor busy with the shared steps (poisoning per attack setting and seed, clean baselines per
victim and seed) and with cells whose inputs are ready, cells first so results stream in early.
Finished steps live in `artifacts/` and finished cells in the store, so rerunning the same command
after any interruption (even SIGKILL) skips finished work and recomputes the rest.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ehrbackdoor.experiments import tasks
from ehrbackdoor.experiments.config import ExperimentConfig
from ehrbackdoor.experiments.executors import make_executor
from ehrbackdoor.experiments.plan import Cell, Plan, expand
from ehrbackdoor.experiments.store import SCHEMA_VERSION, Store
from ehrbackdoor.io import atomic_write_text

LOG_FILE = "run.log"
CONFIG_FILE = "config.yaml"
log = logging.getLogger("ehrbackdoor.experiments")


class ConfigChangedError(ValueError):
    """The run directory holds results of another config."""


@dataclass
class RunSummary:
    run_dir: Path
    total: int
    already_done: int = 0
    ok: int = 0
    failed: int = 0
    skipped_failed: int = 0
    seconds: float = 0.0
    steps_run: dict[str, int] = field(default_factory=dict)
    executor: str = ""

    @property
    def ran(self) -> int:
        return self.ok + self.failed


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
    """Open (or create) the store, check the config, and record the plan as pending rows."""
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = expand(config)
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


class _Progress:
    """Rich progress bar: cells done / total, failures, elapsed time, ETA (or nothing)."""

    def __init__(self, enabled: bool, total: int, done: int, console=None) -> None:
        self.enabled = enabled
        self.failed = 0
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("cells  [red]{task.fields[failed]} failed[/red]"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._p.start()
        self._task = self._p.add_task("running", total=total, completed=done, failed=0)

    def status(self, text: str) -> None:
        if self.enabled:
            self._p.update(self._task, description=text)

    def cell_done(self, ok: bool) -> None:
        if not ok:
            self.failed += 1
        if self.enabled:
            self._p.update(self._task, advance=1, failed=self.failed)

    def close(self) -> None:
        if self.enabled:
            self._p.stop()


def _setup_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def run_experiment(
    config: ExperimentConfig,
    run_dir: str | Path,
    *,
    config_text: str | None = None,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    retry_failed: bool = False,
    force: bool = False,
    progress: bool = False,
    console=None,
) -> RunSummary:
    """Run (or resume) every cell of `config` in `run_dir`; returns what was done.

    Finished cells are skipped; failed cells are rerun only with `retry_failed`. A run directory
    holding another config is refused unless `force`.
    """
    run_dir = Path(run_dir)
    t_start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    with _RunLock(run_dir):
        _remove_stale_temporaries(run_dir)
        store, plan = open_run(run_dir, config, config_text, force)
        handler = _setup_log(run_dir)
        try:
            return _Run(store, plan, run_dir, retry_failed).execute(
                executor, jobs, address, progress, console, t_start
            )
        finally:
            log.removeHandler(handler)
            handler.close()
            store.close()


class _RunLock:
    """One driver per run directory: an exclusive lock the OS releases if the driver dies."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._f = None

    def __enter__(self) -> _RunLock:
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


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Half-written step outputs of an interrupted run (never read; safe to delete)."""
    import shutil

    root = run_dir / tasks.ARTIFACTS
    if root.is_dir():
        for tmp in root.glob("*/.*.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Node:
    kind: str
    key: str
    job: dict
    order: int
    deps: set[str] = field(default_factory=set)
    users: list[str] = field(default_factory=list)


class _Run:
    def __init__(self, store: Store, plan: Plan, run_dir: Path, retry_failed: bool) -> None:
        self.store, self.plan, self.run_dir = store, plan, run_dir
        status = store.statuses()
        self.todo: list[Cell] = []
        self.summary = RunSummary(run_dir, len(plan.cells))
        for c in plan.cells:
            s = status.get(c.key, "pending")
            if s == "ok":
                self.summary.already_done += 1
            elif s == "failed" and not retry_failed:
                self.summary.skipped_failed += 1
            else:
                self.todo.append(c)
        self.steps_run: dict[str, int] = defaultdict(int)

    # ------------------------------------------------------------------ driver loop
    def execute(self, executor, jobs, address, progress, console, t_start) -> RunSummary:
        s = self.summary
        log.info(
            "run %s: %d cells, %d finished, %d failed earlier (not retried), %d to run",
            self.run_dir,
            s.total,
            s.already_done,
            s.skipped_failed,
            len(self.todo),
        )
        if not self.todo:
            s.seconds = time.perf_counter() - t_start
            return s
        bar = _Progress(progress, s.total, s.already_done + s.skipped_failed, console)
        ex = None
        try:
            ex = make_executor(executor, jobs, address)  # bad options fail before any work
            s.executor = ex.describe()
            log.info("executor: %s", s.executor)
            bar.status("preparing data")
            self._prepare_data()
            bar.status("running")
            self._schedule(ex, bar)
        except BaseException as e:
            log.error("run stopped: %s: %s", type(e).__name__, e)
            if ex is not None:
                ex.shutdown(cancel=True)
                ex = None
            raise
        finally:
            if ex is not None:
                ex.shutdown()
            bar.close()
        s.seconds = time.perf_counter() - t_start
        s.steps_run = dict(self.steps_run)
        self.store.set_meta(
            {
                "last_run": json.dumps(
                    {
                        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "seconds": round(s.seconds, 1),
                        "ok": s.ok,
                        "failed": s.failed,
                        "already_done": s.already_done,
                        "executor": s.executor,
                        "steps_run": s.steps_run,
                    }
                )
            }
        )
        log.info(
            "done in %.1f s: %d ok, %d failed; steps run: %s",
            s.seconds,
            s.ok,
            s.failed,
            s.steps_run,
        )
        return s

    def _prepare_data(self) -> None:
        """Clean cohorts of every data source the remaining cells use, once each (driver)."""
        for key in dict.fromkeys(c.data_key for c in self.todo):
            step = self.plan.data[key]
            if not tasks.is_done(self.run_dir, "data", key):
                log.info("data %s: preparing %s", key, step.label)
                job = {
                    "run_dir": str(self.run_dir),
                    "key": key,
                    "label": step.label,
                    "spec": step.spec.model_dump(),
                }
                c0 = time.process_time()
                out = tasks.data_task(job)  # errors here are the user's data: raise them
                out["cpu_seconds"] = time.process_time() - c0
                self._step_done("data", key, out)
            self._store_visual("data", key, {"label": step.label})

    def _store_visual(self, kind: str, key: str, extra: dict) -> None:
        info, arrays = tasks.load_visual(self.run_dir, kind, key)
        if arrays and not self.store.has_blob(key):
            self.store.put_blob(key, kind, arrays, {**info, **extra})

    def _step_done(self, kind: str, key: str, out: dict) -> None:
        self.steps_run[kind] += 1
        info = {**(out.get("info") or {}), "wall_seconds": out.get("task_seconds")}
        if "cpu_seconds" in out:
            info["cpu_seconds"] = round(out["cpu_seconds"], 3)
        self.store.record_step(kind, key, out.get("seconds", 0.0), "ok", info)
        log.info("%s %s done in %.2f s", kind, key, out.get("task_seconds", out.get("seconds", 0)))

    def _schedule(self, ex, bar: _Progress) -> None:
        """Run the remaining cells and the shared steps they need, as a dependency graph.

        Nodes are steps (trigger -> poison -> scores; baseline) and cells (poison + baseline, plus
        the data-level detector scores with defences). A node is submitted when its inputs exist;
        among ready nodes cells go first, then poisoning and scoring, then trigger fits and
        baselines, each in the order the cells first need them."""
        rd = str(self.run_dir)
        nodes: dict[str, _Node] = {}
        rank = {"cell": 0, "scores": 1, "poison": 1, "trigger": 2, "baseline": 2}

        def need(kind: str, key: str) -> bool:
            """Create the node of a step unless its result exists; True if it must run."""
            if key in nodes:
                return True
            if tasks.is_done(rd, kind, key):
                if kind == "poison":
                    self._store_visual("poison", key, self._poison_extra(key))
                return False
            node = nodes[key] = _Node(kind, key, self._step_job(kind, key), len(nodes))
            dep = {"poison": ("trigger", "trigger_key"), "scores": ("poison", "poison_key")}
            if kind in dep:
                dkind, attr = dep[kind]
                step = (self.plan.poison if kind == "poison" else self.plan.scores)[key]
                dkey = getattr(step, attr)
                if need(dkind, dkey):
                    node.deps.add(dkey)
                    nodes[dkey].users.append(key)
            return True

        cells: dict[str, Cell] = {}
        for c in self.todo:
            node = _Node("cell", c.key, self._cell_job(c), len(nodes))
            steps = [("poison", c.poison_key), ("baseline", c.baseline_key)]
            if c.scores_key:
                steps.append(("scores", c.scores_key))
            for kind, key in steps:
                if need(kind, key):
                    node.deps.add(key)
                    nodes[key].users.append(c.key)
            nodes[c.key] = node
            cells[c.key] = c

        ready: list[tuple[int, int, str]] = []
        for n in nodes.values():
            if not n.deps:
                heapq.heappush(ready, (rank[n.kind], n.order, n.key))
        in_flight: dict[Future, str] = {}
        remaining = len(cells)

        def fail(key: str, error: str) -> None:
            """A node cannot run: record failed cells, and fail whatever waits on it."""
            nonlocal remaining
            n = nodes.pop(key, None)
            if n is None:
                return
            if n.kind == "cell":
                remaining -= 1
                self._cell_done(cells[key], {"error": error, "traceback": ""}, bar)
                return
            for user in n.users:
                fail(user, error)

        while remaining:
            while len(in_flight) < ex.capacity and ready:
                _, _, key = heapq.heappop(ready)
                if key not in nodes:
                    continue
                n = nodes[key]
                fn = tasks.cell_task if n.kind == "cell" else tasks.TASKS[n.kind]
                in_flight[ex.submit(fn, n.job)] = key
            if not in_flight:  # pragma: no cover - would be a bug in the graph above
                raise RuntimeError("scheduler stalled with cells waiting; please report a bug")
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in done:
                key = in_flight.pop(fut)
                n = nodes[key]
                out = _result(fut)
                if n.kind == "cell":
                    nodes.pop(key)
                    remaining -= 1
                    self._cell_done(cells[key], out, bar)
                    continue
                if "error" in out:
                    self.steps_run[f"{n.kind} failed"] += 1
                    self.store.record_step(
                        n.kind, key, out.get("task_seconds", 0.0), "failed", {"error": out["error"]}
                    )
                    log.error("%s %s failed: %s\n%s", n.kind, key, out["error"], out["traceback"])
                    fail(key, f"{n.kind} step failed: {out['error']}")
                    continue
                self._step_done(n.kind, key, out)
                if n.kind == "poison":
                    self._store_visual("poison", key, self._poison_extra(key))
                nodes.pop(key)
                for user in n.users:
                    u = nodes.get(user)
                    if u is None:
                        continue
                    u.deps.discard(key)
                    if not u.deps:
                        heapq.heappush(ready, (rank[u.kind], u.order, u.key))

    def _poison_extra(self, key: str) -> dict:
        step = self.plan.poison[key]
        return {"setting": step.setting, "seed": step.seed, "data_key": step.data_key}

    def _step_job(self, kind: str, key: str) -> dict:
        rd = str(self.run_dir)
        if kind == "poison":
            p = self.plan.poison[key]
            job = {
                "run_dir": rd,
                "key": key,
                "data_key": p.data_key,
                "trigger_key": p.trigger_key,
                "setting": p.setting,
                "seed": p.seed,
            }
        elif kind == "trigger":
            t = self.plan.triggers[key]
            job = {
                "run_dir": rd,
                "key": key,
                "data_key": t.data_key,
                "trigger": t.trigger,
                "params": t.params,
                "seed": t.seed,
            }
        elif kind == "scores":
            sc = self.plan.scores[key]
            job = {
                "run_dir": rd,
                "key": key,
                "data_key": sc.data_key,
                "poison_key": sc.poison_key,
                "defences": sc.defences,
                "seed": sc.seed,
            }
        else:
            b = self.plan.baselines[key]
            job = {
                "run_dir": rd,
                "key": key,
                "data_key": b.data_key,
                "victim": b.victim,
                "params": b.params,
                "seed": b.seed,
            }
        return job

    def _cell_job(self, c: Cell) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "key": c.key,
            "data_key": c.data_key,
            "poison_key": c.poison_key,
            "baseline_key": c.baseline_key,
            "victim": c.victim,
            "params": c.victim_params,
            "setting": c.setting,
            "seed": c.seed,
            "bootstrap": c.bootstrap,
            "defence": c.defence,
            "scores_key": c.scores_key,
        }

    def _cell_done(self, c: Cell, out: dict, bar: _Progress) -> None:
        if "error" in out:
            self.store.finish_cell(c.key, "failed", error=out["error"])
            self.summary.failed += 1
            log.error(
                "cell %s (%s) failed: %s\n%s", c.key, _describe(c), out["error"], out["traceback"]
            )
            bar.cell_done(False)
            return
        out["timings"]["cpu_seconds"] = round(out.get("cpu_seconds", float("nan")), 3)
        self.store.finish_cell(c.key, "ok", out["metrics"], out["timings"])
        self.steps_run["cell"] += 1
        self.store.record_step("cell", c.key, out["timings"]["train_seconds"], "ok", out["timings"])
        self.summary.ok += 1
        log.info(
            "cell %s (%s): ASR %.3f, clean AUROC %.3f (%.1f s)",
            c.key,
            _describe(c),
            out["metrics"]["asr"],
            out["metrics"]["clean_auroc"],
            out["timings"]["cell_seconds"],
        )
        bar.cell_done(True)


def _result(fut: Future) -> dict:
    """A step's summary; a worker that died becomes an error (a broken local pool stops the run,
    since no further step can be submitted to it)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return fut.result()
    except BrokenProcessPool:
        raise RuntimeError(
            "a worker process died (out of memory?); rerun the same command to resume"
        ) from None
    except Exception as e:  # e.g. a Ray worker lost with its node
        return {"error": f"{type(e).__name__}: {e}", "traceback": ""}


def _describe(c: Cell) -> str:
    s = c.setting
    params = ", ".join(f"{k}={v}" for k, v in s["trigger_params"].items())
    return (
        f"{c.victim}, {s['trigger']}{f' ({params})' if params else ''}, target {s['target']}, "
        f"rate {s['rate']}, {s['apply']}, seed {c.seed}"
    )
