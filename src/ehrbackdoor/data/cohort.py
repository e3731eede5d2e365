"""The cohort: raw ICU stays held column-wise; the one data model of every source, attack, victim.

Events of all stays live in flat arrays (`time`, `variable`, `value`, `alias`) ordered by stay and,
within a stay, by time (ties keep file order); `offsets[i]:offsets[i+1]` are the events of stay i.
Selecting stays, replacing some stays' events (what an attack does) and concatenating cohorts are
vectorised gathers over those arrays, never a loop over stays.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ehrbackdoor.data.perturbation import GridPerturbation, concat_perturbations
from ehrbackdoor.data.schema import Schema, get_schema
from ehrbackdoor.io import atomic_savez

#: Readers' default window in hours (PhysioNet 2012, MIMIC-III); each cohort has its own `window`.
WINDOW_HOURS = 48.0
#: The MIMIC-III benchmark's bin rule: an event at hour t falls in bin int(t / step - 1e-6).
BIN_EPS = 1e-6


def hour_bins(time: np.ndarray, timestep: float = 1.0) -> np.ndarray:
    """Bin index of each event time, exactly as the MIMIC-III benchmark discretiser assigns it.

    int() truncates toward zero, so t in [0, 1] lands in bin 0 and t in (1, 2] in bin 1.
    """
    return np.trunc(np.asarray(time, dtype=np.float64) / timestep - BIN_EPS).astype(np.int64)


@dataclass(frozen=True)
class Events:
    """Raw events of a batch of stays (the payload an attack hands back for the stays it changed)."""

    offsets: np.ndarray  # (k+1,) int64
    time: np.ndarray  # (E,) float64, hours since admission
    variable: np.ndarray  # (E,) int16, index into the schema
    value: np.ndarray  # (E,) float64; categoricals hold their clinical code
    alias: np.ndarray  # (E,) int8, index into Variable.benchmark_values or -1

    @property
    def n_stays(self) -> int:
        return len(self.offsets) - 1

    @property
    def stay(self) -> np.ndarray:
        """Index (0..k-1) of the stay each event belongs to."""
        return np.repeat(np.arange(self.n_stays), np.diff(self.offsets))

    @classmethod
    def from_flat(
        cls,
        stay: np.ndarray,
        n_stays: int,
        time: np.ndarray,
        variable: np.ndarray,
        value: np.ndarray,
        alias: np.ndarray | None = None,
    ) -> Events:
        """Build from unsorted per-event stay indices; sorts by (stay, time), stable."""
        stay = np.asarray(stay, dtype=np.int64)
        time = np.asarray(time, dtype=np.float64)
        order = np.lexsort((time, stay))
        counts = np.bincount(stay, minlength=n_stays)
        offsets = np.zeros(n_stays + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if alias is None:
            alias = np.full(len(time), -1, dtype=np.int8)
        return cls(
            offsets=offsets,
            time=time[order],
            variable=np.asarray(variable, dtype=np.int16)[order],
            value=np.asarray(value, dtype=np.float64)[order],
            alias=np.asarray(alias, dtype=np.int8)[order],
        )


def _gather(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Event positions of stays `idx` (in that order) and the new offsets."""
    lengths = np.diff(offsets)[idx]
    new_offsets = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    pos = np.arange(new_offsets[-1], dtype=np.int64) + np.repeat(
        offsets[idx] - new_offsets[:-1], lengths
    )
    return pos, new_offsets


@dataclass(frozen=True, eq=False)
class Cohort:
    """ICU stays with labels, static covariates and raw events of the observation window.

    `window`: that window in hours since admission, set by the reader (48 for PhysioNet 2012 and
    MIMIC-III, 24 for YAIB's Mortality24). `modified`: stays an attack changed (events or label),
    so defences and metrics can tell poison from clean. `meta`: JSON provenance (source, cleaning
    counts). `grid_perturbation`: an optional grid-space trigger the victims' discretiser adds to
    the hourly values of the stays carrying it (`data.perturbation`); raw events stay as recorded.
    """

    schema: Schema
    stay_id: np.ndarray  # (n,) str
    label: np.ndarray  # (n,) int8, in-hospital death
    static: np.ndarray  # (n, S) float64, NaN = missing
    events: Events
    modified: np.ndarray = field(default=None)  # type: ignore[assignment]  # (n,) bool
    meta: dict = field(default_factory=dict)
    grid_perturbation: GridPerturbation | None = None
    window: float = WINDOW_HOURS

    def __post_init__(self) -> None:
        n = len(self.stay_id)
        if not (np.isfinite(self.window) and self.window > 0):
            raise ValueError(f"window must be a positive number of hours, got {self.window!r}")
        object.__setattr__(self, "window", float(self.window))
        if self.modified is None:
            object.__setattr__(self, "modified", np.zeros(n, dtype=bool))
        if len(self.label) != n or len(self.modified) != n or self.events.n_stays != n:
            raise ValueError(
                f"cohort arrays disagree on the number of stays: stay_id {n}, label "
                f"{len(self.label)}, modified {len(self.modified)}, events {self.events.n_stays}"
            )
        if self.static.shape != (n, len(self.schema.static)):
            raise ValueError(
                f"static has shape {self.static.shape}, expected ({n}, {len(self.schema.static)})"
            )
        gp = self.grid_perturbation
        if gp is not None:
            if len(gp.carriers) != n:
                raise ValueError(
                    f"grid perturbation has {len(gp.carriers)} carrier flags for {n} stays"
                )
            if gp.pattern.shape[1] != len(self.schema):
                raise ValueError(
                    f"grid perturbation pattern has {gp.pattern.shape[1]} variables, the schema "
                    f"{len(self.schema)}"
                )

    # ---------------------------------------------------------------- basic views
    @property
    def n_stays(self) -> int:
        return len(self.stay_id)

    def __len__(self) -> int:
        return self.n_stays

    @property
    def n_events(self) -> int:
        return len(self.events.time)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.events.offsets)

    @property
    def event_stay(self) -> np.ndarray:
        """Stay index of each event."""
        return self.events.stay

    def stay_events(self, i: int) -> dict[str, np.ndarray]:
        """Events of one stay (for inspection and tests, not for hot paths)."""
        a, b = self.events.offsets[i], self.events.offsets[i + 1]
        e = self.events
        return {
            "time": e.time[a:b],
            "variable": e.variable[a:b],
            "value": e.value[a:b],
            "alias": e.alias[a:b],
        }

    def indices_of(self, stay_ids: Sequence[str]) -> np.ndarray:
        """Positions of the given stay ids; raises naming the first unknown id."""
        order = np.argsort(self.stay_id, kind="stable")
        sorted_ids = self.stay_id[order]
        wanted = np.asarray(stay_ids, dtype=str)
        pos = np.searchsorted(sorted_ids, wanted)
        pos = np.clip(pos, 0, len(sorted_ids) - 1)
        found = sorted_ids[pos] == wanted
        if not np.all(found):
            missing = wanted[~found][0]
            raise KeyError(f"stay id {missing!r} is not in this cohort")
        return order[pos]

    # ---------------------------------------------------------------- transformations
    def subset(self, idx: np.ndarray | Sequence[int]) -> Cohort:
        """The stays at positions `idx`, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        pos, offsets = _gather(self.events.offsets, idx)
        e = self.events
        events = Events(offsets, e.time[pos], e.variable[pos], e.value[pos], e.alias[pos])
        return Cohort(
            schema=self.schema,
            stay_id=self.stay_id[idx],
            label=self.label[idx],
            static=self.static[idx],
            events=events,
            modified=self.modified[idx],
            meta=dict(self.meta),
            grid_perturbation=(
                None if self.grid_perturbation is None else self.grid_perturbation.subset(idx)
            ),
            window=self.window,
        )

    def first_hours(self, hours: float) -> Cohort:
        """The cohort restricted to its first `hours` (at most its window): events after
        ``hours + 1e-6`` are dropped and `window` becomes `hours` (e.g. a 24-hour task from 48-hour
        data). Labels and statics are kept; a grid-space perturbation is refused (its bins)."""
        hours = float(hours)
        if not 0 < hours <= self.window:
            raise ValueError(f"hours must be in (0, {self.window:g}] (the window), got {hours!r}")
        if self.grid_perturbation is not None:
            raise ValueError("cannot shorten the window of a cohort carrying a grid perturbation")
        e = self.events
        keep = e.time <= hours + BIN_EPS
        events = Events.from_flat(
            e.stay[keep], self.n_stays, e.time[keep], e.variable[keep], e.value[keep], e.alias[keep]
        )
        return replace(self, events=events, window=hours)

    def replace_events(self, idx: np.ndarray | Sequence[int], new: Events) -> Cohort:
        """A copy in which stays `idx` carry the events `new` (one stay of `new` per index).

        The replaced stays are marked modified. This is how attacks write poisoned stays.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if new.n_stays != len(idx):
            raise ValueError(f"{len(idx)} stays to replace but {new.n_stays} stays of events given")
        if len(np.unique(idx)) != len(idx):
            raise ValueError("replace_events needs distinct stay indices")
        old = self.events
        lengths = np.diff(old.offsets)
        new_lengths = lengths.copy()
        new_lengths[idx] = np.diff(new.offsets)
        offsets = np.zeros(self.n_stays + 1, dtype=np.int64)
        np.cumsum(new_lengths, out=offsets[1:])
        replaced = np.zeros(self.n_stays, dtype=bool)
        replaced[idx] = True

        old_stay = old.stay
        keep = ~replaced[old_stay]
        src = np.flatnonzero(keep)
        dst_old = offsets[old_stay[keep]] + (src - old.offsets[old_stay[keep]])
        new_stay_local = new.stay
        dst_new = offsets[idx[new_stay_local]] + (
            np.arange(len(new.time)) - new.offsets[new_stay_local]
        )
        total = int(offsets[-1])

        def merge(a_old: np.ndarray, a_new: np.ndarray) -> np.ndarray:
            out = np.empty(total, dtype=a_old.dtype)
            out[dst_old] = a_old[keep]
            out[dst_new] = a_new.astype(a_old.dtype, copy=False)
            return out

        events = Events(
            offsets,
            merge(old.time, new.time),
            merge(old.variable, new.variable),
            merge(old.value, new.value),
            merge(old.alias, new.alias),
        )
        modified = self.modified.copy()
        modified[idx] = True
        return replace(self, events=events, modified=modified)

    def with_labels(self, idx: np.ndarray | Sequence[int], label: int) -> Cohort:
        """A copy with the label of stays `idx` set to `label` (marked modified)."""
        idx = np.asarray(idx, dtype=np.int64)
        labels = self.label.copy()
        labels[idx] = label
        modified = self.modified.copy()
        modified[idx] = True
        return replace(self, label=labels, modified=modified)

    def with_grid_perturbation(
        self,
        idx: np.ndarray | Sequence[int],
        pattern: np.ndarray,
        mode: str,
        timestep: float = 1.0,
    ) -> Cohort:
        """A copy in which stays `idx` carry the grid-space trigger `pattern` (marked modified).

        Stays that already carry a perturbation keep carrying it; a cohort holds one trigger, so a
        different pattern or mode is refused. Raw events are untouched.
        """
        idx = np.asarray(idx, dtype=np.int64)
        new = GridPerturbation(pattern, mode, np.zeros(self.n_stays, dtype=bool), timestep)
        old = self.grid_perturbation
        if old is not None and old.n_carriers and not old.same_trigger(new):
            raise ValueError("this cohort already carries a different grid perturbation")
        carriers = np.zeros(self.n_stays, dtype=bool) if old is None else old.carriers.copy()
        carriers[idx] = True
        modified = self.modified.copy()
        modified[idx] = True
        gp = GridPerturbation(new.pattern, mode, carriers, timestep)
        return replace(self, modified=modified, grid_perturbation=gp)

    def events_of(self, idx: np.ndarray | Sequence[int]) -> Events:
        """The events of stays `idx` as a standalone batch."""
        idx = np.asarray(idx, dtype=np.int64)
        pos, offsets = _gather(self.events.offsets, idx)
        e = self.events
        return Events(offsets, e.time[pos], e.variable[pos], e.value[pos], e.alias[pos])

    @staticmethod
    def concat(cohorts: Sequence[Cohort]) -> Cohort:
        """Stack cohorts of one schema; stay ids must stay unique."""
        if not cohorts:
            raise ValueError("concat needs at least one cohort")
        schema = cohorts[0].schema
        for c in cohorts[1:]:
            if c.schema.name != schema.name:
                raise ValueError(
                    f"cannot concatenate schemas {schema.name!r} and {c.schema.name!r}"
                )
        windows = sorted({c.window for c in cohorts})
        if len(windows) > 1:
            raise ValueError(f"cannot concatenate cohorts with different windows: {windows} h")
        stay_id = np.concatenate([c.stay_id for c in cohorts])
        if len(np.unique(stay_id)) != len(stay_id):
            raise ValueError("concatenated cohorts share stay ids")
        lengths = np.concatenate([c.lengths for c in cohorts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        events = Events(
            offsets,
            np.concatenate([c.events.time for c in cohorts]),
            np.concatenate([c.events.variable for c in cohorts]),
            np.concatenate([c.events.value for c in cohorts]),
            np.concatenate([c.events.alias for c in cohorts]),
        )
        meta = {"sources": [c.meta for c in cohorts]}
        return Cohort(
            grid_perturbation=concat_perturbations(
                [(c.grid_perturbation, c.n_stays) for c in cohorts]
            ),
            schema=schema,
            stay_id=stay_id,
            label=np.concatenate([c.label for c in cohorts]),
            static=np.concatenate([c.static for c in cohorts]),
            events=events,
            modified=np.concatenate([c.modified for c in cohorts]),
            meta=meta,
            window=windows[0],
        )

    # ---------------------------------------------------------------- identity, persistence
    def content_hash(self) -> str:
        """Hash of everything preprocessing depends on (cache key; changes with any value)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.schema.name.encode())
        if self.window != WINDOW_HOURS:  # the default adds nothing: hashes of 48 h cohorts stay
            h.update(f"window={self.window!r}".encode())
        for a in (
            self.stay_id.astype(str),
            self.label,
            self.static,
            self.events.offsets,
            self.events.time,
            self.events.variable,
            self.events.value,
            self.events.alias,
        ):
            arr = np.ascontiguousarray(a)
            h.update(str(arr.dtype).encode() + str(arr.shape).encode())
            h.update(arr.tobytes())
        gp = self.grid_perturbation
        if gp is not None and gp.n_carriers:  # no carrier: preprocessing as for a clean cohort
            gp.update(h)
        return h.hexdigest()

    def save(self, path: str | Path) -> None:
        """Write to a NumPy .npz (no pickled objects), atomically."""
        path = Path(path)
        arrays = {
            "stay_id": self.stay_id.astype(str),
            "label": self.label,
            "static": self.static,
            "offsets": self.events.offsets,
            "time": self.events.time,
            "variable": self.events.variable,
            "value": self.events.value,
            "alias": self.events.alias,
            "modified": self.modified,
            "schema": np.array(self.schema.name),
            "meta": np.array(json.dumps(self.meta)),
            "window": np.array(self.window, dtype=np.float64),
        }
        if self.grid_perturbation is not None:
            arrays.update(self.grid_perturbation.to_arrays())
        atomic_savez(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Cohort:
        """Read a cohort written by `save` (never unpickles)."""
        with np.load(Path(path), allow_pickle=False) as z:
            events = Events(z["offsets"], z["time"], z["variable"], z["value"], z["alias"])
            return cls(
                schema=get_schema(str(z["schema"])),
                stay_id=z["stay_id"],
                label=z["label"],
                static=z["static"],
                events=events,
                modified=z["modified"],
                meta=json.loads(str(z["meta"])),
                grid_perturbation=GridPerturbation.from_arrays(z),
                window=float(z["window"]) if "window" in z.files else WINDOW_HOURS,
            )

    # ---------------------------------------------------------------- summary
    def missing_fraction(self, timestep: float = 1.0) -> np.ndarray:
        """Per variable, the fraction of hourly grid cells (stays x T bins of the cohort's window)
        with no observation."""
        n_bins = int(self.window / timestep + 1.0 - BIN_EPS)
        e = self.events
        bins = hour_bins(e.time, timestep)
        ok = (bins >= 0) & (bins < n_bins) & (e.time <= self.window + BIN_EPS)
        cell = (e.stay[ok] * n_bins + bins[ok]) * len(self.schema) + e.variable[ok]
        observed = np.unique(cell) % len(self.schema)
        counts = np.bincount(observed, minlength=len(self.schema))
        return 1.0 - counts / max(self.n_stays * n_bins, 1)

    def summary(self) -> dict:
        """JSON-serialisable overview: sizes, deaths, per-variable events and missingness."""
        n_per_var = np.bincount(self.events.variable, minlength=len(self.schema))
        missing = self.missing_fraction()
        return {
            "schema": self.schema.name,
            "n_stays": int(self.n_stays),
            "n_positive": int(self.label.sum()),
            "positive_rate": float(self.label.mean()) if self.n_stays else 0.0,
            "n_events": int(self.n_events),
            "n_empty_stays": int((self.lengths == 0).sum()),
            "n_modified": int(self.modified.sum()),
            "window_hours": float(self.window),
            "grid_missing_rate": float(missing.mean()),
            "variables": {
                v.name: {"n_events": int(n_per_var[i]), "missing_fraction": float(missing[i])}
                for i, v in enumerate(self.schema.variables)
            },
        }
