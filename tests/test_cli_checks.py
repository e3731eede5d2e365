"""train / attack / audit check their options and outputs before any work: one clear line each."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ehrbackdoor.cli import app
from ehrbackdoor.cli.common import plain_message

runner = CliRunner()


def _fail(args: list[str]) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    return r.output


@pytest.mark.parametrize("command", ["attack", "audit"])
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--models", "lr,mlp,foo"], "unknown victim 'foo'"),
        (["--apply", "bogus"], "--apply 'bogus'"),
        (["--attack", "missing-random", "--apply", "all"], "not allowed for missing-random"),
        (["--rate", "1.5"], "rate must be in (0, 1)"),
        (["--rate", "nan"], "rate must be in (0, 1)"),
        (["--target", "2"], "target must be 0 or 1"),
        (["--attack", "nope"], "unknown attack 'nope'"),
        (["--seed", "-1"], "--seed"),
        (["--split-seed", "-1"], "--split-seed"),
        (["--attack", "fixed", "--value", "nan"], "--value must be a finite number"),
    ],
)
def test_bad_options_fail_before_the_data_load(tmp_path, command, extra, expected):
    # The data path does not exist: an error about it would mean the options came too late.
    out = tmp_path / "out"
    msg = _fail([command, "--data", str(tmp_path / "no-data"), "--out", str(out), *extra])
    assert expected in msg
    assert not out.exists()


def test_audit_checks_defences_and_k_factor_first(tmp_path):
    base = ["audit", "--data", str(tmp_path / "no-data"), "--out", str(tmp_path / "o")]
    assert "unknown defence 'foo'" in _fail([*base, "--defences", "foo"])
    assert "--k-factor" in _fail([*base, "--k-factor", "nan"])


def test_audit_takes_every_option_attack_has():
    def options(name: str) -> set[str]:
        cmd = next(c for c in app.registered_commands if c.name == name)
        import inspect

        return set(inspect.signature(cmd.callback).parameters)

    assert options("attack") - options("audit") == {"bootstrap"}  # audit reports no ASR CI


@pytest.mark.parametrize("command", ["attack", "audit", "train"])
def test_an_output_that_is_a_file_fails_first(tmp_path, command):
    f = tmp_path / "a-file"
    f.write_text("x")
    args = [command, "--data", str(tmp_path / "no-data"), "--out", str(f)]
    if command == "train":
        args += ["--model", "lr"]
    assert "--out" in _fail(args) and "not a directory" in _fail(args)


def test_an_output_that_cannot_be_created_fails_first(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    args = [
        "attack",
        "--data",
        str(tmp_path / "no-data"),
        "--out",
        str(f / "sub"),
        "--models",
        "lr",
    ]
    assert "cannot write there" in _fail(args)


def test_train_rejects_an_unknown_model_first(tmp_path):
    out = tmp_path / "o"
    msg = _fail(["train", "--data", str(tmp_path / "none"), "--model", "foo", "--out", str(out)])
    assert "unknown victim 'foo'" in msg and not out.exists()


def test_messages_carry_no_numpy_reprs():
    assert plain_message("got np.float64(nan), np.int64(3)") == "got nan, 3"


def test_python_m_entry_point():
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    r = subprocess.run(
        [sys.executable, "-m", "ehrbackdoor.cli", "--help"],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    for command in ("data", "train", "attack", "audit", "run", "results", "report", "demo"):
        assert command in r.stdout
