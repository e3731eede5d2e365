"""The results store: round trip, atomic cell updates, read-only access."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from ehrbackdoor.experiments.plan import Cell
from ehrbackdoor.experiments.store import Store


def _cell(key: str, victim: str = "lr", seed: int = 0) -> Cell:
    setting = {
        "attack": "value",
        "trigger": "temporal",
        "target": 1,
        "rate": 0.02,
        "apply": "observed",
        "selection": "non-target",
        "trigger_params": {"strength": 1.0},
    }
    return Cell(key, "synth", "d1", "p1", "b1", victim, {}, setting, seed, 100)


def test_round_trip(tmp_path):
    path = tmp_path / "results.sqlite"
    with Store(path) as s:
        s.set_meta({"config_digest": "abc", "name": "x"})
        s.sync_plan([_cell("c1"), _cell("c2", "mlp"), _cell("c3", seed=1)])
        assert s.counts() == {"pending": 3, "ok": 0, "failed": 0}
        s.finish_cell("c2", "ok", {"asr": 0.5, "auroc": math.nan}, {"train_seconds": 1.25})
        s.finish_cell("c3", "failed", error="ValueError: boom")
        s.record_step("poison", "p1", 0.5, info={"n_poisoned": 3})
        s.put_blob("p1", "poison", {"pattern": np.arange(6.0).reshape(2, 3)}, {"seed": 0})
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    with Store(path, readonly=True) as s:
        assert s.get_meta("config_digest") == "abc"
        rows = {r["key"]: r for r in s.cells()}
        assert [r["key"] for r in s.cells()] == ["c1", "c2", "c3"]  # plan order
        assert rows["c1"]["status"] == "pending" and rows["c1"]["metrics"] is None
        assert rows["c2"]["metrics"] == {"asr": 0.5, "auroc": None}  # NaN stored as null
        assert rows["c2"]["timings"] == {"train_seconds": 1.25}
        assert rows["c2"]["params"]["trigger_params"] == {"strength": 1.0}
        assert rows["c2"]["victim"] == "mlp" and rows["c2"]["attempts"] == 1
        assert rows["c3"]["status"] == "failed" and rows["c3"]["error"] == "ValueError: boom"
        assert [r["kind"] for r in s.steps()] == ["poison"]
        assert s.steps("poison")[0]["info"] == {"n_poisoned": 3}
        ((key, info, arrays),) = s.blobs("poison")
        assert key == "p1" and info == {"seed": 0}
        np.testing.assert_array_equal(arrays["pattern"], np.arange(6.0).reshape(2, 3))
        with pytest.raises(sqlite3.OperationalError):
            s.db.execute("DELETE FROM cells")


def test_plan_sync_keeps_finished_rows_and_never_duplicates(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        s.sync_plan([_cell("c1"), _cell("c2")])
        s.finish_cell("c1", "ok", {"asr": 1.0}, {})
        s.sync_plan([_cell("c1"), _cell("c2"), _cell("c3")])
        assert s.statuses() == {"c1": "ok", "c2": "pending", "c3": "pending"}
        s.sync_plan([_cell("c3"), _cell("c1")], drop_others=True)
        assert s.statuses() == {"c1": "ok", "c3": "pending"}
        assert [r["key"] for r in s.cells()] == ["c3", "c1"]
        n = s.db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        assert n == 2


def test_finish_unknown_cell_and_bad_status(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        s.sync_plan([_cell("c1")])
        with pytest.raises(KeyError):
            s.finish_cell("nope", "ok", {}, {})
        with pytest.raises(ValueError, match="status"):
            s.finish_cell("c1", "running")
        # a failed transaction leaves nothing behind
        with pytest.raises(RuntimeError), s.transaction() as db:
            db.execute("UPDATE cells SET status = 'ok' WHERE key = 'c1'")
            raise RuntimeError
        assert s.statuses() == {"c1": "pending"}


def test_readonly_store_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results store"):
        Store.open_run(tmp_path / "missing", readonly=True)
