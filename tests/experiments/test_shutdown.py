"""Stopping `ehrbackdoor run` by SIGTERM or SIGKILL leaves no process of the run behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ehrbackdoor.experiments.store import STORE_FILE
from tests.experiments.conftest import tiny_doc, write_config
from tests.experiments.test_resume import _finished

CLI = "import sys; sys.argv[0] = 'ehrbackdoor'; from ehrbackdoor.cli import app; app()"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _descendants(root: int) -> set[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None:
                parent[int(d.name)] = st[1]
    out: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie has ended


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_worker_outlives_a_stopped_run(tmp_path, sig):
    config = write_config(tmp_path, tiny_doc())
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "run", str(config), "--out", str(run_dir), "--jobs", "2"],
        start_new_session=True,  # so the test can clean up whatever it finds still running
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while _finished(run_dir / STORE_FILE) < 1 or len(seen) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the run made no progress"
            seen |= _descendants(proc.pid)
            time.sleep(0.1)
        seen |= _descendants(proc.pid)
        assert len(seen) >= 3  # the fork server and two pool workers at least
        os.kill(proc.pid, sig)  # the driver only, as `kill PID` does
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in seen) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = sorted(p for p in seen if _alive(p))
        assert survivors == [], f"still running after {sig.name}: {survivors}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in seen:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode != 0
        assert "run stopped: KeyboardInterrupt" in (run_dir / "run.log").read_text()
