"""Regenerate the numbers the README states, by running the commands it describes.

The README's "What to expect" paragraph quotes attack success rates on PhysioNet 2012; this script
runs exactly those attacks (the library calls behind `ehrbackdoor attack`) and prints the
sentences with the measured numbers, each beside the unpoisoned model's rate, so the README can be
kept in step by pasting them. `--victims lr` runs the cheap part only.

    python benchmarks/readme_numbers.py --data ../shared/data/physionet2012 --victims lr
    python benchmarks/readme_numbers.py --synthetic 2000       # the same on a generated cohort
"""

from __future__ import annotations

import argparse
import tempfile
import time

from ehrbackdoor.pipeline import AttackConfig, prepare_data, run_attack

#: (label, attack config) of every number the README quotes, as the README states the command.
CLAIMS = [
    (
        "temporal trigger, target 1, rate 0.02, strength 2, apply observed",
        AttackConfig(
            "temporal",
            target=1,
            rate=0.02,
            apply="observed",
            seed=0,
            trigger_params={"strength": 2.0},
        ),
    ),
    (
        "VAE missing-pattern trigger, target 0, rate 0.02, apply exact",
        AttackConfig("missing-vae", target=0, rate=0.02, apply="exact", seed=0),
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="data path (PhysioNet 2012 for the README's numbers)")
    src.add_argument("--synthetic", type=int, help="a generated cohort of this many stays")
    ap.add_argument("--victims", default="lr,mlp,gru", help="comma-separated victims")
    ap.add_argument("--bootstrap", type=int, default=1000)
    a = ap.parse_args()
    victims = [v for v in a.victims.split(",") if v]
    with tempfile.TemporaryDirectory() as tmp:
        path = a.data
        if a.synthetic:
            from ehrbackdoor.data.synthetic import generate_synthetic

            path = generate_synthetic(f"{tmp}/synthetic", n_stays=a.synthetic, seed=0)
        data = prepare_data(path)
        print(f"data: {path}; victims: {', '.join(victims)}")
        for label, config in CLAIMS:
            t0 = time.perf_counter()
            res = run_attack(config, victims, data, n_bootstrap=a.bootstrap)
            parts = []
            for v, m in res["models"].items():
                lo, hi = m["asr_ci"]
                parts.append(
                    f"{v} {m['asr']:.2f} [{lo:.2f}, {hi:.2f}] (unpoisoned {m['asr_baseline']:.2f})"
                )
            print(f"- {label}: ASR " + "; ".join(parts) + f"  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
