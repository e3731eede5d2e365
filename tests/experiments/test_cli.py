"""The typer commands run, results, report (and demo's pieces) on a local app."""

from __future__ import annotations

import csv
import io
import json

import typer
from typer.testing import CliRunner

from ehrbackdoor.cli.experiments import register
from tests.experiments.conftest import tiny_doc, write_config

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_commands_are_registered():
    names = {c.name for c in _app().registered_commands}
    assert names == {"run", "results", "report", "demo"}


def test_run_results_report(tmp_path):
    app = _app()
    doc = tiny_doc(victims={"lr": {}}, seeds=[0, 1])
    config = write_config(tmp_path / "cfg", doc)
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "6 cells: 0 already finished, 6 ran, 0 failed" in r.output

    r = runner.invoke(app, ["results", str(out)])
    assert r.exit_code == 0, r.output
    assert "6 cells finished, 0 failed, 0 pending" in r.output
    assert "| victim |" in r.output and "| lr " in r.output
    asr_tables = [part.split("\n\n")[1] for part in r.output.split("Attack success rate (ASR)")[1:]]
    assert sum(t.count("| lr ") for t in asr_tables) == 3  # one row per setting, seeds pooled
    assert "Student-t interval over seeds" in r.output
    assert all(len(line) <= 80 for line in r.output.splitlines())

    r = runner.invoke(app, ["results", str(out), "--format", "long"])
    long_rows = list(csv.DictReader(io.StringIO(r.output)))
    assert {"metric", "mean", "lo", "hi", "interval"} <= set(long_rows[0])
    assert {row["interval"] for row in long_rows if row["metric"] == "asr"} == {"t over seeds"}

    r = runner.invoke(app, ["results", str(out), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(r.output)))
    assert len(rows) == 3
    assert {"asr", "asr_lo", "asr_hi", "n_seeds", "victim", "rate"} <= set(rows[0])
    assert all(row["n_seeds"] == "2" for row in rows)

    r = runner.invoke(app, ["results", str(out), "--format", "json"])
    data = json.loads(r.output)
    assert data["cells"] == {"pending": 0, "ok": 6, "failed": 0}
    assert len(data["results"]) == 3

    r = runner.invoke(app, ["results", str(out), "--format", "xml"])
    assert r.exit_code == 2 and "markdown, csv, json, long" in r.output

    r = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")

    # rerun: nothing to do
    r = runner.invoke(app, ["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"])
    assert r.exit_code == 0 and "6 already finished, 0 ran" in r.output

    # changed config: refused with a clear message, accepted with --force
    doc["seeds"] = [0]
    write_config(tmp_path / "cfg", doc)
    r = runner.invoke(app, ["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"])
    assert r.exit_code == 2
    assert "holds results of a different config" in r.output and "--force" in r.output
    r = runner.invoke(
        app, ["run", str(config), "--out", str(out), "--jobs", "1", "--quiet", "--force"]
    )
    assert r.exit_code == 0 and "3 cells: 3 already finished" in r.output


def test_config_errors_are_one_clear_message(tmp_path):
    doc = tiny_doc()
    doc["attacks"][0]["apply"] = "sometimes"
    config = write_config(tmp_path, doc)
    r = runner.invoke(_app(), ["run", str(config), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "attacks[0].apply" in r.output and "observed" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(_app(), ["run", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "not found" in r.output
    r = runner.invoke(_app(), ["results", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no results store" in r.output


def test_failed_cells_exit_nonzero(tmp_path):
    doc = tiny_doc(victims={"lr": {}}, seeds=[0])
    doc["attacks"] = [{"trigger": "fixed", "rate": 0.95, "value": 200.0}]  # too few candidates
    config = write_config(tmp_path, doc)
    r = runner.invoke(
        _app(), ["run", str(config), "--out", str(tmp_path / "o"), "--jobs", "1", "--quiet"]
    )
    assert r.exit_code == 1
    assert "1 failed" in r.output and "--retry-failed" in r.output
    r = runner.invoke(_app(), ["results", str(tmp_path / "o")])
    assert "0 cells finished, 1 failed" in r.output


def test_ray_executor_missing_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    config = write_config(tmp_path, tiny_doc(victims={"lr": {}}, seeds=[0]))
    r = runner.invoke(
        _app(),
        ["run", str(config), "--out", str(tmp_path / "o"), "--executor", "ray", "--quiet"],
    )
    assert r.exit_code == 2
    assert "ehrbackdoor[ray]" in r.output


def test_demo_command_wiring(tmp_path, monkeypatch):
    """`demo` runs the demo config, prints the tables and writes the report (here with a tiny
    stand-in for the demo config; the real one is timed in the README)."""
    import yaml

    from ehrbackdoor.experiments import presets
    from ehrbackdoor.experiments.config import config_from_dict

    doc = tiny_doc(victims={"lr": {}}, seeds=[0])
    doc["attacks"] = [doc["attacks"][1]]

    def tiny_demo(run_dir):
        return config_from_dict(doc, run_dir), yaml.safe_dump(doc)

    monkeypatch.setattr(presets, "demo", tiny_demo)
    out = tmp_path / "demo"
    r = runner.invoke(_app(), ["demo", "--out", str(out), "--jobs", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "| victim |" in r.output and "| lr " in r.output
    assert "1 cells finished" in r.output
    assert (out / "report.html").is_file() and f"wrote {out / 'report.html'}" in r.output


def test_run_refuses_bad_outputs_and_huge_grids_up_front(tmp_path):
    app = _app()
    config = write_config(tmp_path / "cfg", tiny_doc(victims={"lr": {}}, seeds=[0]))
    f = tmp_path / "a-file"
    f.write_text("x")
    r = runner.invoke(app, ["run", str(config), "--out", str(f), "--quiet"])
    assert r.exit_code == 2 and "not a directory" in r.output, r.output
    r = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "r"), "--max-cells", "2"])
    assert r.exit_code == 2 and "3 cells" in r.output and "--max-cells" in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_run_refuses_a_name_that_leaves_runs(tmp_path):
    app = _app()
    config = write_config(tmp_path / "cfg", tiny_doc(victims={"lr": {}}, seeds=[0], name="../../x"))
    r = runner.invoke(app, ["run", str(config), "--quiet"])
    assert r.exit_code == 2 and "name" in r.output and "'../../x'" in r.output, r.output
