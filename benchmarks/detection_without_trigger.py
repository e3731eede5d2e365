"""What the data-level detectors find when the poisoned stays carry no trigger at all.

The same stays are chosen (`choose_poisoned`, per selection rule) and given the target label,
but their records are left untouched: whatever a detector finds then comes from the choice of
stays and the label flips, not from a trigger. A trigger's detection AUROC is only as
meaningful as its distance from this number (dirty-label poisoning relabels survivors as deaths,
which a per-label two-sample test sees without any trigger).

    python benchmarks/detection_without_trigger.py [--rate 0.02] [--seeds 0 1 2] [--targets 1]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from ehrbackdoor import metrics
from ehrbackdoor.attacks import ThreatModel
from ehrbackdoor.attacks.engine import choose_poisoned
from ehrbackdoor.defences import DEFENCES, make_defence
from ehrbackdoor.pipeline.prepare import prepare_data

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet2012"
BLIND = {"imputation-consistency"}  # sees grid-space poison only: 0.5 by construction here


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("EHRBACKDOOR_DATA", str(DEFAULT_DATA)))
    ap.add_argument("--rate", type=float, default=0.02)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--targets", type=int, nargs="+", default=[1, 0])
    args = ap.parse_args()
    prep = prepare_data(args.data)
    names = [n for n, cls in DEFENCES.items() if cls.family == "data" and n not in BLIND]
    print(f"{prep.train.n_stays} training stays, rate {args.rate}, seeds {args.seeds}")
    print("target | selection  | " + " | ".join(names))
    for target in args.targets:
        for selection in ("non-target", "any", "target"):
            row = {n: [] for n in names}
            for seed in args.seeds:
                threat = ThreatModel(target, args.rate, selection, seed=seed)
                idx = choose_poisoned(prep.train, threat)
                relabelled = prep.train.with_labels(idx, target)
                y = np.zeros(prep.train.n_stays, dtype=np.int64)
                y[idx] = 1
                for n in names:
                    s = make_defence(n, seed=seed).score(relabelled, None, reference=prep.val)
                    row[n].append(metrics.auroc(y, s))
            cells = " | ".join(f"{np.mean(v):.3f}" for v in row.values())
            print(f"{target:6d} | {selection:10s} | {cells}", flush=True)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"{time.perf_counter() - t0:.0f} s")
