"""Designed triggers under the realistic threat model: search on the attacker's half, attack the
victim's half, measure transfer to every victim and the detectors.

Per seed: the training pool is cut into the attacker's and the victim's halves
(`attacker_split`); the design search (`design_trigger`) runs on the attacker's half only with an
lr surrogate and the given public detectors; the chosen trigger poisons the victim's half at
`--rate` (non-target stays, raw records) and every victim is trained on it and, with the same
seed, on the clean half (the baseline), honest protocol, evaluated on the held-out test stays.
`--compare-default` also runs the family's default trigger (fitted on the attacker's half) the
same way. Printed per seed and victim: ASR (clean model's rate of the same trigger), clean AUROC
and AUPRC change, AUPRC drop on triggered stays, and each detector's AUROC at finding the poisoned
victim stays. `--out FILE` writes everything as JSON.

    python benchmarks/trigger_design.py --family temporal --seeds 0 1 2
    python benchmarks/trigger_design.py --family missing --seeds 0 1 2 --victims lr mlp lstm gru
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from ehrbackdoor.attacks import ThreatModel, make_trigger
from ehrbackdoor.attacks.design import MissingSpace, TemporalSpace, attacker_split, design_trigger
from ehrbackdoor.defences import make_defence
from ehrbackdoor.io import atomic_write_json
from ehrbackdoor.pipeline.cell import AttackConfig, DefenceSpec, build_attack, run_cell
from ehrbackdoor.pipeline.prepare import prepare_data

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet2012"
FAMILY = {
    "temporal": {"target": 1, "apply": "observed", "trigger": "temporal"},
    "missing": {"target": 0, "apply": "exact", "trigger": "missing-vae"},
}
DETECTORS = {
    "temporal": ["isolation-forest", "lof", "range-check", "two-sample"],
    "missing": ["isolation-forest-mask", "lof-mask", "mask-rarity", "two-sample"],
}


def _row(name: str, v, detection: dict[str, float]) -> dict:
    m = v.metrics
    return {
        "victim": name,
        "asr": m["asr"],
        "asr_baseline": m["asr_baseline"],
        "clean_auroc_change": m["clean"]["auroc"] - m["clean_baseline"]["auroc"],
        "clean_auprc_change": m["clean"]["auprc"] - m["clean_baseline"]["auprc"],
        "auprc_drop": m["clean"]["auprc"] - m["triggered"]["auprc"],
        "detection": detection,
    }


def _evaluate(args, prep, victim_half, trigger, params, seed: int) -> list[dict]:
    fam = FAMILY[args.family]
    config = AttackConfig(
        fam["trigger"], fam["target"], args.rate, fam["apply"], "non-target", seed, params
    )
    attack = build_attack(config, victim_half, prep.test, trigger=trigger)
    spec = DefenceSpec(tuple(args.detectors), mitigation=False)
    _, cell = run_cell(
        config, victim_half, prep.val, prep.test, attack, args.victims, defence=spec, n_bootstrap=0
    )
    detection = {n: float(d["auroc"]) for n, d in cell.defences.items()}
    return [_row(n, v, detection) for n, v in cell.victims.items()]


def _space(args):
    if args.family == "temporal":
        return TemporalSpace(
            strength=args.strength, ranks=tuple(args.ranks), n_draws=args.n_draws,
            variable_sets=tuple(args.variable_sets),
            params={"transform": "schema", "bounds": "keep", "constant": "shift"},
        )  # fmt: skip
    return MissingSpace(picks=tuple(args.picks), n_fits=args.n_fits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("EHRBACKDOOR_DATA", str(DEFAULT_DATA)))
    ap.add_argument("--family", choices=sorted(FAMILY), default="temporal")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--victims", nargs="+", default=["lr", "mlp", "gru", "lstm"])
    ap.add_argument("--rate", type=float, default=0.02)
    ap.add_argument("--strength", type=float, default=2.0)
    ap.add_argument("--ranks", type=lambda s: None if s == "full" else int(s), nargs="+",
                    default=[1, 2, 3, None])  # fmt: skip
    ap.add_argument("--n-draws", type=int, default=3)
    ap.add_argument("--variable-sets", nargs="+", default=["all", "dense", "dense-4"])
    ap.add_argument("--picks", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n-fits", type=int, default=1)
    ap.add_argument("--objective", choices=["asr", "lift"], default="asr")
    ap.add_argument("--detectors", nargs="+", default=None)
    ap.add_argument("--max-detection", type=float, default=0.65)
    ap.add_argument("--compare-default", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.detectors = args.detectors or DETECTORS[args.family]
    fam = FAMILY[args.family]
    prep = prepare_data(args.data)
    report: dict = {"args": {k: v for k, v in vars(args).items() if k != "out"}, "seeds": []}
    report["args"]["data"] = str(args.data)
    for seed in args.seeds:
        t0 = time.perf_counter()
        attacker, victim_half = attacker_split(prep.train, seed=seed)
        threat = ThreatModel(fam["target"], args.rate, "non-target", fam["apply"], seed)
        detectors = {n: make_defence(n, seed=seed) for n in args.detectors}
        design = design_trigger(
            attacker, threat, space=_space(args), detectors=detectors,
            max_detection_auroc=args.max_detection, objective=args.objective, seed=seed,
        )  # fmt: skip
        t_design = time.perf_counter() - t0
        entry = {
            "seed": seed,
            "design": design.to_dict(),
            "design_seconds": round(t_design, 1),
            "designed": _evaluate(args, prep, victim_half, design.trigger, design.params, seed),
        }
        if args.compare_default:
            default = make_trigger(fam["trigger"], seed=seed).fit(attacker)
            entry["default"] = _evaluate(args, prep, victim_half, default, {}, seed)
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        report["seeds"].append(entry)
        chosen = design.candidates[design.chosen]
        print(
            f"seed {seed}: chosen {design.params} (surrogate asr {chosen['asr']:.3f}, clean "
            f"{chosen['asr_clean_surrogate']:.3f}, detection {chosen['detection_auroc']}); "
            f"design {t_design:.0f} s, total {entry['seconds']:.0f} s"
        )
        for kind in ("designed", "default"):
            for r in entry.get(kind, []):
                det = " ".join(f"{k}={v:.3f}" for k, v in r["detection"].items())
                print(
                    f"  {kind:8s} {r['victim']:5s} asr {r['asr']:.3f} (clean model "
                    f"{r['asr_baseline']:.3f})  auroc chg {r['clean_auroc_change']:+.3f}  auprc chg "
                    f"{r['clean_auprc_change']:+.3f}  auprc drop {r['auprc_drop']:.3f}  {det}"
                )
    for kind in ("designed", "default"):
        rows = [r for e in report["seeds"] for r in e.get(kind, [])]
        for victim in args.victims:
            rs = [r for r in rows if r["victim"] == victim]
            if rs:
                asr = np.array([r["asr"] for r in rs])
                worst = max(max(r["detection"].values()) for r in rs)
                print(
                    f"{kind:8s} {victim:5s} mean asr {asr.mean():.3f} (min {asr.min():.3f}) over "
                    f"{len(rs)} seeds; mean auprc drop {np.mean([r['auprc_drop'] for r in rs]):.3f}; "
                    f"worst detector auroc {worst:.3f}"
                )
    if args.out is not None:
        atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
