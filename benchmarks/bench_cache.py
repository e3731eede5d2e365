"""Cache growth over a poisoning sweep: three `attack` runs (rates 0.01, 0.02, 0.05; lr and gru).

Each run is a fresh process with ``EHRBACKDOOR_CACHE`` pointing at a temporary directory; after each
run the cache's size is printed. The same sweep can be repeated with another source tree (e.g. the
previous release's, whose cache stored a full copy per poisoned cohort) for comparison, and with
caching disabled.

    python benchmarks/bench_cache.py --stays 2000              # synthetic MIMIC-III-format cohort
    python benchmarks/bench_cache.py --data /path/to/physionet2012 --baseline-src /old/src
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RATES = (0.01, 0.02, 0.05)


def size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def sweep(label: str, src: Path, data: Path, tmp: Path, models: str, cache: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    env.pop("EHRBACKDOOR_NO_CACHE", None)
    cache_dir = tmp / f"cache-{label}"
    env["EHRBACKDOOR_CACHE"] = str(cache_dir)
    if not cache:
        env["EHRBACKDOOR_NO_CACHE"] = "1"
    first = None
    total_wall = total_cpu = 0.0
    for rate in RATES:
        out = tmp / f"run-{label}-{rate}"
        wall, cpu = run(
            [
                sys.executable,
                "-m",
                "ehrbackdoor.cli",
                "attack",
                "--data",
                str(data),
                "--out",
                str(out),
                "--rate",
                str(rate),
                "--models",
                models,
                "--bootstrap",
                "100",
            ],
            env,
        )
        total_wall += wall
        total_cpu += cpu
        now = size(cache_dir)
        first = first or now
        growth = f"{now / first:4.2f}x the first" if first else "-"
        print(
            f"{label:9s} rate {rate:<5}: wall {wall:6.1f} s, cpu {cpu:6.1f} s, cache "
            f"{now / 1e6:8.1f} MB ({growth})",
            flush=True,
        )
    print(f"{label:9s} total   : wall {total_wall:6.1f} s, cpu {total_cpu:6.1f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, help="data directory (else a synthetic cohort)")
    ap.add_argument("--stays", type=int, default=2000)
    ap.add_argument("--models", default="lr,gru")
    ap.add_argument("--baseline-src", type=Path, help="another source tree to compare with")
    ap.add_argument("--no-cache-too", action="store_true", help="also run with caching off")
    args = ap.parse_args()
    src = Path(__file__).resolve().parents[1] / "src"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None:
            data = tmp / "synth"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ehrbackdoor.cli",
                    "data",
                    "synth",
                    "--out",
                    str(data),
                    "--stays",
                    str(args.stays),
                    "--seed",
                    "0",
                ],
                check=True,
                capture_output=True,
                env={**os.environ, "PYTHONPATH": str(src), "EHRBACKDOOR_NO_CACHE": "1"},
            )
        sweep("this", src, data, tmp, args.models, cache=True)
        if args.baseline_src:
            sweep("baseline", args.baseline_src, data, tmp, args.models, cache=True)
        if args.no_cache_too:
            sweep("no-cache", src, data, tmp, args.models, cache=False)


if __name__ == "__main__":
    main()
