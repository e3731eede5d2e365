"""Measure the per-step cost table that `ehrbackdoor run --dry-run` prices a config with.

Reads a finished run directory (its results store and artifacts) and writes the table: seconds
per 1,000 stays of each step kind, per victim (with the epochs it was run with), and bytes per
stay written. Run it on a run of the quickstart (one seed, every victim you want priced):

    ehrbackdoor run configs/quickstart.yaml --out /tmp/qs --jobs 1
    python benchmarks/step_costs.py /tmp/qs > src/ehrbackdoor/experiments/resources/step_costs.json

Victims not in the run keep the entries of the existing table (`--base`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from ehrbackdoor.experiments.estimate import load_costs
from ehrbackdoor.experiments.store import Store


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(run_dir: Path, base: dict) -> dict:
    store = Store.open_run(run_dir, readonly=True)
    try:
        steps = [s for s in store.steps() if s["status"] == "ok"]
        cells = list(store.cells("ok"))
    finally:
        store.close()
    by = {}
    for s in steps:
        by.setdefault(s["kind"], []).append(s)
    data = by["data"][0]
    info = data.get("info") or {}
    n_train, n_val, n_test = info["n_train"], info["n_val"], info["n_test"]
    n = n_train + n_val + n_test
    out = json.loads(json.dumps(base))
    out["measured_on"] = {"run": run_dir.name, "stays": n, "n_train": n_train}
    out["data"]["synthetic"] = data["seconds"] / n * 1000
    trig: dict[str, list[float]] = {}
    for s in by.get("trigger", []):
        trig.setdefault((s.get("info") or {}).get("trigger", "default"), []).append(s["seconds"])
    for name, secs in trig.items():
        out["triggers"][name] = statistics.mean(secs) / n_train * 1000
    out["poison"] = statistics.mean(s["seconds"] for s in by["poison"]) / n * 1000
    victims: dict[str, dict[str, list[float]]] = {}
    for c in cells:
        t = c["timings"] or {}
        v = victims.setdefault(c["params"]["victim"], {"train": [], "over": [], "base": []})
        v["train"].append(t["train_seconds"])
        v["over"].append(t["cell_seconds"] - t["train_seconds"])
        v["base"].append(t["baseline_train_seconds"])
        v["epochs"] = c["params"].get("victim_params", {}).get("max_epochs")
    base_steps: dict[str, list[float]] = {}
    for s in by.get("baseline", []):
        base_steps.setdefault((s.get("info") or {}).get("victim"), []).append(s["seconds"])
    overhead = []
    for name, v in victims.items():
        entry = dict(out["victims"].get(name, {}))
        entry["measured"] = True
        entry["train_per_1000_stays"] = statistics.mean(v["train"]) / n_train * 1000
        if base_steps.get(name):  # the first fit of a victim also pays its start-up
            entry["baseline_per_1000_stays"] = statistics.mean(base_steps[name]) / n_train * 1000
        if "default_epochs" in entry:  # trained in epochs: the table is per epochs run
            entry["epochs"] = v.get("epochs") or entry["default_epochs"]
        overhead += v["over"]
        out["victims"][name] = entry
    out["cell_overhead_per_1000_stays"] = statistics.mean(overhead) / (n_train + 2 * n_test) * 1000
    art = run_dir / "artifacts"
    out["disk"]["data_per_stay"] = _du(art / "data") / n
    n_poison = max(1, len(by["poison"]))
    out["disk"]["poison_per_stay"] = (_du(art / "poison") + _du(art / "trigger")) / n_poison / n
    out["disk"]["cell_bytes"] = (_du(art / "cell") + _du(art / "baseline")) / max(1, len(cells))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--base", type=Path, default=None, help="table to start from")
    a = ap.parse_args()
    json.dump(measure(a.run_dir, load_costs(a.base)), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
