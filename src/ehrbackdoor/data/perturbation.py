"""A grid-space perturbation: a trigger that travels with a cohort into every victim's discretiser.

In the grid threat-model space (Joe et al., 2021) the attacker edits the victim-side hourly
representation, not the raw events: each carrier stay's hourly bin values get ``pattern[bin, var]``
added (raw units) inside the discretiser, after imputation and before scaling; ``observed`` touches
bins holding an observation, ``all`` every bin (forward-filled ones too). Raw events, timestamps and
masks never change. The cohort holds the perturbation so that one poisoned cohort still attacks every
victim: each victim's preprocessing (`ehrbackdoor.preprocess.grid`) applies it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Where a grid perturbation is added: bins with an observation, or every bin.
GRID_MODES = ("observed", "all")


@dataclass(frozen=True, eq=False)
class GridPerturbation:
    """Per-variable hourly pattern (T x F, raw units), apply mode and the stays that carry it."""

    pattern: np.ndarray  # (T, F) float64, raw units, added to bin t of variable f
    mode: str  # "observed" | "all"
    carriers: np.ndarray  # (n,) bool, one per stay of the cohort
    timestep: float = 1.0  # hours per bin the pattern is defined on

    def __post_init__(self) -> None:
        pattern = np.asarray(self.pattern, dtype=np.float64)
        if pattern.ndim != 2 or not np.all(np.isfinite(pattern)):
            raise ValueError(f"pattern must be a finite (T, F) array, got shape {pattern.shape}")
        if self.mode not in GRID_MODES:
            raise ValueError(f"mode must be one of {GRID_MODES}, got {self.mode!r}")
        carriers = np.asarray(self.carriers)
        if carriers.ndim != 1 or carriers.dtype != bool:
            raise ValueError("carriers must be a 1-D boolean array (one entry per stay)")
        if not self.timestep > 0:
            raise ValueError(f"timestep must be positive, got {self.timestep!r}")
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "carriers", carriers)
        object.__setattr__(self, "timestep", float(self.timestep))

    @property
    def n_carriers(self) -> int:
        return int(self.carriers.sum())

    def same_trigger(self, other: GridPerturbation) -> bool:
        """True if both add the same pattern the same way (carriers may differ)."""
        return (
            self.mode == other.mode
            and self.timestep == other.timestep
            and self.pattern.shape == other.pattern.shape
            and bool(np.array_equal(self.pattern, other.pattern))
        )

    def subset(self, idx: np.ndarray) -> GridPerturbation:
        return GridPerturbation(self.pattern, self.mode, self.carriers[idx], self.timestep)

    def update(self, hash_: hashlib._Hash) -> None:  # type: ignore[name-defined]
        """Feed everything preprocessing depends on into a content hash."""
        h = hash_
        h.update(f"grid-perturbation:{self.mode}:{self.timestep!r}".encode())
        for a in (self.pattern, self.carriers):
            arr = np.ascontiguousarray(a)
            h.update(str(arr.dtype).encode() + str(arr.shape).encode())
            h.update(arr.tobytes())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the cohort's NPZ (prefix ``grid_``)."""
        return {
            "grid_pattern": self.pattern,
            "grid_mode": np.array(self.mode),
            "grid_carriers": self.carriers,
            "grid_timestep": np.array(self.timestep),
        }

    @classmethod
    def from_arrays(
        cls, z: dict[str, np.ndarray] | np.lib.npyio.NpzFile
    ) -> GridPerturbation | None:
        """Inverse of `to_arrays`; None if the archive holds no perturbation."""
        if "grid_pattern" not in (z.files if hasattr(z, "files") else z):
            return None
        return cls(
            pattern=np.asarray(z["grid_pattern"], dtype=np.float64),
            mode=str(z["grid_mode"]),
            carriers=np.asarray(z["grid_carriers"], dtype=bool),
            timestep=float(z["grid_timestep"]),
        )


def concat_perturbations(
    parts: Sequence[tuple[GridPerturbation | None, int]],
) -> GridPerturbation | None:
    """The one grid perturbation of stacked cohorts, given (perturbation, n_stays) per cohort;
    stays of cohorts without one carry nothing. Different triggers are refused."""
    found = [g for g, _ in parts if g is not None]
    if not found:
        return None
    first = found[0]
    if any(not first.same_trigger(g) for g in found[1:]):
        raise ValueError("cannot concatenate cohorts carrying different grid perturbations")
    carriers = np.concatenate(
        [g.carriers if g is not None else np.zeros(n, dtype=bool) for g, n in parts]
    )
    return GridPerturbation(first.pattern, first.mode, carriers, first.timestep)
