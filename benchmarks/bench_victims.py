"""Train every victim on PhysioNet 2012 (set-a + set-b) and report time and clean utility.

    python benchmarks/bench_victims.py [PATH] [--victims lr,gbdt] [--seeds 0,1,2] [--json out.json]

PATH defaults to ../shared/data/physionet2012 beside the repository. The split is the seeded
stratified 70/15/15 split (seed 0). Preprocessing goes through the on-disk cache and is warmed
before any timing, so "train s" is the victim's own fit (scalers, model, threshold). For each
victim and seed it prints training wall and CPU seconds, validation AUROC/AUPRC, and test AUROC and
AUPRC with 95 % bootstrap intervals (`metrics.summarize`, 10,000 resamples) plus F1 at the
validation-chosen threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ehrbackdoor.data.readers.physionet2012 import read_physionet2012  # noqa: E402
from ehrbackdoor.data.splits import stratified_split  # noqa: E402
from ehrbackdoor.metrics import auprc, auroc, summarize  # noqa: E402
from ehrbackdoor.victims import VICTIMS, make_victim  # noqa: E402
from ehrbackdoor.victims.inputs import features_of, grid_of  # noqa: E402
from ehrbackdoor.victims.training import n_threads  # noqa: E402

GOALS = {"lr": 0.82, "mlp": 0.83, "lstm": 0.84, "gru": 0.84, "grud": 0.84, "gbdt": 0.84}
TIME_LIMITS = {"lr": 15, "mlp": 15, "gbdt": 15, "lstm": 60, "gru": 60, "grud": 120}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("path", nargs="?", default=str(REPO.parent / "shared/data/physionet2012"))
    ap.add_argument("--victims", default=",".join(VICTIMS), help="comma-separated names")
    ap.add_argument("--seeds", default="0", help="comma-separated model seeds (split seed is 0)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.victims.split(",") if n.strip()]
    unknown = [n for n in names if n not in VICTIMS]
    if unknown:
        ap.error(f"unknown victims {unknown}; valid: {', '.join(VICTIMS)}")
    seeds = [int(s) for s in args.seeds.split(",")]

    t0 = time.time()
    cohort = read_physionet2012(args.path)
    parts = stratified_split(cohort, seed=0).apply(cohort)
    for part in parts.values():  # warm the preprocessing cache (shared by all victims)
        features_of(part)
        grid_of(part)
    sizes = {k: f"{v.n_stays} ({int(v.label.sum())} deaths)" for k, v in parts.items()}
    print(
        f"PhysioNet 2012: {cohort.n_stays} stays; split {sizes}; read + preprocess "
        f"{time.time() - t0:.1f} s; torch threads {n_threads()}"
    )
    header = (
        f"{'victim':6} {'seed':>4} {'train s':>8} {'cpu s':>7} {'val AUROC':>9} "
        f"{'val AUPRC':>9} {'test AUROC [95% CI]':>27} {'test AUPRC [95% CI]':>27} "
        f"{'F1':>5} {'stop':>5}"
    )
    print(header)
    print("-" * len(header))
    y_val, y_test = parts["val"].label, parts["test"].label
    results = []
    for name in names:
        for seed in seeds:
            victim = make_victim(name, seed=seed)
            wall, cpu = time.perf_counter(), time.process_time()
            victim.fit(parts["train"], parts["val"])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            p_val = victim.predict_proba(parts["val"])
            p_test = victim.predict_proba(parts["test"])
            s = summarize(y_test, p_test, victim.threshold_, n_resamples=args.resamples, seed=0)
            info = victim.fit_info_
            stop = info.get("best_epoch", info.get("n_iter", info.get("C")))
            row = {
                "victim": name,
                "seed": seed,
                "train_seconds": wall,
                "train_cpu_seconds": cpu,
                "val_auroc": auroc(y_val, p_val),
                "val_auprc": auprc(y_val, p_val),
                "test": s,
                "threshold": victim.threshold_,
                "selected": stop,
                "params": victim.get_params(),
            }
            results.append(row)
            roc = f"{s['auroc']:.4f} [{s['auroc_ci'][0]:.4f}, {s['auroc_ci'][1]:.4f}]"
            pr = f"{s['auprc']:.4f} [{s['auprc_ci'][0]:.4f}, {s['auprc_ci'][1]:.4f}]"
            print(
                f"{name:6} {seed:>4} {wall:8.1f} {cpu:7.1f} {row['val_auroc']:9.4f} "
                f"{row['val_auprc']:9.4f} {roc:>27} {pr:>27} {s['f1']:5.3f} {stop!s:>5}",
                flush=True,
            )
    if len(seeds) > 1:
        print("\nmean over seeds (test AUROC / AUPRC, train s):")
        for name in names:
            rows = [r for r in results if r["victim"] == name]
            a = np.mean([r["test"]["auroc"] for r in rows])
            b = np.mean([r["test"]["auprc"] for r in rows])
            t = np.mean([r["train_seconds"] for r in rows])
            print(
                f"  {name:6} {a:.4f} / {b:.4f}  {t:.1f} s   (goal AUROC >= {GOALS[name]}, "
                f"time < {TIME_LIMITS[name]} s)"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
