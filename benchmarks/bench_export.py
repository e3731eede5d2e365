"""Whole `ehrbackdoor data export` runs on a synthetic MIMIC-III-format cohort.

Compares with the MIMIC-III benchmark's own Python code, which processes about 320 stays/s
(discretiser) and 21 stays/s (window features) on a 2-core machine for ~100-row episodes.

    python benchmarks/bench_export.py [--stays 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARK_STAYS_PER_S = {"grid": 320.0, "features": 21.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stays", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        env = {**os.environ, "EHRBACKDOOR_NO_CACHE": "1"}
        cli = [sys.executable, "-m", "ehrbackdoor.cli"]
        t0 = time.perf_counter()
        subprocess.run(
            [*cli, "data", "synth", "--out", str(data), "--stays", str(args.stays),
             "--seed", str(args.seed)],
            check=True, env=env, capture_output=True,
        )
        print(f"synth {args.stays} stays: {time.perf_counter() - t0:.2f} s")
        for rep, layout in (("grid", "benchmark"), ("features", "ordinal")):
            out = Path(tmp) / f"{rep}.npz"
            t0 = time.perf_counter()
            subprocess.run(
                [*cli, "data", "export", str(data), "--representation", rep, "--layout", layout,
                 "--out", str(out)],
                check=True, env=env, capture_output=True,
            )
            secs = time.perf_counter() - t0
            rate = args.stays / secs
            print(
                f"export {rep:8s}: {secs:6.2f} s whole command (incl. interpreter start and "
                f"reading files), {rate:8.0f} stays/s = "
                f"{rate / BENCHMARK_STAYS_PER_S[rep]:6.0f}x the benchmark's code"
            )


if __name__ == "__main__":
    main()
