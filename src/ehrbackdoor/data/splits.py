"""Train/validation/test splits: seeded, label-stratified, saved as stay-id lists and reused.

A split is identified by stay ids, not positions, so it survives re-reading the data in another
order and can be shared with others (`splits.json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.io import atomic_write_text

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Stay ids of each part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int | None = None
    method: str = "stratified"

    def sizes(self) -> dict[str, int]:
        return {p: len(getattr(self, p)) for p in PARTS}

    def apply(self, cohort: Cohort) -> dict[str, Cohort]:
        """The three sub-cohorts; raises if an id of the split is not in the cohort."""
        return {p: cohort.subset(cohort.indices_of(getattr(self, p))) for p in PARTS}

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "seed": self.seed,
            **{p: [str(x) for x in getattr(self, p)] for p in PARTS},
        }

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Split:
        d = json.loads(Path(path).read_text())
        missing = [p for p in PARTS if p not in d]
        if missing:
            raise ValueError(f"{path}: split file lacks {missing}; expected keys {list(PARTS)}")
        parts = {p: np.asarray(d[p], dtype=str) for p in PARTS}
        all_ids = np.concatenate(list(parts.values()))
        if len(np.unique(all_ids)) != len(all_ids):
            raise ValueError(f"{path}: a stay id appears in more than one part of the split")
        return cls(**parts, seed=d.get("seed"), method=d.get("method", "stratified"))


def stratified_split(
    cohort: Cohort, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0
) -> Split:
    """Seeded split preserving the positive rate in every part.

    Within each label the stays are shuffled with `numpy.random.default_rng(seed)` and cut at the
    cumulative fractions (rounded), so the same cohort and seed always give the same split.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {p: [] for p in PARTS}
    for cls_ in (0, 1):
        idx = np.flatnonzero(cohort.label == cls_)
        idx = idx[rng.permutation(len(idx))]
        cuts = np.round(np.cumsum(f)[:2] * len(idx)).astype(int)
        for p, chunk in zip(PARTS, np.split(idx, cuts), strict=True):
            parts[p].append(chunk)
    ids = {p: cohort.stay_id[np.sort(np.concatenate(parts[p]))] for p in PARTS}
    return Split(**ids, seed=seed, method="stratified")


def split_from_meta(cohort: Cohort) -> Split | None:
    """The split a source ships with (MIMIC-III benchmark listfiles), if any."""
    s = cohort.meta.get("split")
    if not s:
        return None
    return Split(*(np.asarray(s.get(p, []), dtype=str) for p in PARTS), method="official")
