"""Evaluation protocols and victim presets on PhysioNet 2012, clean training data.

    python benchmarks/bench_protocol.py [PATH] [--victims lr,mlp] [--json out.json]

PATH defaults to ../shared/data/physionet2012 beside the repository; the split is the seeded
stratified 70/15/15 split (seed 0). For each victim: the tuned and the paper preset, each selected
by the honest and by the paper protocol (the paper protocol picks epochs by the attack success of
a temporal trigger, strength 2, target 1, on triggered validation stays; the victim itself is
trained on clean stays). Prints clean test AUROC / AUPRC, training time, threshold, F1 at it, the
clean model's attack success on triggered test stays and the selected epoch (or C).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ehrbackdoor.attacks import ThreatModel, attack_test, make_trigger  # noqa: E402
from ehrbackdoor.attacks.protocol import paper_selection  # noqa: E402
from ehrbackdoor.data.readers.physionet2012 import read_physionet2012  # noqa: E402
from ehrbackdoor.data.splits import stratified_split  # noqa: E402
from ehrbackdoor.metrics import attack_success_rate, auprc, auroc, f1_at  # noqa: E402
from ehrbackdoor.victims import make_victim  # noqa: E402
from ehrbackdoor.victims.inputs import features_of  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("path", nargs="?", default=str(REPO.parent / "shared/data/physionet2012"))
    ap.add_argument("--victims", default="lr,mlp", help="comma-separated names")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)

    t0 = time.time()
    cohort = read_physionet2012(args.path)
    parts = stratified_split(cohort, seed=0).apply(cohort)
    train, val, test = parts["train"], parts["val"], parts["test"]
    threat = ThreatModel(target=1, rate=0.02)
    trigger = make_trigger("temporal", strength=2.0).fit(train)
    selection = paper_selection(val, trigger, threat)
    trig_test, idx = attack_test(test, trigger, threat)
    for c in (train, val, test, selection.triggered_val, trig_test):
        features_of(c)
    print(
        f"data + trigger + features {time.time() - t0:.1f} s; train/val/test "
        f"{train.n_stays}/{val.n_stays}/{test.n_stays}",
        flush=True,
    )
    rows = []
    for name in [n.strip() for n in args.victims.split(",") if n.strip()]:
        for preset in ("tuned", "paper"):
            for protocol in ("honest", "paper"):
                victim = make_victim(name, seed=0, preset=preset)
                wall = time.perf_counter()
                victim.fit(train, val, selection=selection if protocol == "paper" else None)
                wall = time.perf_counter() - wall
                p = victim.predict_proba(test)
                p_trig = victim.predict_proba(trig_test)[idx]
                sel = victim.fit_info_["selection"]
                t = victim.threshold_
                row = {
                    "victim": name,
                    "preset": preset,
                    "protocol": protocol,
                    "seconds": round(wall, 1),
                    "test_auroc": round(auroc(test.label, p), 4),
                    "test_auprc": round(auprc(test.label, p), 4),
                    "threshold": round(t, 4),
                    "test_f1": round(f1_at(test.label, p, t), 4),
                    "clean_model_asr": round(attack_success_rate(test.label[idx], p_trig, t, 1), 4),
                    "selected": sel.get("selected_epoch", sel.get("C")),
                    "fallback": sel.get("fallback"),
                    "epochs_run": victim.fit_info_.get("epochs_run"),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
