"""Time victim-side preprocessing on the shared PhysioNet 2012 copy, from raw files and from cache.

    PYTHONPATH=src python benchmarks/bench_preprocess.py [PHYSIONET_DIR] [--repeat N]

Steps: parse the raw files to a cohort (`read_physionet2012`), discretise to the 48 x 1 h grid
(`discretize`) and compute window features (`window_features`); then the same three from cache
(`Cohort.load` of a saved cohort, `grid_cached`, `features_cached` hitting a warm cache in a temporary
directory). Prints seconds, stays/s and peak resident memory (getrusage maxrss). Targets: raw files
to both representations < 5 s, from cache < 1 s, peak memory < 2 GB.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.readers.physionet2012 import read_physionet2012
from ehrbackdoor.preprocess import discretize, features_cached, grid_cached, window_features

REPO = Path(__file__).resolve().parents[1]
TARGET_RAW_S, TARGET_CACHE_S, TARGET_MEM_GB = 5.0, 1.0, 2.0


def default_dir() -> Path:
    shared = Path(os.environ.get("EHRBACKDOOR_SHARED", REPO.parent / "shared"))
    return shared / "data" / "physionet2012"


def peak_gb() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


class Step:
    """Best-of-N wall and CPU seconds of one step (the machine may be shared: CPU time is the
    steadier number under contention)."""

    def __init__(self, wall: float, cpu: float) -> None:
        self.wall, self.cpu = wall, cpu

    def __add__(self, other: Step) -> Step:
        return Step(self.wall + other.wall, self.cpu + other.cpu)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, Step]:
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return out, Step(wall, cpu)


def row(name: str, step: Step, n: int) -> None:
    print(
        f"  {name:<34s} {step.wall:7.3f} s  {n / step.wall:10,.0f} stays/s   (cpu {step.cpu:.3f} s)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", type=Path, default=default_dir())
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per step")
    args = ap.parse_args()
    if not args.root.is_dir():
        print(f"PhysioNet 2012 copy not found at {args.root}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="ehrbackdoor-bench-") as tmp:
        cache = Path(tmp) / "cache"
        cohort, t_read = timed(lambda: read_physionet2012(args.root), args.repeat)
        n = cohort.n_stays
        print(f"{n} stays, {cohort.n_events:,} events ({args.root})")
        print("from raw files:")
        row("read_physionet2012", t_read, n)
        grid, t_grid = timed(lambda: discretize(cohort), args.repeat)
        row(f"discretize {grid.values.shape}", t_grid, n)
        _, t_grid_b = timed(lambda: discretize(cohort, layout="benchmark"), args.repeat)
        row("discretize (benchmark layout)", t_grid_b, n)
        feats, t_feat = timed(lambda: window_features(cohort), args.repeat)
        row(f"window_features {feats.X.shape}", t_feat, n)
        raw_total = t_read + t_grid + t_feat
        row("total: files -> grid + features", raw_total, n)

        # Warm the caches (the cohort too: a saved cohort is what later runs start from).
        cohort_path = Path(tmp) / "cohort.npz"
        cohort.save(cohort_path)
        grid_cached(cohort, cache_dir=cache)
        features_cached(cohort, cache_dir=cache)
        del grid, feats

        print("from cache:")
        cached_cohort, t_load = timed(lambda: Cohort.load(cohort_path), args.repeat)
        row("Cohort.load", t_load, n)
        _, t_grid_c = timed(lambda: grid_cached(cached_cohort, cache_dir=cache), args.repeat)
        row("grid_cached (hit)", t_grid_c, n)
        _, t_feat_c = timed(lambda: features_cached(cached_cohort, cache_dir=cache), args.repeat)
        row("features_cached (hit)", t_feat_c, n)
        cache_total = t_load + t_grid_c + t_feat_c
        row("total: cache -> grid + features", cache_total, n)

    mem = peak_gb()
    print(f"peak memory (maxrss): {mem:.2f} GB")
    ok = raw_total.wall < TARGET_RAW_S and cache_total.wall < TARGET_CACHE_S and mem < TARGET_MEM_GB
    print(
        f"targets: raw {raw_total.wall:.2f} < {TARGET_RAW_S} s, cache {cache_total.wall:.2f} < "
        f"{TARGET_CACHE_S} s, memory {mem:.2f} < {TARGET_MEM_GB} GB: {'OK' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
