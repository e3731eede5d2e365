"""Designed triggers under the realistic threat model, over seeds: `run_design` per seed, then the
mean transfer per victim.

Per seed (`ehrbackdoor.pipeline.design.run_design`): the training pool is cut into the
attacker's and the victim's halves; the design search runs on the attacker's half only (lr
surrogate, the family's public data-level detectors); the chosen trigger poisons the victim's
half at `--rate` (non-target stays, raw records) and every victim is trained on it and on the
clean half (honest protocol), evaluated on the held-out test stays. `--compare-default` also runs
the family's default trigger. Printed: each seed's tables, then per victim the mean ASR (and the
clean model's rate), clean AUROC / AUPRC change, AUPRC drop and the worst detector AUROC.

    python benchmarks/trigger_design.py --family value --seeds 0 1 2 --out runs/design_value
    python benchmarks/trigger_design.py --family missing --seeds 0 1 2 --out runs/design_missing
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from ehrbackdoor.attacks.design import MissingSpace, TemporalSpace
from ehrbackdoor.experiments.readable import design_text
from ehrbackdoor.pipeline.design import run_design
from ehrbackdoor.pipeline.prepare import prepare_data

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet2012"


def _space(args) -> TemporalSpace | MissingSpace:
    if args.family == "value":
        return TemporalSpace(
            strength=args.strength,
            ranks=tuple(args.ranks),
            variable_sets=tuple(args.variable_sets),
            n_draws=args.n_draws,
        )
    return MissingSpace(picks=tuple(args.picks), n_fits=args.n_fits)


def _summary(kind: str, results: list[dict], victims: list[str]) -> None:
    for victim in victims:
        rows = [r[kind]["models"][victim] for r in results if kind in r]
        if not rows:
            continue
        det = [max(r[kind]["detection_auroc"].values(), default=np.nan) for r in results]

        def mean(key: str, rows=rows) -> float:
            return float(np.mean([m[key] for m in rows]))

        asr = [m["asr"] for m in rows]
        print(
            f"{kind:8s} {victim:5s} ASR {np.mean(asr):.3f} (min {min(asr):.3f}; clean model "
            f"{mean('asr_baseline'):.3f}) | AUROC change {mean('clean_auroc_change'):+.3f} | "
            f"AUPRC change {mean('clean_auprc_change'):+.3f} | AUPRC drop {mean('auprc_drop'):.3f}"
            f" | worst detector AUROC {np.nanmax(det):.3f} | {len(rows)} seeds"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("EHRBACKDOOR_DATA", str(DEFAULT_DATA)))
    ap.add_argument("--family", choices=["value", "missing"], default="value")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--victims", nargs="+", default=["lr", "mlp", "gru", "lstm"])
    ap.add_argument("--rate", type=float, default=0.02)
    ap.add_argument("--selection", default="non-target")
    ap.add_argument("--apply", default=None, help="default: observed (value), exact (missing)")
    ap.add_argument("--strength", type=float, default=2.0)
    ap.add_argument(
        "--ranks",
        type=lambda s: None if s == "full" else int(s),
        nargs="+",
        default=[1, 2, 3, None],
    )
    ap.add_argument("--variable-sets", nargs="+", default=["all", "dense", "dense-4"])
    ap.add_argument("--n-draws", type=int, default=3)
    ap.add_argument("--picks", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-fits", type=int, default=1)
    ap.add_argument("--objective", choices=["asr", "lift"], default="asr")
    ap.add_argument("--detectors", nargs="+", default=None)
    ap.add_argument("--max-detection", type=float, default=0.65)
    ap.add_argument("--compare-default", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="one sub-directory per seed")
    args = ap.parse_args()
    prep = prepare_data(args.data)
    results = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        res = run_design(
            prep,
            args.family,
            args.victims,
            None if args.out is None else args.out / f"seed{seed}",
            rate=args.rate,
            selection=args.selection,
            apply=args.apply,
            seed=seed,
            space=_space(args),
            detectors=args.detectors,
            max_detection_auroc=args.max_detection,
            objective=args.objective,
            compare_default=args.compare_default,
            n_bootstrap=0,
        )
        results.append(res)
        print(f"seed {seed} ({time.perf_counter() - t0:.0f} s): {res['attack']}")
        print(design_text(res, width=160))
    for kind in ("designed", "default"):
        _summary(kind, results, args.victims)


if __name__ == "__main__":
    main()
