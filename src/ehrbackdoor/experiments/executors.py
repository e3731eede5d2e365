"""Where steps run: in this process, in a local process pool, or as Ray tasks on a cluster.

An executor takes `(step function, job)` and returns a `concurrent.futures.Future` of the step's
summary; `capacity` is how many steps the runner keeps in flight. Steps read and write the run
directory themselves; only the driver writes the results store. With Ray, the run directory must be
reachable at the same path from every node (a shared file system; trivially so on one machine).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context

from ehrbackdoor.experiments.plan import Job
from ehrbackdoor.experiments.worker import configure_worker, guarded, init_pool_worker

EXECUTORS = ("local", "ray")
Step = Callable[[Job], dict]


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


#: CPU threads of every step, whatever the executor: results must not depend on it (floating-point
#: reductions split over threads can round differently), and one thread per step with one step per
#: core is also the fastest way to fill a machine with many small trainings.
STEP_THREADS = 1


class InlineExecutor:
    """Runs each step in this process when submitted (`--jobs 1`): simplest to debug. The
    process's thread settings are pinned like a worker's for the run and restored afterwards."""

    name = "local"

    def __init__(self) -> None:
        self.capacity = 1
        self.threads = STEP_THREADS
        self._restore = configure_worker(self.threads)

    def submit(self, fn: Step, job: Job) -> Future:
        fut: Future = Future()
        fut.set_result(guarded(fn, job))
        return fut

    def shutdown(self, cancel: bool = False) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None

    def describe(self) -> str:
        return "local, 1 job (in process)"


#: Imported once by the fork server, so every worker starts with them loaded (seconds each).
PRELOAD = ["torch", "sklearn.metrics", "ehrbackdoor.victims", "ehrbackdoor.pipeline.cell"]


def _context():
    """Workers forked from a fork server that has imported torch and the victims once (fast
    start, no state inherited from the driver); fresh spawned interpreters where there is none."""
    try:
        ctx = get_context("forkserver")
    except ValueError:  # pragma: no cover - Windows
        return get_context("spawn")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class LocalExecutor:
    """A pool of `jobs` fresh worker processes (forked from a clean fork server, never from the
    driver), each pinned to one thread per step; they end with the driver, however it ends."""

    name = "local"

    def __init__(self, jobs: int) -> None:
        self.capacity = jobs
        self.threads = STEP_THREADS
        self._pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=_context(),
            initializer=init_pool_worker,
            initargs=(self.threads, os.getpid()),
        )

    def submit(self, fn: Step, job: Job) -> Future:
        return self._pool.submit(guarded, fn, job)

    def shutdown(self, cancel: bool = False) -> None:
        """Wait for the pool to drain; with `cancel`, stop the running steps too (an interrupted
        run must not leave workers computing: their outputs are rebuilt on resume)."""
        if not cancel:
            self._pool.shutdown(wait=True)
            return
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            with contextlib.suppress(Exception):
                p.terminate()
        for p in procs:
            with contextlib.suppress(Exception):
                p.join(timeout=5)

    def describe(self) -> str:
        return f"local, {self.capacity} worker processes x {self.threads} thread(s)"


def _ray_step(fn: Step, job: dict, threads: int) -> dict:
    return guarded(fn, job, threads)


class RayExecutor:
    """Steps as Ray tasks (1 CPU each) on an existing cluster, or a local instance.

    `address`: a cluster address (`HOST:PORT`, `ray://...`, `auto`); `local` starts a private
    instance on 127.0.0.1 with `jobs` CPUs for this run. Without an address, `RAY_ADDRESS` or
    `auto` is used.
    """

    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError(
                "the ray executor needs Ray, which is not installed: "
                "pip install 'ehrbackdoor[ray]' (or 'ray[default]')"
            ) from None
        self._ray = ray
        address = address or os.environ.get("RAY_ADDRESS") or "auto"
        kwargs = {"ignore_reinit_error": True, "log_to_driver": False}
        try:
            if address == "local":
                ray.init(
                    num_cpus=jobs or default_jobs(),
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    **kwargs,
                )
            else:
                ray.init(address=address, **kwargs)
        except ConnectionError as e:
            raise ValueError(f"cannot connect to a Ray cluster at {address!r}: {e}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, min(jobs, cpus) if jobs else cpus)
        self.threads = STEP_THREADS
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_step)
        self._address = address

    def submit(self, fn: Step, job: Job) -> Future:
        return self._remote.remote(fn, job, self.threads).future()

    def shutdown(self, cancel: bool = False) -> None:
        self._ray.shutdown()

    def describe(self) -> str:
        return f"ray at {self._address}, {self.capacity} tasks at a time"


def make_executor(kind: str = "local", jobs: int | None = None, address: str | None = None):
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; allowed: {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    if kind == "ray":
        return RayExecutor(address, jobs)
    if address is not None:
        raise ValueError("--address is only used with --executor ray")
    jobs = jobs or default_jobs()
    return InlineExecutor() if jobs == 1 else LocalExecutor(jobs)
