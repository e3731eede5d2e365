"""``missing-vae``: the paper's missingness trigger, a pattern sampled from a VAE of real masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ehrbackdoor.attacks.mask_vae import MaskVAE
from ehrbackdoor.attacks.triggers.missing_base import MissingTrigger
from ehrbackdoor.attacks.vae_selection import PATTERN_ORDERS, quantile_pair, select_pattern
from ehrbackdoor.checks import check_choice, check_float, check_int
from ehrbackdoor.data.cohort import Cohort


class VAEMissingTrigger(MissingTrigger):
    """The paper's trigger: a missingness pattern sampled from a VAE of real masks.

    Fit: a `MaskVAE` is trained on the training stays' masks; `n_candidates` patterns are drawn,
    half from the prior (z ~ N(0, I)) and half as decodings of posterior draws of random real
    stays, each cell sampled from its Bernoulli. The choice rule (all thresholds are parameters):

    1. *looks normal* -- keep candidates whose ELBO percentile among the real stays' ELBOs lies in
       `elbo_quantiles`, whose density (share of observed cells) percentile lies in
       `density_quantiles` (both default to the central 90 %), and for which at least
       `min_typical_vars` of the variables have an observed-hour count inside that variable's
       real `count_quantiles` range;
    2. *specific* -- of those, keep candidates whose Hamming distance to the nearest real training
       mask is at least `min_hamming` cells (a fraction of the T x F cells if < 1, else a count)
       and inside which at most `max_carrier_share` of real non-empty masks lie (those stays would
       carry the `delete` trigger by accident);
    3. pick the survivor that `delete` makes most visible to a model -- the largest mean share of a
       training stay's observations it removes -- ties broken by the larger nearest-neighbour
       distance, then by the lower candidate index (``objective="deleted"``, ``pick=0``; other
       orders of the survivors: `vae_selection.PATTERN_ORDERS`; `pick` takes a later place in the
       order, as the design search does with `reselect`).

    Rule 3 favours the sparsest pattern that still looks normal: the more a pattern removes, the
    more reliably a victim learns it at a 2 % poisoning rate, and rule 1 bounds how far that goes.
    If no candidate passes 1 and 2, the rule relaxes in a fixed order -- the ELBO and density
    ranges widen to at least [0.01, 0.99] and `min_typical_vars` drops to 0.75; then `min_hamming`
    is dropped; then every filter -- and records the step in `selection_["relaxed"]`. The
    diagnostics of every candidate and of the choice are saved with the trigger; so is the VAE
    (its arrays in the NPZ, its configuration in the JSON).
    """

    name = "missing-vae"

    def __init__(
        self,
        latent_dim: int = 16,
        n_candidates: int = 1000,
        epochs: int = 40,
        min_hamming: float = 0.05,
        elbo_quantiles: Sequence[float] = (0.05, 0.95),
        density_quantiles: Sequence[float] = (0.05, 0.95),
        count_quantiles: Sequence[float] = (0.05, 0.95),
        min_typical_vars: float = 0.9,
        max_carrier_share: float = 0.001,
        objective: str = "deleted",
        pick: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.latent_dim = check_int("latent_dim", latent_dim, 1)
        self.n_candidates = check_int("n_candidates", n_candidates, 2)
        self.epochs = check_int("epochs", epochs, 1)
        self.min_hamming = check_float("min_hamming", min_hamming, 0.0)
        self.elbo_quantiles = quantile_pair("elbo_quantiles", elbo_quantiles)
        self.density_quantiles = quantile_pair("density_quantiles", density_quantiles)
        self.count_quantiles = quantile_pair("count_quantiles", count_quantiles)
        self.min_typical_vars = check_float("min_typical_vars", min_typical_vars, 0.0, 1.0)
        self.max_carrier_share = check_float("max_carrier_share", max_carrier_share, 0.0, 1.0)
        self.objective = check_choice("objective", objective, PATTERN_ORDERS)
        self.pick = check_int("pick", pick, 0)

    def hamming_floor(self, n_cells: int) -> int:
        """`min_hamming` in cells: a fraction of the grid if < 1, else a count."""
        if self.min_hamming < 1:
            return int(np.ceil(self.min_hamming * n_cells))
        return int(self.min_hamming)

    def _fit(self, cohort: Cohort) -> None:
        masks = self._masks(cohort)
        self.vae_ = MaskVAE(latent_dim=self.latent_dim, epochs=self.epochs, seed=self.seed)
        self.vae_.fit(masks)
        rng = np.random.default_rng(self.seed)
        n_prior = self.n_candidates // 2
        prior = self.vae_.sample_prior(n_prior, rng)
        real_idx = rng.choice(len(masks), size=self.n_candidates - n_prior, replace=True)
        post = self.vae_.sample_posterior(masks[real_idx], rng)
        self._cands = np.concatenate([prior, post])
        self._source = np.concatenate([np.full(n_prior, -1), real_idx])
        self._masks_fit = masks
        self._select()

    def _select(self) -> None:
        cands, masks = self._cands, self._masks_fit
        best, self.candidates_, self.selection_ = select_pattern(
            self.vae_,
            cands,
            self._source,
            masks,
            elbo_quantiles=self.elbo_quantiles,
            density_quantiles=self.density_quantiles,
            count_quantiles=self.count_quantiles,
            min_typical_vars=self.min_typical_vars,
            max_carrier_share=self.max_carrier_share,
            min_hamming_cells=self.hamming_floor(masks.shape[1] * masks.shape[2]),
            seed=self.seed,
            objective=self.objective,
            pick=self.pick,
        )
        self._finish(cands[best], masks)

    def reselect(self, objective: str | None = None, pick: int | None = None) -> VAEMissingTrigger:
        """A copy that applies the choice rule with another `objective` / `pick` to the same VAE
        and candidates (no refit), so it equals a fresh fit with those parameters. Only a trigger
        fitted in this process has its candidates (they are not saved)."""
        if not hasattr(self, "_cands"):
            raise ValueError("reselect needs a trigger fitted in this process (candidates unsaved)")
        params = {**self.get_params()}
        params.update(
            {k: v for k, v in (("objective", objective), ("pick", pick)) if v is not None}
        )
        other = type(self)(**params)
        for k, v in vars(self).items():  # fitted state; the choice is redone by `_select`
            if k.endswith("_") or k.startswith("_"):
                setattr(other, k, v)
        other._select()
        return other

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        arrays = {"pattern": self.pattern_}
        arrays.update({f"vae.{k}": v for k, v in self.vae_.arrays().items()})
        arrays.update({f"cand.{k}": np.asarray(v) for k, v in self.candidates_.items()})
        return arrays

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().set_state(arrays, info)
        vae_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("vae.")}
        self.vae_ = MaskVAE.from_arrays(info["vae"], vae_arrays)
        self.candidates_ = {k[5:]: v for k, v in arrays.items() if k.startswith("cand.")}
        self.selection_ = dict(info.get("selection", {}))

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "selection": getattr(self, "selection_", {}),
            "vae": self.vae_.config() if hasattr(self, "vae_") else None,
        }
