"""Tiny experiment configs shared by the runner, resume, CLI and executor tests."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

#: Victim hyperparameters that keep training to a fraction of a second.
TINY_VICTIMS = {
    "lr": {},
    "gru": {"max_epochs": 2, "patience": 1},
}


def tiny_doc(victims: dict | None = None, seeds=(0, 1), **over) -> dict:
    doc = {
        "name": "tiny",
        "data": {"synthetic": {"stays": 400, "seed": 1}},
        "victims": copy.deepcopy(victims if victims is not None else TINY_VICTIMS),
        "attacks": [
            {"name": "value", "trigger": "temporal", "rate": [0.05, 0.1], "strength": 2.0},
            {"name": "fixed", "trigger": "fixed", "rate": 0.05, "value": 200.0, "hours": 12},
        ],
        "seeds": list(seeds),
        "evaluation": {"bootstrap": 50},
    }
    doc.update(over)
    return doc


def write_config(folder: Path, doc: dict, name: str = "tiny.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def comparable(rows: list[dict]) -> list[tuple]:
    """What must be identical between two runs of the same config (not timings)."""
    return [
        (r["key"], r["position"], r["status"], r["params"], r["metrics"], r["error"]) for r in rows
    ]
