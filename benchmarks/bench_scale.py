"""Scale benchmark: `data export` and `attack` on synthetic cohorts of 10k, 50k and 200k stays.

For each size a MIMIC-III-format cohort is generated (`data synth`, not timed), then each command
runs in its own process under a wrapper that reports its wall time, CPU time and peak resident
memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``). Commands run one at a time with an empty cache
(first use) and, for export, again with the cache warm. The last column compares the cost per stay
with the smallest size (1.00 = linear).

    nice -n 10 python benchmarks/bench_scale.py --sizes 10000,50000 [--gru-at 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": done.returncode, "wall": wall, "cpu": r.ru_utime + r.ru_stime,
                  "maxrss_mb": r.ru_maxrss / 1024, "err": done.stderr[-2000:]}))
"""


def measure(cmd: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], env=env, capture_output=True, text=True, check=True
    )
    res = json.loads(done.stdout.strip().splitlines()[-1])
    if res["rc"]:
        sys.exit(f"{' '.join(cmd)} failed:\n{res['err']}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10000,50000,200000")
    ap.add_argument("--gru-at", default="50000", help="sizes at which gru is run too")
    ap.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    gru_at = {int(s) for s in args.gru_at.split(",") if s}
    src = Path(__file__).resolve().parents[1] / "src"
    cli = [sys.executable, "-m", "ehrbackdoor.cli"]
    base_env = {**os.environ, "PYTHONPATH": str(src)}
    base_env.pop("EHRBACKDOOR_NO_CACHE", None)
    tmp_ctx = tempfile.TemporaryDirectory(dir=args.work)
    work = Path(tmp_ctx.name)
    per_stay0: dict[str, float] = {}
    print(
        f"{'stays':>7s} {'command':28s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s} "
        f"{'cpu/stay vs first':>18s}",
        flush=True,
    )
    try:
        for n in sizes:
            data = work / f"synth-{n}"
            subprocess.run(
                [*cli, "data", "synth", "--out", str(data), "--stays", str(n), "--seed", "0"],
                env={**base_env, "EHRBACKDOOR_NO_CACHE": "1"},
                check=True,
                capture_output=True,
            )
            cache = work / f"cache-{n}"
            env = {**base_env, "EHRBACKDOOR_CACHE": str(cache)}
            steps = [
                (
                    "export grid (empty cache)",
                    [*cli, "data", "export", str(data), "--out", str(work / "g.npz")],
                    True,
                ),
                (
                    "export grid (warm cache)",
                    [*cli, "data", "export", str(data), "--out", str(work / "g.npz")],
                    False,
                ),
                (
                    "attack lr (empty cache)",
                    [
                        *cli,
                        "attack",
                        "--data",
                        str(data),
                        "--out",
                        str(work / f"a-{n}"),
                        "--models",
                        "lr",
                        "--bootstrap",
                        "100",
                    ],
                    True,
                ),
            ]
            if n in gru_at:
                steps.append(
                    (
                        "attack gru (empty cache)",
                        [
                            *cli,
                            "attack",
                            "--data",
                            str(data),
                            "--out",
                            str(work / f"g-{n}"),
                            "--models",
                            "gru",
                            "--bootstrap",
                            "100",
                        ],
                        True,
                    )
                )
            for name, cmd, fresh in steps:
                if fresh:
                    shutil.rmtree(cache, ignore_errors=True)
                r = measure(cmd, env)
                per = r["cpu"] / n
                per_stay0.setdefault(name, per)
                print(
                    f"{n:7d} {name:28s} {r['wall']:8.1f} {r['cpu']:8.1f} {r['maxrss_mb']:8.0f} "
                    f"{per / per_stay0[name]:18.2f}",
                    flush=True,
                )
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        tmp_ctx.cleanup()


if __name__ == "__main__":
    main()
