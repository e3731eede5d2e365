"""The import layers of pyproject.toml's [tool.importlinter] hold (imports run one way)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_contracts_are_kept():
    r = _lint()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "broken" in r.stdout and "0 broken" in r.stdout


def test_a_broken_contract_fails(tmp_path):
    # The cli imports typer, so forbidding it must be reported: the check can fail.
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "ehrbackdoor"\ninclude_external_packages = true\n\n'
        '[[tool.importlinter.contracts]]\nname = "cli without typer"\ntype = "forbidden"\n'
        'source_modules = ["ehrbackdoor.cli"]\nforbidden_modules = ["typer"]\n'
    )
    r = _lint("--config", str(config))
    assert r.returncode != 0
    assert "BROKEN" in r.stdout


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_code_is_formatted_and_lint_clean():
    pytest.importorskip("ruff")
    fmt = _ruff("format", "--check")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    lint = _ruff("check")
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_no_module_over_450_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "src").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert not long, long
