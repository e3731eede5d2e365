"""Killing a run at any moment (SIGKILL) and rerunning it gives the rows of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from ehrbackdoor.experiments.config import load_config
from ehrbackdoor.experiments.runner import run_experiment
from ehrbackdoor.experiments.store import STORE_FILE, Store
from tests.experiments.conftest import comparable, tiny_doc, write_config

DRIVER = (
    "import sys\n"
    "from ehrbackdoor.experiments import load_config, run_experiment\n"
    "run_experiment(load_config(sys.argv[1]), sys.argv[2], jobs=2)\n"
)


def _finished(db_path) -> int:
    if not db_path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM cells WHERE status = 'ok'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    config = write_config(tmp_path, tiny_doc())
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(config), str(run_dir)],
        start_new_session=True,  # its own process group: the driver and its pool workers
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _finished(run_dir / STORE_FILE) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    con = sqlite3.connect(run_dir / STORE_FILE)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    statuses = dict(con.execute("SELECT status, COUNT(*) FROM cells GROUP BY status").fetchall())
    con.close()
    assert statuses.get("ok", 0) >= 3 and statuses.get("pending", 0) >= 1, statuses

    # rerunning the same command finishes the run
    cfg = load_config(config)
    s = run_experiment(cfg, run_dir, jobs=2)
    assert s.already_done >= 3 and s.already_done + s.ok == 12 and s.failed == 0

    # ... with exactly the rows of a run that was never interrupted (in this process: the numbers
    # do not depend on the executor or on --jobs either)
    s = run_experiment(cfg, tmp_path / "clean", jobs=1)
    assert s.ok == 12
    with (
        Store.open_run(run_dir, readonly=True) as a,
        Store.open_run(tmp_path / "clean", readonly=True) as b,
    ):
        rows_a, rows_b = a.cells(), b.cells()
    assert len(rows_a) == 12 and len({r["key"] for r in rows_a}) == 12
    assert comparable(rows_a) == comparable(rows_b)
    # no half-written step output survives the rerun
    assert list((run_dir / "artifacts").glob("*/.*.tmp-*")) == []
