"""Worker-process setup: pinned CPU threads, failures as data, and no worker outliving its run.

Every step runs with the same thread count (one by default), so a cell's numbers never depend on
the executor or on --jobs. A worker of the local pool also ends when the driver that started it
dies (even by SIGKILL): on Linux the kernel signals it (``PR_SET_PDEATHSIG``), elsewhere a
watcher thread notices the parent is gone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def configure_worker(threads: int = 1) -> Callable[[], None]:
    """Pin the CPU threads of this process: torch, the BLAS / OpenMP pools already loaded and the
    victims' training loop (`ehrbackdoor.victims.training.THREADS_ENV`, read at every fit).
    Returns a function that restores the previous settings (used when steps run in the driver)."""
    from ehrbackdoor.victims.training import THREADS_ENV

    threads = max(1, int(threads))
    env_vars = (*_THREAD_VARS, THREADS_ENV)
    old_env = {v: os.environ.get(v) for v in env_vars}
    for var in env_vars:
        os.environ[var] = str(threads)
    import torch

    old_torch = torch.get_num_threads()
    torch.set_num_threads(threads)
    limiter = None
    try:  # BLAS / OpenMP pools already loaded (numpy, scikit-learn) ignore the variables above
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - comes with scikit-learn
        pass

    def restore() -> None:
        for var, value in old_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        torch.set_num_threads(old_torch)
        if limiter is not None:
            limiter.restore_original_limits()

    return restore


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, owned by someone else
        return True
    return True


def die_with_parent(driver: int | None = None, poll_seconds: float = 1.0) -> None:
    """End this process when its parent exits, or when the `driver` process is gone.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``. Everywhere: a daemon thread polling the parent
    id (a reparented process has another) and the driver's existence. The local pool forks its
    workers from a fork server, which itself exits when the driver does."""
    parent = os.getppid()
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass

    def gone() -> bool:
        return os.getppid() != parent or (driver is not None and not _alive(driver))

    def watch() -> None:
        while not gone():
            time.sleep(poll_seconds)
        os._exit(1)

    if gone():
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def init_pool_worker(threads: int, driver: int) -> None:
    """Initializer of the local pool's workers: pinned threads, and they end with the driver."""
    die_with_parent(driver)
    configure_worker(threads)


def guarded(fn: Callable[[Any], dict], job: Any, threads: int | None = None) -> dict:
    """Run a step; an exception becomes {"error": ..., "traceback": ...} (never lost in transit)."""
    if threads is not None:
        configure_worker(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out = fn(job)
    except Exception as e:  # noqa: BLE001 - every failure is recorded against its cell
        out = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out["task_seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    out["pid"] = os.getpid()
    return out
