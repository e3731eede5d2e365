"""Measure the per-step cost table that `ehrbackdoor run --dry-run` prices a config with.

Reads finished run directories (their results stores and artifacts) and fits, per step kind and
per victim, seconds = fixed + per_1000 x (thousands of training stays x epochs / the epochs
measured) by least squares over every step of every run (two data sizes or more make the fixed
part identifiable), plus bytes per stay written. For example:

    ehrbackdoor run configs/quickstart.yaml --out /tmp/qs --jobs 2
    ehrbackdoor demo --out /tmp/demo --jobs 2
    python benchmarks/step_costs.py /tmp/qs /tmp/demo > costs.json

Victims and triggers not in the runs keep the entries of the shipped table (`--base`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from ehrbackdoor.experiments.estimate import load_costs
from ehrbackdoor.experiments.store import Store


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def fit(points: list[tuple[float, float]]) -> dict[str, float]:
    """{"fixed", "per_1000"} of y = fixed + per_1000 * x, both >= 0 (a mean when x is one)."""
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    if len(set(np.round(x, 6))) < 2:
        return {"fixed": 0.0, "per_1000": float(y.mean() / max(x.mean(), 1e-9))}
    b, a = np.polyfit(x, y, 1)
    if a < 0:
        a, b = 0.0, float((x * y).sum() / (x * x).sum())
    if b < 0:
        a, b = float(y.mean()), 0.0
    return {"fixed": round(float(a), 4), "per_1000": round(float(b), 4)}


def _run(run_dir: Path) -> dict:
    store = Store.open_run(run_dir, readonly=True)
    try:
        steps = [s for s in store.steps() if s["status"] == "ok"]
        cells = list(store.cells("ok"))
    finally:
        store.close()
    doc = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    defences = doc.get("defences") or []
    n_def = len(defences) if isinstance(defences, list) else 0
    return {"dir": run_dir, "steps": steps, "cells": cells, "n_defences": n_def}


def measure(run_dirs: list[Path], base: dict) -> dict:
    out = json.loads(json.dumps(base))
    pts: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, x: float, y: float) -> None:
        pts.setdefault(name, []).append((x, y))

    disk = {"data": [], "poison": [], "cell": []}
    for r in map(_run, run_dirs):
        data = next(s for s in r["steps"] if s["kind"] == "data")
        info = data["info"]
        n_train = info["n_train"]
        n = n_train + info["n_val"] + info["n_test"]
        add("data", n / 1000, data["seconds"])
        k = n_train / 1000
        for s in r["steps"]:
            if s["kind"] == "trigger":
                add("trigger:" + s["info"].get("trigger", "default"), k, s["seconds"])
            elif s["kind"] == "poison":
                add("poison", n / 1000, s["seconds"])
            elif s["kind"] == "scores":
                per = s["seconds"] / max(1, len(s["info"].get("defences", [1])))
                add("scores", n / 1000, per)
        epochs = {}
        for c in r["cells"]:
            p, t = c["params"], c["timings"] or {}
            v = p["victim"]
            entry = out["victims"].setdefault(v, {})
            e = (p.get("victim_params") or {}).get("max_epochs") or entry.get("default_epochs")
            scale = e / entry["epochs"] if entry.get("epochs") and e else 1.0
            epochs[v] = scale
            add("train:" + v, k * scale, t["train_seconds"])
            rest = t["cell_seconds"] - t["train_seconds"] - t.get("defence_seconds", 0.0)
            add("cell", (n_train + 2 * info["n_test"]) / 1000, rest)
            if "defence_seconds" in t and r["n_defences"]:
                add("retrain", t["train_seconds"] * r["n_defences"], t["defence_seconds"])
        for s in r["steps"]:
            if s["kind"] == "baseline":
                v = s["info"]["victim"]
                add("baseline:" + v, k * epochs.get(v, 1.0), s["seconds"])
        art = r["dir"] / "artifacts"
        n_poison = max(1, sum(s["kind"] == "poison" for s in r["steps"]))
        disk["data"].append(_du(art / "data") / n)
        disk["poison"].append((_du(art / "poison") + _du(art / "trigger")) / n_poison / n)
        disk["cell"].append((_du(art / "cell") + _du(art / "baseline")) / max(1, len(r["cells"])))
    out["data"]["synthetic"] = fit(pts["data"])
    out["poison"] = fit(pts["poison"])
    out["cell"] = fit(pts["cell"])
    for name, p in pts.items():
        kind, _, sub = name.partition(":")
        if kind == "trigger":
            out["triggers"][sub] = fit(p)
        elif kind in ("train", "baseline"):
            out["victims"][sub][kind] = fit(p)
            out["victims"][sub]["measured"] = True
    if "scores" in pts:
        out["defences"]["score"] = fit(pts["scores"])
    if "retrain" in pts:
        x, y = (sum(v) for v in zip(*pts["retrain"], strict=True))
        out["defences"]["retrain_share"] = round(y / x, 3)
    out["disk"] = {
        "data_per_stay": round(float(np.mean(disk["data"]))),
        "poison_per_stay": round(float(np.mean(disk["poison"]))),
        "cell_bytes": round(float(np.mean(disk["cell"]))),
    }
    out["measured_on"] = [d.name for d in run_dirs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", type=Path, nargs="+")
    ap.add_argument("--base", type=Path, default=None, help="table to start from")
    a = ap.parse_args()
    json.dump(measure(a.run_dirs, load_costs(a.base)), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
