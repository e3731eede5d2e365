"""Synthetic ICU stays written as a MIMIC-III benchmark in-hospital-mortality directory.

Real MIMIC-III needs credentialed access, so tests, examples and quick experiments run on synthetic
stays instead. They are written in the benchmark's on-disk format (`train/`, `test/`, three
listfiles, `{subject}_episode1_timeseries.csv`) so the real reader, not a shortcut, is exercised.

The generative model is deliberately simple but keeps what matters for backdoor experiments:

- a latent per-stay severity drives every vital sign, the lab values, consciousness (GCS) and how
  often things are measured (informative missingness: sicker patients are charted more often);
- in-hospital death follows a logistic model in severity with extra noise; the intercept is set so
  that exactly `MORTALITY` of the stays die (a liability threshold), so the rate does not wander
  with the seed;
- patients who die tend to deteriorate over the 48 hours (rising heart rate, falling blood
  pressure, SpO2 and GCS, acidosis, rising glucose); survivors drift a little either way;
- per-patient baselines, smooth AR(1) noise and measurement noise keep the task far from trivially
  separable (logistic regression on simple summaries reaches an AUROC of about 0.8);
- values are rounded to each variable's recorded precision and clipped to its valid range; GCS
  values are written as the benchmark's text (mostly numbered spellings such as `4 Spontaneously`,
  sometimes the un-numbered CareVue spellings such as `Spontaneously`);
- rows sit at charting times: vital-sign rounds on the clock hour (so a stay admitted exactly on
  the hour has observations exactly on bin edges), labs at arbitrary minutes, first 48 hours only.

Everything is vectorised over stays and drawn from one `numpy.random.default_rng(seed)`, so the same
seed gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrbackdoor.data.cohort import WINDOW_HOURS
from ehrbackdoor.data.schema import Variable, mimic3_schema
from ehrbackdoor.progress import ProgressFn

#: Fraction of stays that die in hospital (the benchmark's train set has 13.5%).
MORTALITY = 0.13
#: Fractions of stays in the train / val / test listfiles (stratified by label).
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)

#: Weight of severity in the death logit (the logistic noise has scale 1).
SEVERITY_WEIGHT = 1.0
#: Deterioration over 48 h in units of severity: mean and sd for deaths, then for survivors.
DETERIORATION = ((0.7, 0.7), (-0.1, 0.45))

_SLOTS = int(WINDOW_HOURS) + 1  # clock hours 0..48 after the first charting hour


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) noise on the hourly grid (n, 49): smooth within-stay fluctuation."""
    out = np.empty((n, _SLOTS + 1))
    out[:, 0] = rng.standard_normal(n) * sd
    innov = rng.standard_normal((n, _SLOTS)) * sd * np.sqrt(1.0 - phi**2)
    for k in range(1, _SLOTS + 1):
        out[:, k] = phi * out[:, k - 1] + innov[:, k - 1]
    return out


def _at(grid: np.ndarray, stay: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of per-stay hourly grids at event times."""
    k = np.clip(np.floor(t).astype(np.int64), 0, grid.shape[1] - 2)
    f = t - k
    return grid[stay, k] * (1.0 - f) + grid[stay, k + 1] * f


def _fixed(values: np.ndarray, precision: int) -> pa.Array:
    """Non-negative numbers as fixed-point text with `precision` decimals, in Arrow (vectorised)."""
    scale = 10**precision
    k = np.rint(np.asarray(values, dtype=np.float64) * scale).astype(np.int64)
    whole = pc.cast(pa.array(k // scale), pa.string())
    if precision == 0:
        return whole
    frac = pc.utf8_slice_codeunits(pc.cast(pa.array(k % scale + scale), pa.string()), start=1)
    return pc.binary_join_element_wise(whole, frac, ".")


def _alias_texts(v: Variable, carevue: bool) -> list[str]:
    """Text written for each clinical level: the numbered label, or an un-numbered alias if any."""
    out = []
    for code, label in zip(v.levels, v.level_labels, strict=True):
        text = label
        if carevue:
            alts = sorted(
                t
                for t, c in v.aliases.items()
                if c == code and t != label and not t[0].isdigit() and "ETT" not in t
            )
            if alts:
                text = alts[0]
        out.append(text)
    return out


class _Events:
    """Accumulates (stay, time, variable, value, text-index) events of the generator."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(
        self,
        stay: np.ndarray,
        t: np.ndarray,
        var: int,
        value: np.ndarray,
        alias: np.ndarray | None = None,
    ) -> None:
        if alias is None:
            alias = np.full(len(stay), -1, dtype=np.int64)
        self.parts.append((stay, t, np.full(len(stay), var, dtype=np.int64), value, alias))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate([p[i] for p in self.parts]) for i in range(5))


def _simulate(rng: np.random.Generator, n: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Labels and events of `n` stays (times in whole microseconds)."""
    schema = mimic3_schema()
    ix = {v.short: schema.index(v.name) for v in schema.variables}

    # ---- latent state and outcome
    severity = rng.standard_normal(n)
    liability = SEVERITY_WEIGHT * severity + rng.logistic(size=n)
    label = np.zeros(n, dtype=np.int64)
    label[np.argsort(-liability, kind="stable")[: int(round(MORTALITY * n))]] = 1
    onset = rng.uniform(0.0, 40.0, n)
    (die_mu, die_sd), (surv_mu, surv_sd) = DETERIORATION
    amp = np.where(label == 1, rng.normal(die_mu, die_sd, n), rng.normal(surv_mu, surv_sd, n))
    hours = np.arange(_SLOTS + 1, dtype=np.float64)
    ramp = np.clip((hours[None, :] - onset[:, None]) / 24.0, 0.0, 1.0)
    z = severity[:, None] + amp[:, None] * ramp  # (n, 50) hourly state
    sick = _sigmoid(1.5 * (severity - 0.5))  # 0..1, drives measurement intensity
    vent = rng.random(n) < _sigmoid(-0.6 + 1.0 * severity)
    carevue = rng.random(n) < 0.2  # stays charted with un-numbered GCS spellings

    # ---- charting times: vital-sign rounds on the clock hour, some extra for sick patients
    phase = np.round(rng.uniform(0.0, 1.0, n) * 3600.0) / 3600.0  # admission within the hour
    phase[rng.random(n) < 0.1] = 0.0  # admitted exactly on the hour: rows on bin edges
    first = np.where(rng.random(n) < 0.85, 0, rng.integers(1, 4, n))
    slot = np.arange(_SLOTS)
    main_t = phase[:, None] + slot[None, :]
    p_round = 0.80 + 0.17 * sick
    main = (slot[None, :] >= first[:, None]) & (rng.random((n, _SLOTS)) < p_round[:, None])
    jitter = np.where(
        rng.random((n, _SLOTS)) < 0.2, np.round(rng.uniform(-15, 15, (n, _SLOTS))) / 60.0, 0.0
    )
    main_t = np.clip(main_t + jitter, 0.0, WINDOW_HOURS)
    extra_t = np.round((phase[:, None] + slot[None, :] + 0.5) * 60.0) / 60.0
    extra = (slot[None, :] >= first[:, None]) & (
        rng.random((n, _SLOTS)) < 0.35 * sick[:, None] ** 2
    )
    main &= main_t <= WINDOW_HOURS
    extra &= extra_t <= WINDOW_HOURS

    ev = _Events()
    noise = rng.standard_normal

    def rounds(mask: np.ndarray, times: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
        """Stay and time of the candidate slots in `mask` that are charted (probability p)."""
        obs = mask & (rng.random(mask.shape) < p)
        s, k = np.nonzero(obs)
        return s, times[s, k]

    def physio(
        s: np.ndarray,
        t: np.ndarray,
        base: float,
        coef: float,
        re_sd: float,
        ar_sd: float,
        phi: float,
        meas_sd: float,
    ) -> np.ndarray:
        """Population level + severity effect + patient offset + AR(1) drift + measurement noise."""
        re = noise(n) * re_sd
        ar = _ar1(rng, n, phi, ar_sd)
        return base + coef * _at(z, s, t) + re[s] + _at(ar, s, t) + noise(len(s)) * meas_sd

    # Vital signs at rounds (heart rate almost always, the others most of the time).
    all_t = np.concatenate([main_t, extra_t], axis=1)
    all_m = np.concatenate([main, extra], axis=1)
    s, t = rounds(all_m, all_t, 0.98)
    ev.add(s, t, ix["HR"], physio(s, t, 84.0, 9.0, 12.0, 6.0, 0.85, 2.0))
    bp = all_m & (rng.random(all_m.shape) < 0.93)
    s, t = rounds(bp, all_t, 1.0)
    sbp = physio(s, t, 122.0, -9.0, 15.0, 8.0, 0.8, 3.0)
    dbp = physio(s, t, 61.0, -5.0, 9.0, 5.0, 0.8, 2.0)
    dbp = np.minimum(dbp, sbp - 15.0)
    mbp = (sbp + 2.0 * dbp) / 3.0 + noise(len(s)) * 2.0
    ev.add(s, t, ix["SBP"], sbp)
    ev.add(s, t, ix["DBP"], dbp)
    has_mbp = rng.random(len(s)) < 0.96
    ev.add(s[has_mbp], t[has_mbp], ix["MBP"], mbp[has_mbp])
    s, t = rounds(all_m, all_t, 0.92)
    ev.add(s, t, ix["RR"], physio(s, t, 18.5, 2.5, 3.0, 2.5, 0.7, 1.0))
    s, t = rounds(all_m, all_t, 0.93)
    ev.add(s, t, ix["SpO2"], physio(s, t, 97.3, -1.1, 1.0, 1.0, 0.7, 0.6))

    # Temperature every 4 h (every 2 h for sick patients), on vital rounds.
    t_every = np.where(rng.random(n) < sick, 2, 4)
    t_off = rng.integers(0, 4, n) % t_every
    on_t = ((slot[None, :] - t_off[:, None]) % t_every[:, None]) == 0
    s, t = rounds(main & on_t, main_t, 0.9)
    ev.add(s, t, ix["Temp"], physio(s, t, 36.9, 0.2, 0.4, 0.3, 0.8, 0.1))

    # FiO2: every ~4 h when ventilated, rarely otherwise.
    on_f = (slot[None, :] % 4) == (rng.integers(0, 4, n)[:, None])
    fmask = main & np.where(vent[:, None], on_f, rng.random((n, _SLOTS)) < 0.02)
    s, t = rounds(fmask, main_t, 0.85)
    fio2 = np.where(vent[s], physio(s, t, 0.42, 0.07, 0.08, 0.05, 0.9, 0.0), 0.21)
    ev.add(s, t, ix["FiO2"], np.maximum(np.round(fio2 * 20.0) / 20.0, 0.21))

    # GCS: eye, motor, verbal and total together every 2-4 h (more often when sick).
    g_every = np.where(rng.random(n) < sick, 2, rng.integers(3, 5, n))
    g_off = rng.integers(0, 4, n) % g_every
    on_g = ((slot[None, :] - g_off[:, None]) % g_every[:, None]) == 0
    s, t = rounds(main & on_g, main_t, 0.9)
    consc = physio(s, t, 2.4, -1.0, 0.8, 0.6, 0.8, 0.2) - 1.2 * vent[s]
    frac = _sigmoid(consc)
    eye = np.clip(np.rint(1 + 3 * frac + noise(len(s)) * 0.35), 1, 4)
    motor = np.clip(np.rint(1 + 5 * frac + noise(len(s)) * 0.35), 1, 6)
    verbal = np.clip(np.rint(1 + 4 * frac + noise(len(s)) * 0.35), 1, 5)
    ett = vent[s] & (rng.random(len(s)) < 0.8)
    verbal[ett] = 1
    total = eye + motor + verbal
    for short, code, p_obs in (
        ("GCS_eye", eye, 0.97),
        ("GCS_motor", motor, 0.97),
        ("GCS_verbal", verbal, 0.97),
        ("GCS_total", total, 0.9),
    ):
        v = schema.variables[ix[short]]
        level = np.searchsorted(np.asarray(v.levels), code)
        numbered = [v.benchmark_values.index(x) for x in _alias_texts(v, carevue=False)]
        plain = [v.benchmark_values.index(x) for x in _alias_texts(v, carevue=True)]
        use_plain = carevue[s] & (rng.random(len(s)) < 0.8)
        alias = np.where(use_plain, np.asarray(plain)[level], np.asarray(numbered)[level])
        if short == "GCS_verbal":
            ett_text = "1.0 ET/Trach", "No Response-ETT"
            alias = np.where(
                ett,
                np.where(
                    carevue[s],
                    v.benchmark_values.index(ett_text[1]),
                    v.benchmark_values.index(ett_text[0]),
                ),
                alias,
            )
        keep = rng.random(len(s)) < p_obs
        ev.add(s[keep], t[keep], ix[short], code[keep], alias[keep])

    # Capillary refill: only charted for some stays, at GCS rounds.
    crr_stay = rng.random(n) < 0.2
    s, t = rounds(main & on_g & crr_stay[:, None], main_t, 0.4)
    crr = (rng.random(len(s)) < _sigmoid(-2.8 + 1.2 * _at(z, s, t))).astype(np.float64)
    v = schema.variables[ix["CRR"]]
    crr_alias = np.asarray([v.benchmark_values.index(x) for x in v.level_labels])
    ev.add(s, t, ix["CRR"], crr, crr_alias[crr.astype(np.int64)])

    # Labs at arbitrary minutes: glucose several times a day, blood gases (pH) when ventilated.
    start = phase + first
    labs = (("Glucose", 4.0 + 4.0 * sick, 24), ("pH", 1.0 + 4.0 * vent + sick, 16))
    for short, lam, max_k in labs:
        count = np.minimum(rng.poisson(lam), max_k)
        times = start[:, None] + rng.uniform(0.0, 1.0, (n, max_k)) * (WINDOW_HOURS - start[:, None])
        times = np.round(times * 60.0) / 60.0
        s, k = np.nonzero(np.arange(max_k)[None, :] < count[:, None])
        t = times[s, k]
        if short == "Glucose":
            val = physio(s, t, 135.0, 14.0, 28.0, 22.0, 0.7, 6.0)
        else:
            val = physio(s, t, 7.39, -0.035, 0.03, 0.025, 0.8, 0.01)
        ev.add(s, t, ix[short], val)

    # Weight at the first charting hour (sometimes again), height at most once.
    t0 = np.clip(start, 0.0, WINDOW_HOURS)
    weight = np.clip(rng.normal(82.0, 18.0, n), 40.0, 200.0)
    s = np.flatnonzero(rng.random(n) < 0.75)
    ev.add(s, t0[s], ix["Weight"], weight[s])
    s = np.flatnonzero(rng.random(n) < 0.2)
    t = np.round(rng.uniform(t0[s], WINDOW_HOURS) * 60.0) / 60.0
    ev.add(s, t, ix["Weight"], weight[s] + rng.normal(0.0, 2.0, len(s)))
    s = np.flatnonzero(rng.random(n) < 0.35)
    ev.add(s, t0[s], ix["Height"], np.clip(rng.normal(169.0, 10.0, len(s)), 140.0, 205.0))

    stay, time, var, value, alias = ev.arrays()
    # Round to recorded precision and clip to the valid range.
    scale = 10.0 ** schema.precisions[var]
    value = np.clip(np.round(value * scale) / scale, schema.lows[var], schema.highs[var])
    t_us = np.rint(np.clip(time, 0.0, WINDOW_HOURS) * 1e6).astype(np.int64)
    return label, (stay, t_us, var, value, alias)


def _rows(events: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, list[pa.Array]]:
    """Pivot events to CSV rows: stay and time (us) of each row, and one text column per field."""
    schema = mimic3_schema()
    stay, t_us, var, value, alias = events
    key = stay * 100_000_000 + t_us  # 48 h = 4.8e7 us
    row_key, row = np.unique(key, return_inverse=True)
    row_stay = row_key // 100_000_000
    row_t = row_key % 100_000_000
    # One value per (row, variable): a second lab drawn in the same minute is dropped.
    cell = row * len(schema) + var
    _, first = np.unique(cell, return_index=True)
    row, var, value, alias = row[first], var[first], value[first], alias[first]

    hours_text = pc.binary_join_element_wise(
        pc.cast(pa.array(row_t // 1_000_000), pa.string()),
        pc.utf8_slice_codeunits(
            pc.cast(pa.array(row_t % 1_000_000 + 1_000_000), pa.string()), start=1
        ),
        ".",
    )
    columns = [hours_text]
    n_rows = len(row_key)
    for j, v in enumerate(schema.variables):
        sel = var == j
        r = row[sel]
        if v.is_categorical:
            text = pa.array(list(v.benchmark_values), pa.string()).take(pa.array(alias[sel]))
        else:
            text = _fixed(value[sel], v.precision)
        # Scatter into a full-length column with nulls where the variable was not charted.
        idx = np.full(n_rows, -1, dtype=np.int64)
        idx[r] = np.arange(len(r))
        columns.append(text.take(pa.array(idx, mask=idx < 0)))
    return row_stay, row_t, columns


def _split(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    """0/1/2 = train/val/test for each stay, stratified by label."""
    part = np.empty(len(label), dtype=np.int64)
    for y in (0, 1):
        idx = rng.permutation(np.flatnonzero(label == y))
        n_train = int(round(SPLIT_FRACTIONS[0] * len(idx)))
        n_val = int(round(SPLIT_FRACTIONS[1] * len(idx)))
        part[idx[:n_train]] = 0
        part[idx[n_train : n_train + n_val]] = 1
        part[idx[n_train + n_val :]] = 2
    return part


def generate_synthetic(
    out_dir: str | Path, n_stays: int = 2000, seed: int = 0, progress: ProgressFn | None = None
) -> Path:
    """Write `n_stays` synthetic stays as a MIMIC-III benchmark in-hospital-mortality directory.

    Returns `out_dir`, ready for `read_mimic3`. Same `seed` -> byte-identical files. `progress`
    (optional) is told every 500 stays how many files are written.
    """
    if n_stays < 1:
        raise ValueError(f"n_stays must be positive, got {n_stays}")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    schema = mimic3_schema()
    n = int(n_stays)

    label, events = _simulate(rng, n)
    part = _split(rng, label)
    subject = np.sort(rng.choice(np.arange(100, 100 + 20 * n), size=n, replace=False))
    names = [f"{s}_episode1_timeseries.csv" for s in subject]

    row_stay, _, columns = _rows(events)
    lines = pc.binary_join_element_wise(*columns, ",", null_handling="replace", null_replacement="")
    lines = pc.binary_join_element_wise(lines, pa.scalar(""), "\n").cast(pa.large_string())
    buf = lines.buffers()[2].to_pybytes() if len(lines) else b""
    line_off = np.frombuffer(lines.buffers()[1], dtype=np.int64)[: len(lines) + 1]
    stay_rows = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_stay, minlength=n), out=stay_rows[1:])
    byte_off = line_off[stay_rows]

    header = (",".join(["Hours", *schema.names]) + "\n").encode()
    folders = {0: out / "train", 1: out / "train", 2: out / "test"}
    for f in set(folders.values()):
        f.mkdir(parents=True, exist_ok=True)

    for i in range(n):
        (folders[int(part[i])] / names[i]).write_bytes(header + buf[byte_off[i] : byte_off[i + 1]])
        if progress is not None and (i % 500 == 0 or i == n - 1):
            progress("writing synthetic stays", i + 1, n)

    for k, split in enumerate(("train", "val", "test")):
        idx = rng.permutation(np.flatnonzero(part == k))
        text = "stay,y_true\n" + "".join(f"{names[i]},{label[i]}\n" for i in idx)
        (out / f"{split}_listfile.csv").write_text(text)
    return out
