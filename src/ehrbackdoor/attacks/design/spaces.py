"""What a design search may choose among: one space per trigger family, each under the budget and
plausibility rules of that family's trigger.

A space yields candidates fitted on the surrogate's training stays (the attacker's own) and
turns the chosen candidate into the trigger the attacker deploys (`final`). Spaces never see the
victim's stays: the search hands them the attacker's cohort only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ehrbackdoor.attacks.triggers import make_trigger
from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.attacks.triggers.missing_vae import VAEMissingTrigger
from ehrbackdoor.attacks.vae_selection import PATTERN_ORDERS
from ehrbackdoor.checks import check_float, check_int
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.preprocess.grid import grid_raw

Candidate = tuple[dict[str, Any], Trigger]  # (JSON-able description, fitted trigger)


def dense_variables(cohort: Cohort, min_share: float = 0.25) -> list[str]:
    """Continuous/ordinal variables recorded in at least `min_share` of the window's hours on
    average over the stays that record them at all (vitals charted hourly: they carry a pattern)."""
    mask = grid_raw(cohort, impute="none").mask
    hours = mask.sum(axis=1)  # (n, F)
    n_hours = max(mask.shape[1], 1)
    out = []
    for j, v in enumerate(cohort.schema.variables):
        rec = hours[:, j] > 0
        if v.kind.value != "binary" and rec.any() and hours[rec, j].mean() / n_hours >= min_share:
            out.append(v.name)
    return out


def _subset_size(vset: str) -> int | None:
    """None for "all" / "dense", K for "dense-K", 0 for anything else (invalid)."""
    if vset in ("all", "dense"):
        return None
    head, _, k = vset.partition("-")
    return int(k) if head == "dense" and k.isdigit() and int(k) >= 1 else 0


def _draw_seeds(seed: int, n: int) -> list[int]:
    return [int(s) for s in np.random.default_rng(seed).integers(0, 2**31 - 1, n)]


@dataclass(frozen=True)
class TemporalSpace:
    """Temporal-covariance candidates: every (rank, variable set) pair with `n_draws` covariance
    draws each, all at Mahalanobis distance `strength` per variable (the budget).

    `ranks`: eigen-shapes per variable (None = the full draw over the window's hours). `variable_sets`:
    "all" (every non-binary variable), "dense" (`dense_variables` of the attacker's data) and/or
    "dense-K" (a seeded random K of the dense variables per draw: fewer carriers, less for a
    detector to see); a dense set is skipped when no variable reaches `dense_share` of the hours,
    and a dense-K set when K covers every dense variable (it would repeat "dense").
    `params`: fixed temporal parameters (e.g. ``transform``, ``bounds``; not the searched
    ``strength``, ``rank``, ``seed``, ``variables``). The chosen candidate is
    refit on the whole attacker cohort (its covariances come from the attacker's stays).
    """

    family: ClassVar[str] = "value"
    strength: float = 2.0
    ranks: tuple[int | None, ...] = (1, 2, 3, None)
    variable_sets: tuple[str, ...] = ("all", "dense")
    n_draws: int = 4
    dense_share: float = 0.25
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_float("dense_share", self.dense_share, 0.0, 1.0)
        check_float("strength", self.strength, 0.0, low_open=True)
        check_int("n_draws", self.n_draws, 1)
        for r in self.ranks:
            if r is not None:
                check_int("ranks", r, 1)
        if not self.ranks:
            raise ValueError("ranks must name at least one rank (None = the full draw)")
        clash = sorted(set(self.params) & {"strength", "rank", "seed", "variables"})
        if clash:
            raise ValueError(f"params must not set the searched parameters {clash}")
        bad = [s for s in self.variable_sets if _subset_size(s) == 0]
        if bad or not self.variable_sets:
            raise ValueError(
                f"variable_sets must be 'all', 'dense' or 'dense-K' (K >= 1), got {bad}"
            )

    def candidates(self, train: Cohort, seed: int) -> Iterator[Candidate]:
        dense = dense_variables(train, self.dense_share) if self.variable_sets != ("all",) else []
        for vset in self.variable_sets:
            if vset != "all" and not dense:
                continue  # nothing is densely charted: "all" already covers it
            k = _subset_size(vset)
            if k is not None and k >= len(dense):
                continue  # every dense variable: the "dense" set itself
            for rank in self.ranks:
                for ds in _draw_seeds(seed, self.n_draws):
                    variables = None if vset == "all" else dense
                    if k is not None:
                        pick = np.random.default_rng(ds).choice(len(dense), k, replace=False)
                        variables = [dense[i] for i in np.sort(pick)]
                    params = {
                        **self.params,
                        "strength": self.strength,
                        "rank": rank,
                        "seed": ds,
                        "variables": variables,
                    }
                    trig = make_trigger("temporal", **params).fit(train)
                    yield {"variable_set": vset, "params": params}, trig

    def final(
        self, attacker: Cohort, params: dict[str, Any], scored: Trigger, scored_on: Cohort
    ) -> tuple[Trigger, Cohort]:
        """The deployed trigger and the stays it is fitted on: refit on the whole attacker."""
        return make_trigger("temporal", **params).fit(attacker), attacker


@dataclass(frozen=True)
class MissingSpace:
    """Missing-value-pattern candidates: the ``missing-vae`` trigger's looks-normal, specific
    survivors, ordered by each of `objectives` (`vae_selection.PATTERN_ORDERS`) and taken at each of
    `picks` places, for `n_fits` VAE fits (seeds drawn from the search seed).

    The stealth rules (ELBO, density and per-variable count ranges, Hamming distance, carrier
    share) are the trigger's own; the search only trades which looks-normal pattern is most
    learnable. When no sampled pattern passes them the trigger relaxes them in its documented
    order, and the candidate records how far (`relaxed`, "none" when every rule held). Every objective and place of one fit reuses that fit
    (`VAEMissingTrigger.reselect`). Patterns already tried are skipped. The chosen pattern is
    kept as scored (fitted on the attacker's surrogate-training stays): refitting the VAE on more
    stays would draw other patterns.
    """

    family: ClassVar[str] = "missing"
    objectives: tuple[str, ...] = PATTERN_ORDERS
    picks: tuple[int, ...] = (0, 1, 2)
    n_fits: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int("n_fits", self.n_fits, 1)
        bad = [o for o in self.objectives if o not in PATTERN_ORDERS]
        if bad or not self.objectives:
            raise ValueError(f"objectives must be among {PATTERN_ORDERS}, got {bad}")
        if not self.picks or any(int(p) < 0 for p in self.picks):
            raise ValueError(f"picks must be places >= 0, got {self.picks}")

    def candidates(self, train: Cohort, seed: int) -> Iterator[Candidate]:
        for ds in _draw_seeds(seed, self.n_fits):
            base: VAEMissingTrigger = make_trigger("missing-vae", **{**self.params, "seed": ds})
            base.fit(train)
            seen: set[int] = set()
            for objective in self.objectives:
                for pick in self.picks:
                    trig = base.reselect(objective=objective, pick=int(pick))
                    chosen = int(trig.selection_["chosen_index"])
                    if chosen in seen:
                        continue
                    seen.add(chosen)
                    params = {**self.params, "seed": ds, "objective": objective, "pick": int(pick)}
                    desc = {
                        "variable_set": None,
                        "params": params,
                        "pattern_index": chosen,
                        "place": int(trig.selection_["place"]),
                        "relaxed": trig.selection_["relaxed"],
                    }
                    yield desc, trig

    def final(
        self, attacker: Cohort, params: dict[str, Any], scored: Trigger, scored_on: Cohort
    ) -> tuple[Trigger, Cohort]:
        """The deployed trigger and the stays it is fitted on: the scored one, as it is."""
        return scored, scored_on
