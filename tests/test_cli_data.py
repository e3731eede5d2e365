"""The `data` commands end to end, through the real CLI."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from ehrbackdoor.cli import app

runner = CliRunner()


def test_synth_info_export(tmp_path):
    d = tmp_path / "synth"
    r = runner.invoke(app, ["data", "synth", "--out", str(d), "--stays", "300", "--seed", "2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["data", "info", str(d), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["format"] == "mimic3" and info["n_stays"] == 300
    assert info["splits"]["method"] == "official"
    assert sum(info["splits"][p] for p in ("train", "val", "test")) == 300
    assert len(info["variables"]) == 17
    assert 0.5 <= info["grid_missing_rate"] <= 0.75

    out = tmp_path / "grid.npz"
    r = runner.invoke(
        app,
        [
            "data",
            "export",
            str(d),
            "--representation",
            "grid",
            "--layout",
            "benchmark",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    with np.load(out, allow_pickle=False) as z:
        assert z["X"].shape == (300, 48, 76) and z["X"].dtype == np.float32
        assert z["y"].shape == (300,) and z["stay_id"][0].endswith("_timeseries.csv")
        assert len(z["columns"]) == 76 and z["columns"][-1] == "mask->pH"

    out = tmp_path / "features.npz"
    r = runner.invoke(
        app, ["data", "export", str(d), "--representation", "features", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    with np.load(out, allow_pickle=False) as z:
        assert z["X"].shape == (300, 714)
        assert np.isnan(z["X"]).any()  # empty windows stay NaN: imputation is the victim's job


def test_info_on_real_physionet(physionet_dir):
    r = runner.invoke(app, ["data", "info", str(physionet_dir), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["n_stays"] == 8000 and info["n_positive"] == 1122
    assert info["splits"] == {
        "method": "stratified",
        "seed": 0,
        "train": 5600,
        "val": 1200,
        "test": 1200,
    }
    assert info["cleaning"]["dropped_out_of_range_total"] == 3728


def test_bad_inputs_are_clear(tmp_path):
    r = runner.invoke(app, ["data", "info", str(tmp_path)])
    assert r.exit_code == 2 and "not a recognised data source" in r.output
    r = runner.invoke(
        app,
        [
            "data",
            "export",
            str(tmp_path),
            "--out",
            str(tmp_path / "x.npz"),
            "--representation",
            "pixels",
        ],
    )
    assert r.exit_code == 2
    r = runner.invoke(app, ["data", "fetch", "mimic4", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown source" in r.output


def test_synth_refuses_a_non_empty_directory(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "old.csv").write_text("stale\n")
    r = runner.invoke(app, ["data", "synth", "--out", str(d), "--stays", "50"])
    assert r.exit_code == 2 and "not empty" in r.output, r.output
    assert sorted(p.name for p in d.iterdir()) == ["old.csv"]
    f = tmp_path / "file"
    f.write_text("x")
    r = runner.invoke(app, ["data", "synth", "--out", str(f), "--stays", "50"])
    assert r.exit_code == 2 and "not a directory" in r.output, r.output


def test_export_checks_its_output_before_reading(tmp_path):
    r = runner.invoke(app, ["data", "export", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "is a directory" in r.output, r.output
