"""The README's Python API attack-and-audit example runs as printed (parsed out of README.md)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if "run_audit" in b]
    assert len(found) == 1, "expected one attack-and-audit example in README.md"
    return found[0]


def test_readme_attack_and_audit_example_runs(tmp_path, monkeypatch):
    code = _example()
    assert 8 <= len([line for line in code.splitlines() if line.strip()]) <= 16
    monkeypatch.chdir(tmp_path)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "README.md", "exec"), {})
    out = buf.getvalue()
    m = re.search(r"ASR poisoned ([0-9.]+), unpoisoned ([0-9.]+)", out)
    assert m, out
    assert 0 <= float(m.group(2)) <= 1 and 0 <= float(m.group(1)) <= 1
    assert "two-sample: detection AUROC" in out and "random: detection AUROC" in out
