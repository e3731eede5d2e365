"""A damaged results store is rebuilt from the per-cell results in artifacts/ (no cell is
recomputed); a damaged step output is rebuilt by --retry-failed."""

from __future__ import annotations

import pytest

from ehrbackdoor.experiments.config import config_from_dict
from ehrbackdoor.experiments.runner import run_experiment
from ehrbackdoor.experiments.store import STORE_FILE, Store, StoreDamagedError
from tests.experiments.conftest import comparable, tiny_doc


def test_damaged_store_is_detected_and_rebuilt_without_recomputing(tmp_path, monkeypatch):
    cfg = config_from_dict(tiny_doc(victims={"lr": {}}, seeds=[0]), tmp_path)
    run = tmp_path / "run"
    assert run_experiment(cfg, run, jobs=1).ok == 3
    with Store.open_run(run, readonly=True) as store:
        before = comparable(store.cells())
    (run / STORE_FILE).write_bytes(b"not a database at all" * 100)
    for suffix in ("-wal", "-shm"):
        (run / f"{STORE_FILE}{suffix}").unlink(missing_ok=True)

    with pytest.raises(StoreDamagedError, match="ehrbackdoor run") as e:
        Store.open_run(run, readonly=True)
    assert str(run / "config.yaml") in str(e.value)

    import ehrbackdoor.victims.fit as fit

    def no_training(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(fit, "fit_victim", no_training)
    s = run_experiment(cfg, run, jobs=1)
    assert (s.already_done, s.ok, s.failed) == (3, 0, 0)
    with Store.open_run(run, readonly=True) as store:
        assert comparable(store.cells()) == before
        assert store.blobs("poison")  # the report's figures came back too
    assert len(list(run.glob(f"{STORE_FILE}.damaged-*"))) == 1
    assert "restored from artifacts/cell" in (run / "run.log").read_text()


def test_damaged_step_output_is_rebuilt_by_retry_failed(tmp_path):
    doc = tiny_doc(victims={"lr": {}}, seeds=[0])
    doc["attacks"] = [doc["attacks"][1]]
    run = tmp_path / "run"
    assert run_experiment(config_from_dict(doc, tmp_path), run, jobs=1).ok == 1
    (changes,) = (run / "artifacts" / "poison").glob("*/changes.npz")
    changes.write_bytes(changes.read_bytes()[:100])  # truncated on disk

    doc["victims"] = {"lr": {}, "mlp": {"max_epochs": 2}}  # a new cell reads the damaged output
    cfg = config_from_dict(doc, tmp_path)
    s = run_experiment(cfg, run, jobs=1, force=True)
    assert (s.already_done, s.ok, s.failed) == (1, 0, 1)
    s = run_experiment(cfg, run, jobs=1, retry_failed=True)
    assert (s.ok, s.failed) == (1, 0) and s.steps_run.get("poison") == 1
    assert "output damaged, rebuilding it" in (run / "run.log").read_text()
