"""Random cohorts and episode files for the preprocessing tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import Schema, mimic3_schema

#: Times that sit on the benchmark's bin and window edges.
EDGE_TIMES = np.array(
    [
        0.0,
        1e-7,
        0.5,
        1.0,
        1.0 + 1e-7,
        1.0 + 1e-6,
        2.0 - 1e-7,
        2.0,
        23.999999,
        24.0,
        47.0,
        47.5,
        48.0 - 1e-7,
        48.0,
        48.0 + 5e-7,
    ]
)


def random_times(rng: np.random.Generator, k: int, hours: float = 48.0) -> np.ndarray:
    """A mix of edge times, whole hours, minute-resolution and arbitrary floats, with repeats."""
    kind = rng.integers(0, 4, size=k)
    t = np.where(
        kind == 0,
        rng.choice(EDGE_TIMES, size=k),
        np.where(
            kind == 1,
            rng.integers(0, int(hours) + 1, size=k).astype(float),
            np.where(
                kind == 2,
                np.round(rng.uniform(0, hours, size=k) * 60) / 60,
                rng.uniform(0, hours, size=k),
            ),
        ),
    )
    # duplicate some times so several events share a time (and a bin)
    dup = rng.random(k) < 0.2
    if k > 1:
        t[dup] = t[rng.integers(0, k, size=int(dup.sum()))]
    return t


def random_values(
    rng: np.random.Generator, schema: Schema, var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Values at recorded precision (codes for categoricals) and matching benchmark aliases."""
    value = np.empty(len(var))
    alias = np.full(len(var), -1, dtype=np.int8)
    for f, v in enumerate(schema.variables):
        sel = np.flatnonzero(var == f)
        if not len(sel):
            continue
        if v.is_categorical and v.benchmark_values:
            texts = rng.choice(np.array(v.benchmark_values), size=len(sel))
            value[sel] = [v.aliases[t] for t in texts]
            alias[sel] = [v.benchmark_values.index(t) for t in texts]
            keep_alias = rng.random(len(sel)) < 0.8
            # alias -1 only where the code has a canonical label (eye "None" = 0 has none)
            canon = np.isin(value[sel], v.levels)
            alias[sel[~keep_alias & canon]] = -1
        elif v.is_categorical:
            value[sel] = rng.choice(np.array(v.levels), size=len(sel))
        else:
            hi = min(v.high, v.low + 150.0)
            # few distinct values per variable so windows with equal values occur
            pool = np.round(rng.uniform(v.low, hi, size=6), v.precision)
            value[sel] = rng.choice(pool, size=len(sel))
    return value, alias


def random_cohort(
    rng: np.random.Generator,
    schema: Schema | None = None,
    n_stays: int = 12,
    max_events: int = 120,
    n_vars: int | None = None,
) -> Cohort:
    """Stays with random events (some empty), times sorted within stays, ties in random order."""
    schema = schema or mimic3_schema()
    n_vars = n_vars or len(schema)
    counts = rng.integers(0, max_events + 1, size=n_stays)
    counts[rng.random(n_stays) < 0.15] = 0
    k = int(counts.sum())
    stay = np.repeat(np.arange(n_stays), counts)
    time = random_times(rng, k)
    var = rng.integers(0, n_vars, size=k)
    value, alias = random_values(rng, schema, var)
    events = Events.from_flat(stay, n_stays, time, var, value, alias)
    return Cohort(
        schema=schema,
        stay_id=np.array([f"s{i}" for i in range(n_stays)]),
        label=rng.integers(0, 2, size=n_stays).astype(np.int8),
        static=np.zeros((n_stays, len(schema.static))),
        events=events,
    )


# ------------------------------------------------------------------ MIMIC-III benchmark episodes


def _fmt_time(rng: np.random.Generator, t: float) -> str:
    if t == int(t) and rng.random() < 0.5:
        return str(int(t))
    return repr(float(t)) if rng.random() < 0.5 else f"{t:.6f}"


def random_episode(rng: np.random.Generator, n_rows: int) -> list[list[str]]:
    """Rows (without header) of a benchmark episode CSV: sorted times, sparse text cells."""
    schema = mimic3_schema()
    times = np.sort(random_times(rng, n_rows))
    # a few rows beyond the window, which both pipelines drop
    extra = rng.choice([48.5, 49.0, 60.25], size=int(rng.integers(0, 3)))
    times = np.concatenate([times, np.sort(extra)])
    texts = [_fmt_time(rng, float(t)) for t in times]
    texts.sort(key=float)  # formatting may round, so sort the text as parsed
    rows = []
    for t in texts:
        row = [t]
        for v in schema.variables:
            if rng.random() > 0.3:
                row.append("")
            elif v.is_categorical:
                row.append(str(rng.choice(np.array(v.benchmark_values))))
            else:
                hi = min(v.high, v.low + 150.0)
                x = rng.uniform(v.low, hi)
                style = rng.integers(0, 3)
                text = (
                    f"{x:.{v.precision}f}"
                    if style == 0
                    else f"{x:.3f}"
                    if style == 1
                    else str(int(round(x)))
                )
                row.append(text)
        rows.append(row)
    return rows


def write_episode(path: Path, rows: list[list[str]]) -> None:
    header = ",".join(["Hours", *mimic3_schema().names])
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows))


def cohort_from_rows(episodes: list[list[list[str]]], hours: float = 48.0) -> Cohort:
    """Build a cohort straight from episode rows (independent of the MIMIC reader)."""
    schema = mimic3_schema()
    stay, time, var, value, alias = [], [], [], [], []
    for i, rows in enumerate(episodes):
        for row in rows:
            t = float(row[0])
            if not (-1e-6 < t < hours + 1e-6):
                continue
            for j, text in enumerate(row[1:]):
                if text == "":
                    continue
                v = schema.variables[j]
                stay.append(i)
                time.append(t)
                var.append(j)
                if v.is_categorical:
                    value.append(v.aliases[text])
                    alias.append(v.benchmark_values.index(text))
                else:
                    value.append(float(text))
                    alias.append(-1)
    n = len(episodes)
    events = Events.from_flat(
        np.array(stay, dtype=np.int64),
        n,
        np.array(time),
        np.array(var),
        np.array(value),
        np.array(alias, dtype=np.int8),
    )
    return Cohort(
        schema,
        np.array([f"e{i}" for i in range(n)]),
        np.zeros(n, dtype=np.int8),
        np.zeros((n, 0)),
        events,
    )
