"""Time the first paper's preset, reduced, on the 8,000 PhysioNet 2012 stays.

Grid: rates {0.01, 0.02, 0.05} x strengths {0.5, 1, 2} x apply observed x target 1 x victims
{lr, mlp, lstm, gru} x 3 seeds = 108 cells (27 poisoned cohorts, 12 clean baselines). Goal: under
30 minutes with --jobs 2 on a 2-core machine.

    python benchmarks/bench_paper1.py [--data DIR] [--out DIR] [--jobs 2] [--executor local]

Prints the wall time, per-cell times per victim and where the time goes (each step kind's total
CPU-side seconds), and writes them to OUT/benchmark.json. Rerunning with the same --out resumes
(finished cells are not re-timed); use a fresh --out for a clean measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
GRID = {
    "rate": [0.01, 0.02, 0.05],
    "strength": [0.5, 1.0, 2.0],
    "apply": "observed",
    "target": 1,
}
VICTIMS = ["lr", "mlp", "lstm", "gru"]
SEEDS = [0, 1, 2]


def reduced_config(data: str | None):
    """configs/paper1.yaml with the benchmark's reduced grid."""
    import yaml

    from ehrbackdoor.experiments.config import config_from_dict

    path = REPO / "configs" / "paper1.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["name"] = "bench-paper1"
    doc["attacks"] = [{**doc["attacks"][0], **GRID}]
    doc["victims"] = {k: v for k, v in doc["victims"].items() if k in VICTIMS}
    doc["seeds"] = SEEDS
    return config_from_dict(doc, path.parent, data, source=str(path))


def summarize(run_dir: str | Path, wall: float | None, jobs: int) -> dict:
    """Per-cell times per victim and where the time goes, from the run's store."""
    from ehrbackdoor.experiments.store import Store

    store = Store.open_run(run_dir, readonly=True)
    try:
        steps = pd.DataFrame(store.steps())
        rows = store.cells("ok")
        last = json.loads(store.get_meta("last_run") or "{}")
    finally:
        store.close()
    steps = steps[steps["status"] == "ok"]
    steps["cpu"] = [i.get("cpu_seconds", float("nan")) for i in steps["info"]]
    cells = pd.DataFrame([{"victim": r["params"]["victim"], **(r["timings"] or {})} for r in rows])
    by_step = (
        steps.groupby("kind", sort=False)
        .agg(runs=("seconds", "size"), work_s=("seconds", "sum"), cpu_s=("cpu", "sum"))
        .round(1)
    )
    per_cell = (
        cells.groupby("victim", sort=False)[["train_seconds", "cell_seconds", "cpu_seconds"]]
        .agg(["mean", "max"])
        .round(1)
    )
    total_cpu = float(steps["cpu"].sum())
    if wall is None:  # the last run's, else the span of its recorded steps
        wall = last.get("seconds") or float(
            steps["finished_at"].max() - steps["finished_at"].min() + steps["seconds"].iloc[0]
        )
    print(f"\nwall time {wall:.0f} s ({wall / 60:.1f} min) with {jobs} jobs; {len(cells)} cells")
    print(
        f"CPU time of all steps {total_cpu:.0f} s: on an otherwise idle machine the run needs about "
        f"{total_cpu / jobs / 60:.1f} min of wall time with {jobs} jobs"
    )
    print("\nwhere the time goes (per step kind: runs, seconds of work, CPU seconds):")
    print(by_step.to_string())
    print("\nper-cell times by victim (s; train = fitting the victim on the poisoned cohort):")
    print(per_cell.to_string())
    return {
        "wall_seconds": round(float(wall), 1),
        "jobs": jobs,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "cells": len(cells),
        "cpu_seconds_total": round(total_cpu, 1),
        "idle_machine_wall_estimate_seconds": round(total_cpu / jobs, 1),
        "steps": json.loads(by_step.reset_index().to_json(orient="records")),
        "per_cell": {
            v: {
                k: round(float(g[k].mean()), 2)
                for k in ("train_seconds", "cell_seconds", "cpu_seconds")
            }
            for v, g in cells.groupby("victim")
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", help="PhysioNet 2012 directory (default: the preset's)")
    ap.add_argument("--out", default="runs/bench-paper1", help="run directory")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--executor", default="local")
    ap.add_argument("--address", default=None)
    ap.add_argument(
        "--summary-only", action="store_true", help="only summarise a finished run in --out"
    )
    args = ap.parse_args()

    from ehrbackdoor.experiments.plan import expand
    from ehrbackdoor.experiments.runner import run_experiment

    wall = None
    if not args.summary_only:
        cfg = reduced_config(args.data)
        plan = expand(cfg)
        print(
            f"{len(plan.cells)} cells, {len(plan.poison)} poisoned cohorts, "
            f"{len(plan.baselines)} baselines on {cfg.data[0].path}; {args.jobs} jobs on "
            f"{os.cpu_count()} cores"
        )
        t0 = time.perf_counter()
        summary = run_experiment(
            cfg,
            args.out,
            executor=args.executor,
            jobs=args.jobs,
            address=args.address,
            progress=True,
            force=True,
        )
        wall = time.perf_counter() - t0
        print(
            f"{summary.ok} cells ran, {summary.already_done} were already finished, "
            f"{summary.failed} failed"
        )
    result = summarize(args.out, wall, args.jobs)
    (Path(args.out) / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {Path(args.out) / 'benchmark.json'}")


if __name__ == "__main__":
    main()
