"""Fit, and check on held-out runs, the per-step cost table that `ehrbackdoor run --dry-run` uses.

Reads finished (or partly finished) run directories: their config is expanded into the same plan
the run used, and every step and cell that finished is matched to its measured seconds (results
store) and, for victims trained in epochs, to the epochs the fit really ran (`epochs_run` in the
baseline's artifact). Per step kind, and per victim and preset, it fits seconds = fixed +
per_1000 x (thousands of training stays x epochs run) by least squares, the share of `max_epochs`
fits run per protocol, and bytes per stay written. Then `--check` prices other runs with the table
and prints estimate against measurement:

    python benchmarks/step_costs.py FIT_RUN... > costs.json
    python benchmarks/step_costs.py --check costs.json HELD_OUT_RUN...

Victims and triggers not in the runs keep the entries of the shipped table (`--base`); write the
new table elsewhere first, then copy it over `resources/step_costs.json`. The shipped table was
fitted on quickstart (twice), a PhysioNet lr+mlp paper-preset run and a PhysioNet lstm/gru run,
and checked on the demo and a PhysioNet lr paper-preset grid+raw run that it was not fitted on.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from ehrbackdoor.experiments.config import load_config
from ehrbackdoor.experiments.estimate import estimate, load_costs
from ehrbackdoor.experiments.plan import expand
from ehrbackdoor.experiments.store import Store


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def fit(points: list[tuple[float, float]]) -> dict[str, float]:
    """{"fixed", "per_1000"} of y = fixed + per_1000 * x, both >= 0 (a mean when x is one)."""
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    if len(set(np.round(x, 6))) < 2:
        return {"fixed": 0.0, "per_1000": round(float(y.mean() / max(x.mean(), 1e-9)), 4)}
    b, a = np.polyfit(x, y, 1)
    if a < 0:
        a, b = 0.0, float((x * y).sum() / (x * x).sum())
    if b < 0:
        a, b = float(y.mean()), 0.0
    return {"fixed": round(float(a), 4), "per_1000": round(float(b), 4)}


def _run(run_dir: Path) -> dict:
    """A run's plan, its finished steps and cells by key, and the epochs each baseline ran."""
    cfg = load_config(run_dir / "config.yaml")
    store = Store.open_run(run_dir, readonly=True)
    try:
        steps = {s["key"]: s for s in store.steps() if s["status"] == "ok"}
        cells = {c["key"]: c for c in store.cells("ok")}
    finally:
        store.close()
    epochs = {}
    for key in steps:
        info = run_dir / "artifacts" / "baseline" / key / "info.json"
        if info.is_file():
            run = json.loads(info.read_text()).get("fit_info", {}).get("epochs_run")
            if isinstance(run, int | float) and run > 0:
                epochs[key] = float(run)
    return {
        "dir": run_dir,
        "cfg": cfg,
        "plan": expand(cfg),
        "steps": steps,
        "cells": cells,
        "epochs": epochs,
    }


def _wall(run_dir: Path) -> tuple[float | None, int, int]:
    """(wall seconds of the last start of a run if it finished, else None; its parallel jobs;
    the steps and cells that start ran, fewer than planned when it reused earlier ones)."""
    text = (run_dir / "run.log").read_text(errors="replace")
    text = text[text.rfind(" INFO run ") :]  # the last time the run was started
    done = re.findall(r"INFO done in ([0-9.]+) s.*steps run: (.*)", text)
    jobs = re.findall(r"executor: local, (\d+) (?:job|worker)", text)
    ran = sum(int(n) for n in re.findall(r"'\w+': (\d+)", done[-1][1])) if done else 0
    return (float(done[-1][0]) if done else None), int(jobs[-1]) if jobs else 1, ran


def measure(run_dirs: list[Path], base: dict) -> dict:
    out = json.loads(json.dumps(base))
    pts: dict[str, list[tuple[float, float]]] = {}
    shares: dict[str, dict[str, list[float]]] = {}

    def add(name: str, x: float, y: float) -> None:
        pts.setdefault(name, []).append((x, y))

    disk = {"data": [], "poison": [], "cell": []}
    for r in map(_run, run_dirs):
        plan, steps, cells = r["plan"], r["steps"], r["cells"]
        sizes = {}
        for key, d in plan.data.items():
            if key not in steps:
                continue
            info = steps[key]["info"]
            n = info["n_train"] + info["n_val"] + info["n_test"]
            sizes[key] = (n, info["n_train"], info["n_test"])
            kind = "synthetic" if d.spec.synthetic is not None else "path"
            add("data:" + kind, n / 1000, steps[key]["seconds"])
        for t in plan.triggers.values():
            if t.key in steps and t.data_key in sizes:
                add("trigger:" + t.trigger, sizes[t.data_key][1] / 1000, steps[t.key]["seconds"])
        for p in plan.poison.values():
            if p.key in steps and p.data_key in sizes:
                add("poison", sizes[p.data_key][0] / 1000, steps[p.key]["seconds"])
        for s in plan.scores.values():
            if s.key in steps and s.data_key in sizes:
                add(
                    "scores",
                    sizes[s.data_key][0] / 1000,
                    steps[s.key]["seconds"] / max(1, len(s.defences)),
                )
        preset = {c.baseline_key: c.victim_preset for c in plan.cells}
        vkey, xs = {}, {}
        for b in plan.baselines.values():
            if b.data_key not in sizes:
                continue
            pre = preset.get(b.key, "tuned")
            name = b.victim if pre == "tuned" else f"{b.victim}@{pre}"
            entry = out["victims"].setdefault(name, dict(out["victims"].get(b.victim, {})))
            ep = 1.0
            if "default_epochs" in entry:
                mx = float(b.params.get("max_epochs", entry["default_epochs"]))
                ep = r["epochs"].get(b.key, mx)
                if b.key in r["epochs"]:
                    shares.setdefault(name, {}).setdefault(b.protocol, []).append(ep / mx)
            vkey[b.key], xs[b.key] = name, sizes[b.data_key][1] / 1000 * ep
            if b.key in steps:
                add("baseline:" + name, xs[b.key], steps[b.key]["seconds"])
        n_cells = 0
        for c in plan.cells:
            t = (cells.get(c.key) or {}).get("timings")
            if not t or c.baseline_key not in xs:
                continue
            n_cells += 1
            n, n_train, n_test = sizes[c.data_key]
            add("train:" + vkey[c.baseline_key], xs[c.baseline_key], t["train_seconds"])
            rest = t["cell_seconds"] - t["train_seconds"] - t.get("defence_seconds", 0.0)
            add("cell", (n_train + 2 * n_test) / 1000, rest)
            mitigates = (c.defence or {}).get("mitigation", True)
            names = (c.defence or {}).get("names", []) if mitigates else []
            if names and t.get("defence_seconds"):
                add("retrain", t["train_seconds"] * len(names), t["defence_seconds"])
        art = r["dir"] / "artifacts"
        n = max(v[0] for v in sizes.values())
        n_poison = max(1, sum(p.key in steps for p in plan.poison.values()))
        disk["data"].append(_du(art / "data") / n / max(1, len(sizes)))
        disk["poison"].append((_du(art / "poison") + _du(art / "trigger")) / n_poison / n)
        disk["cell"].append((_du(art / "cell") + _du(art / "baseline")) / max(1, n_cells))
    for name, p in pts.items():
        kind, _, sub = name.partition(":")
        if kind == "data":
            out["data"][sub] = fit(p)
        elif kind == "trigger":
            out["triggers"][sub] = fit(p)
        elif kind in ("train", "baseline"):
            out["victims"][sub][kind] = fit(p)
            out["victims"][sub]["measured"] = True
        elif kind in ("poison", "cell"):
            out[kind] = fit(p)
    for name, by_protocol in shares.items():
        out["victims"][name]["epoch_share"] = {
            k: round(float(np.mean(v)), 3) for k, v in sorted(by_protocol.items())
        }
    if "scores" in pts:
        out["defences"]["score"] = fit(pts["scores"])
    if "retrain" in pts:
        x, y = (sum(v) for v in zip(*pts["retrain"], strict=True))
        out["defences"]["retrain_share"] = round(y / x, 3)
    out["disk"] = {k: round(float(np.mean(v))) for k, v in disk.items()}
    out["disk"] = {
        "data_per_stay": out["disk"]["data"],
        "poison_per_stay": out["disk"]["poison"],
        "cell_bytes": out["disk"]["cell"],
    }
    out["measured_on"] = [d.name for d in run_dirs]
    return out


def check(run_dirs: list[Path], costs: dict) -> list[dict]:
    """Per run: estimated and measured seconds summed over the steps and cells that finished
    (one core), and estimated and measured wall time where the whole run finished."""
    rows = []
    for d in run_dirs:
        r = _run(d)
        est = estimate(r["cfg"], costs)
        done = {k: s["seconds"] for k, s in r["steps"].items()}
        done |= {k: c["timings"]["cell_seconds"] for k, c in r["cells"].items() if c["timings"]}
        keys = [k for k in done if k in est.by_key]
        e, m = sum(est.by_key[k] for k in keys), sum(done[k] for k in keys)
        wall, jobs, ran = _wall(d)
        row = {
            "run": str(d),
            "finished": len(keys),
            "planned": len(est.by_key),
            "est_s": round(e, 1),
            "measured_s": round(m, 1),
            "ratio": round(e / m, 2),
        }
        if wall is not None and ran == len(est.by_key):
            ew = est.wall_seconds(jobs)
            row |= {
                "jobs": jobs,
                "est_wall_s": round(ew, 1),
                "wall_s": wall,
                "wall_ratio": round(ew / wall, 2),
            }
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", type=Path, nargs="+")
    ap.add_argument("--base", type=Path, default=None, help="table to start from")
    ap.add_argument("--check", type=Path, default=None, help="price the runs with this table")
    a = ap.parse_args()
    if a.check is not None:
        for row in check(a.run_dirs, load_costs(a.check)):
            print(json.dumps(row))
        return
    json.dump(measure(a.run_dirs, load_costs(a.base)), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
