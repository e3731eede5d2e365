"""Whole `ehrbackdoor data export` runs: uncached, with an empty cache, and with a warm cache.

Each command is a fresh process (interpreter start included); wall and CPU seconds (user+sys of
the child) are reported, since a loaded machine inflates wall time. The floor is a bare process
that only reads every file of the source and CSV-parses them in one pyarrow call.

    python benchmarks/bench_export.py --data /path/to/physionet2012   # a real directory
    python benchmarks/bench_export.py --stays 5000                    # synthetic MIMIC-III format
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

FLOOR = r"""
import io, sys, pathlib, pyarrow.csv as pacsv
root = pathlib.Path(sys.argv[1])
sets = sorted(root.glob("set-*"))
if sets:  # PhysioNet 2012: every record file read, all parsed in one pass (what the reader does)
    files = [p for d in sets for p in sorted(d.glob("*.txt"))]
    blobs = [p.read_bytes() for p in files] + [p.read_bytes() for p in root.glob("Outcomes-*")]
    body = b"".join(b[b.index(b"\n") + 1:] for b in blobs[:len(files)] if b"\n" in b)
    names = ["a", "b", "c"]
    t = pacsv.read_csv(io.BytesIO(body), read_options=pacsv.ReadOptions(column_names=names),
                       convert_options=pacsv.ConvertOptions(
                           column_types={n: "string" for n in names}))
    print(len(files), t.num_rows)
else:  # any other layout: every CSV file parsed on its own
    files = sorted(p for p in root.rglob("*.csv"))
    print(len(files), sum(pacsv.read_csv(p).num_rows for p in files))
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best(cmd: list[str], env: dict[str, str], repeat: int, reset=None) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        if reset is not None:
            reset()
        runs.append(timed(cmd, env))
    return min(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, help="existing data directory (else synthetic)")
    ap.add_argument("--stays", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="best of N per measurement")
    args = ap.parse_args()
    cli = [sys.executable, "-m", "ehrbackdoor.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = {**os.environ}
        base.pop("EHRBACKDOOR_NO_CACHE", None)
        data = args.data
        if data is None:
            data = tmp / "synth"
            subprocess.run(
                [
                    *cli,
                    "data",
                    "synth",
                    "--out",
                    str(data),
                    "--stays",
                    str(args.stays),
                    "--seed",
                    str(args.seed),
                ],
                check=True,
                env={**base, "EHRBACKDOOR_NO_CACHE": "1"},
                capture_output=True,
            )
        floor = best([sys.executable, "-c", FLOOR, str(data)], base, args.repeat)
        print(
            f"floor (bare pyarrow read of every file): wall {floor[0]:.2f} s, cpu {floor[1]:.2f} s"
        )
        cache = tmp / "cache"

        def clear() -> None:
            subprocess.run(["rm", "-rf", str(cache)], check=True)

        for rep in ("grid", "features"):
            out = tmp / f"{rep}.npz"
            cmd = [*cli, "data", "export", str(data), "--representation", rep, "--out", str(out)]
            rows = {
                "no cache": best(cmd, {**base, "EHRBACKDOOR_NO_CACHE": "1"}, args.repeat),
                "empty cache": best(
                    cmd, {**base, "EHRBACKDOOR_CACHE": str(cache)}, args.repeat, clear
                ),
            }
            rows["warm cache"] = best(cmd, {**base, "EHRBACKDOOR_CACHE": str(cache)}, args.repeat)
            clear()
            timed([*cli, "data", "info", str(data)], {**base, "EHRBACKDOOR_CACHE": str(cache)})
            rows["cohort cached only"] = best(cmd, {**base, "EHRBACKDOOR_CACHE": str(cache)}, 1)
            for name, (wall, cpu) in rows.items():
                print(
                    f"export {rep:8s} {name:19s}: wall {wall:5.2f} s ({wall / floor[0]:4.2f}x "
                    f"floor), cpu {cpu:5.2f} s ({cpu / floor[1]:4.2f}x floor)"
                )
            clear()


if __name__ == "__main__":
    main()
