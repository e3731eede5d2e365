"""Run an experiment: plan the cells, share the expensive steps, record each cell as it ends.

The driver (this process) owns the results store. It prepares each data source once, then keeps
the executor busy with the shared steps (poisoning per attack setting and seed, clean baselines per
victim and seed) and with cells whose inputs are ready (`scheduler`). Finished steps live in
`artifacts/` and finished cells in the store, so rerunning the same command after any
interruption (even SIGKILL) skips finished work and recomputes the rest. SIGTERM stops a run like
Ctrl-C: workers are stopped and the store is closed cleanly.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ehrbackdoor.experiments import tasks
from ehrbackdoor.experiments.artifacts import (
    discard,
    is_done,
    load_visual,
    read_info,
    remove_stale_temporaries,
    verify,
)
from ehrbackdoor.experiments.config import ExperimentConfig
from ehrbackdoor.experiments.executors import make_executor
from ehrbackdoor.experiments.plan import Cell, Job, Plan
from ehrbackdoor.experiments.progress import LOG_FILE, Progress, log, setup_log
from ehrbackdoor.experiments.rundir import (
    CONFIG_FILE,
    ConfigChangedError,
    RunLock,
    check_config,
    open_run,
)
from ehrbackdoor.experiments.scheduler import Graph, Node
from ehrbackdoor.experiments.store import Store

# the run directory's parts, importable from here as before
_RunLock = RunLock
__all__ = [
    "CONFIG_FILE",
    "LOG_FILE",
    "ConfigChangedError",
    "RunSummary",
    "check_config",
    "open_run",
    "run_experiment",
]


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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the driver (so it cleans up as after Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


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
    with sigterm_as_interrupt(), RunLock(run_dir):
        remove_stale_temporaries(run_dir)
        handler = setup_log(run_dir)
        try:
            store, plan = open_run(run_dir, config, config_text, force)
            try:
                return _Run(store, plan, run_dir, retry_failed).execute(
                    executor, jobs, address, progress, console, t_start
                )
            finally:
                store.close()
        finally:
            log.removeHandler(handler)
            handler.close()


def dry_run(config: ExperimentConfig, jobs: int | None = None) -> str:
    """What `run_experiment(config)` would do and cost, as text; runs and writes nothing."""
    import os

    from ehrbackdoor.experiments.estimate import describe, estimate

    return describe(estimate(config), jobs or os.cpu_count() or 1)


class _Run:
    def __init__(self, store: Store, plan: Plan, run_dir: Path, retry_failed: bool) -> None:
        self.store, self.plan, self.run_dir = store, plan, run_dir
        self.retry_failed = retry_failed
        status = store.statuses()
        self.todo: list[Cell] = []
        self.summary = RunSummary(run_dir, len(plan.cells))
        self.recovered = 0
        for c in plan.cells:
            s = status.get(c.key, "pending")
            if s == "pending" and self._recover(c):
                s = "ok"
            if s == "ok":
                self.summary.already_done += 1
            elif s == "failed" and not retry_failed:
                self.summary.skipped_failed += 1
            else:
                self.todo.append(c)
        self.steps_run: dict[str, int] = defaultdict(int)
        self.bar: Progress | None = None

    def job(self, step) -> Job:
        return Job(str(self.run_dir), step)

    def _recover(self, c: Cell) -> bool:
        """Record a cell whose result exists in `artifacts/cell/` (a rebuilt store, or a driver
        that died before recording it) without running it again."""
        if not self._have("cell", c.key):
            return False
        try:
            info = read_info(self.run_dir, "cell", c.key)
            metrics, timings = info["metrics"], info["timings"]
        except (OSError, ValueError, KeyError):
            discard(self.run_dir, "cell", c.key)
            return False
        self.store.finish_cell(c.key, "ok", metrics, timings)
        self._store_visual("data", c.data_key, {"label": self.plan.data[c.data_key].label})
        if is_done(self.run_dir, "poison", c.poison_key):
            self._store_visual("poison", c.poison_key, self._poison_extra(c.poison_key))
        self.recovered += 1
        return True

    def _have(self, kind: str, key: str) -> bool:
        """A step's output exists; with --retry-failed it is also checked against its manifest
        and a damaged one is discarded (so the step runs again)."""
        if not is_done(self.run_dir, kind, key):
            return False
        if self.retry_failed and not verify(self.run_dir, kind, key):
            log.warning("%s %s: output damaged, rebuilding it", kind, key)
            discard(self.run_dir, kind, key)
            return False
        return True

    # ------------------------------------------------------------------ driver loop
    def execute(self, executor, jobs, address, progress, console, t_start) -> RunSummary:
        s = self.summary
        if self.recovered:
            log.info("%d finished cells restored from artifacts/cell", self.recovered)
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
        bar = self.bar = Progress(progress, s.total, s.already_done + s.skipped_failed, console)
        ex = None
        try:
            ex = make_executor(executor, jobs, address)  # bad options fail before any work
            s.executor = ex.describe()
            log.info("executor: %s", s.executor)
            bar.status("preparing data")
            self._prepare_data()
            bar.status("running")
            self._graph().run(ex, tasks.run_job, self._step_result, self._cell_result)
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
            if not self._have("data", key):
                log.info("data %s: preparing %s", key, step.label)
                c0 = time.process_time()
                out = tasks.data_task(self.job(step))  # errors here are the user's data: raise
                out["cpu_seconds"] = time.process_time() - c0
                self._step_done("data", key, out)
            self._store_visual("data", key, {"label": step.label})

    def _store_visual(self, kind: str, key: str, extra: dict) -> None:
        info, arrays = load_visual(self.run_dir, kind, key)
        if arrays and not self.store.has_blob(key):
            self.store.put_blob(key, kind, arrays, {**info, **extra})

    def _poison_extra(self, key: str) -> dict:
        step = self.plan.poison[key]
        return {"setting": step.setting, "seed": step.seed, "data_key": step.data_key}

    # ------------------------------------------------------------------ graph
    def _graph(self) -> Graph:
        """The remaining cells and every shared step they need whose output does not exist."""
        g = Graph()
        for c in self.todo:
            g.add(self.job(c))
            steps = [("poison", c.poison_key), ("baseline", c.baseline_key)]
            if c.scores_key:
                steps.append(("scores", c.scores_key))
            for kind, key in steps:
                if self._need(g, kind, key):
                    g.link(key, c.key)
        return g

    #: The shared step each kind of step waits for, and the attribute naming it.
    #: (A paper-protocol lr / mlp baseline waits for its trigger; other baselines name none.)
    _DEPENDS = {
        "poison": ("trigger", "trigger_key"),
        "scores": ("poison", "poison_key"),
        "baseline": ("trigger", "trigger_key"),
    }

    def _need(self, g: Graph, kind: str, key: str) -> bool:
        """Add the node of a step (and of what it needs) unless its output exists; True if it
        must run."""
        if key in g:
            return True
        if self._have(kind, key):
            if kind == "poison":
                self._store_visual("poison", key, self._poison_extra(key))
            return False
        step = self.plan.step(kind, key)
        g.add(self.job(step))
        if kind in self._DEPENDS:
            dkind, attr = self._DEPENDS[kind]
            dkey = getattr(step, attr)
            if dkey is not None and self._need(g, dkind, dkey):
                g.link(dkey, key)
        return True

    # ------------------------------------------------------------------ results
    def _step_done(self, kind: str, key: str, out: dict) -> None:
        self.steps_run[kind] += 1
        info = {**(out.get("info") or {}), "wall_seconds": out.get("task_seconds")}
        if "cpu_seconds" in out:
            info["cpu_seconds"] = round(out["cpu_seconds"], 3)
        self.store.record_step(kind, key, out.get("seconds", 0.0), "ok", info)
        log.info("%s %s done in %.2f s", kind, key, out.get("task_seconds", out.get("seconds", 0)))

    def _step_result(self, n: Node, out: dict) -> None:
        if "error" in out:
            self.steps_run[f"{n.kind} failed"] += 1
            self.store.record_step(
                n.kind, n.key, out.get("task_seconds", 0.0), "failed", {"error": out["error"]}
            )
            log.error("%s %s failed: %s\n%s", n.kind, n.key, out["error"], out["traceback"])
            return
        self._step_done(n.kind, n.key, out)
        if n.kind == "poison":
            self._store_visual("poison", n.key, self._poison_extra(n.key))

    def _cell_result(self, n: Node, out: dict) -> None:
        c: Cell = n.job.step
        bar = self.bar
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
            "cell %s (%s): ASR poisoned %.3f, unpoisoned %.3f; AUROC poisoned, clean %.3f (%.1f s)",
            c.key,
            _describe(c),
            out["metrics"]["asr"],
            out["metrics"].get("asr_baseline", float("nan")),
            out["metrics"]["clean_auroc"],
            out["timings"]["cell_seconds"],
        )
        bar.cell_done(True)


def _describe(c: Cell) -> str:
    s = c.setting
    params = ", ".join(f"{k}={v}" for k, v in s["trigger_params"].items())
    return (
        f"{c.victim}, {s['trigger']}{f' ({params})' if params else ''}, target {s['target']}, "
        f"rate {s['rate']}, {s['apply']}, seed {c.seed}"
    )
