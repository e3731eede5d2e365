"""The results store: one SQLite database (stdlib sqlite3, WAL) in the run directory.

Tables

* ``meta``   -- the run's config (YAML text and canonical JSON), its digest, creation time;
* ``cells``  -- one row per cell: its parameters, status (pending / ok / failed), metrics, timings,
  error text. A row is created `pending` when the run is planned and turned into `ok` or `failed`
  by one UPDATE when the cell ends, so a crash (even SIGKILL) leaves either the old row or the
  finished one, never a partial or duplicate row (the key is the primary key);
* ``steps``  -- one row per execution of an expensive step (data, poison, baseline, cell), with
  its duration: where the time goes, and proof of what was shared;
* ``blobs``  -- small arrays the report draws (trigger patterns, real missingness masks), as NPZ.

Only the driver process writes the store. It is an index, not the only copy: every finished
cell's metrics also live in `artifacts/cell/<key>/info.json`, so a damaged store
(`StoreDamagedError`) is set aside and rebuilt by rerunning the same command, without
recomputing finished cells.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

STORE_FILE = "results.sqlite"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    data TEXT NOT NULL,
    victim TEXT NOT NULL,
    attack TEXT NOT NULL,
    trigger TEXT NOT NULL,
    seed INTEGER NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'failed')),
    metrics TEXT,
    timings TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    seconds REAL NOT NULL,
    finished_at REAL NOT NULL,
    info TEXT
);
CREATE TABLE IF NOT EXISTS blobs (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    info TEXT NOT NULL,
    data BLOB NOT NULL
);
"""


def _json(obj: Any) -> str:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"cannot store {type(o).__name__} as JSON")

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    return json.dumps(clean(obj), sort_keys=True, default=default)


class StoreDamagedError(ValueError):
    """The results database cannot be read (truncated, overwritten, not SQLite)."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        run_dir = path.parent
        super().__init__(
            f"the results store {path} is damaged ({detail}); rebuild it from the per-cell "
            f"results kept in {run_dir / 'artifacts'} by rerunning the run: ehrbackdoor run "
            f"{run_dir / 'config.yaml'} --out {run_dir} (the damaged file is set aside, finished "
            "cells are not recomputed)"
        )


class Store:
    """Read and write a run's results database."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise FileNotFoundError(f"no results store at {self.path}")
        try:
            self._connect(readonly)
        except sqlite3.DatabaseError as e:
            if getattr(self, "db", None) is not None:
                self.db.close()
            raise StoreDamagedError(self.path, str(e)) from None

    def _connect(self, readonly: bool) -> None:
        self.db = None
        if readonly:
            uri = f"file:{self.path.resolve()}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            with self.transaction():
                for stmt in _SCHEMA.strip().split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
        check = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check}")
        self.db.row_factory = sqlite3.Row

    @classmethod
    def set_aside(cls, path: str | Path) -> Path:
        """Move a damaged database (and its WAL files) out of the way; returns the new name."""
        path = Path(path)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        moved = path.with_name(f"{path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{path}{suffix}")
            if src.exists():
                src.rename(f"{moved}{suffix}")
        return moved

    @classmethod
    def open_run(cls, run_dir: str | Path, readonly: bool = False) -> Store:
        return cls(Path(run_dir) / STORE_FILE, readonly=readonly)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def meta(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, items: dict[str, str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(items.items()),
            )

    # ------------------------------------------------------------------ cells
    def sync_plan(self, cells: Iterable, drop_others: bool = False) -> None:
        """Create `pending` rows for new cells (one transaction); refresh the parameters and
        positions of existing ones; with `drop_others`, delete rows of cells not in the plan."""
        rows = [
            (
                c.key,
                i,
                c.data,
                c.victim,
                c.setting["attack"],
                c.setting["trigger"],
                c.seed,
                _json(c.params()),
            )
            for i, c in enumerate(cells)
        ]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO cells (key, position, data, victim, attack, trigger, seed, params, "
                "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT(key) DO UPDATE SET "
                "position = excluded.position, data = excluded.data, attack = excluded.attack, "
                "params = excluded.params",
                rows,
            )
            if drop_others:
                db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (key TEXT PRIMARY KEY)")
                db.execute("DELETE FROM keep")
                db.executemany("INSERT INTO keep VALUES (?)", [(r[0],) for r in rows])
                db.execute("DELETE FROM cells WHERE key NOT IN (SELECT key FROM keep)")

    def statuses(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.db.execute("SELECT key, status FROM cells")}

    def finish_cell(
        self,
        key: str,
        status: str,
        metrics: dict | None = None,
        timings: dict | None = None,
        error: str | None = None,
    ) -> None:
        """Record a finished cell in one atomic statement."""
        if status not in ("ok", "failed"):
            raise ValueError(f"status must be ok or failed, got {status!r}")
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE cells SET status = ?, metrics = ?, timings = ?, error = ?, "
                "attempts = attempts + 1, finished_at = ? WHERE key = ?",
                (
                    status,
                    None if metrics is None else _json(metrics),
                    None if timings is None else _json(timings),
                    error,
                    time.time(),
                    key,
                ),
            )
            if cur.rowcount != 1:
                raise KeyError(f"cell {key} is not in the store's plan")

    def cells(self, status: str | None = None) -> list[dict[str, Any]]:
        """Rows as dicts (params, metrics, timings decoded), in plan order."""
        q = "SELECT * FROM cells"
        args: tuple = ()
        if status is not None:
            q += " WHERE status = ?"
            args = (status,)
        out = []
        for r in self.db.execute(q + " ORDER BY position", args):
            d = dict(r)
            for k in ("params", "metrics", "timings"):
                d[k] = json.loads(d[k]) if d[k] else None
            out.append(d)
        return out

    def counts(self) -> dict[str, int]:
        c = {"pending": 0, "ok": 0, "failed": 0}
        for s, n in self.db.execute("SELECT status, COUNT(*) FROM cells GROUP BY status"):
            c[s] = n
        return c

    # ------------------------------------------------------------------ steps
    def record_step(
        self, kind: str, key: str, seconds: float, status: str = "ok", info: dict | None = None
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO steps (kind, key, status, seconds, finished_at, info) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (kind, key, status, float(seconds), time.time(), _json(info or {})),
            )

    def steps(self, kind: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM steps", ()
        if kind is not None:
            q, args = q + " WHERE kind = ?", (kind,)
        rows = [dict(r) for r in self.db.execute(q + " ORDER BY id", args)]
        for r in rows:
            r["info"] = json.loads(r["info"]) if r["info"] else {}
        return rows

    # ------------------------------------------------------------------ blobs
    def put_blob(self, key: str, kind: str, arrays: dict[str, np.ndarray], info: dict) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO blobs (key, kind, info, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, info = excluded.info, "
                "data = excluded.data",
                (key, kind, _json(info), buf.getvalue()),
            )

    def has_blob(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM blobs WHERE key = ?", (key,)).fetchone() is not None

    def blobs(self, kind: str | None = None) -> list[tuple[str, dict, dict[str, np.ndarray]]]:
        q, args = "SELECT key, info, data FROM blobs", ()
        if kind is not None:
            q, args = q + " WHERE kind = ?", (kind,)
        out = []
        for key, info, data in self.db.execute(q + " ORDER BY key", args):
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            out.append((key, json.loads(info), arrays))
        return out
