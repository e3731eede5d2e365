"""Train one victim on clean data and evaluate it: `ehrbackdoor train`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ehrbackdoor import metrics
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.io import atomic_write_json
from ehrbackdoor.pipeline.prepare import prepare_data
from ehrbackdoor.victims.fit import ProgressFn, fit_victim

__all__ = ["evaluate_victim", "fit_victim", "train_victim"]


def evaluate_victim(
    victim, test: Cohort, n_bootstrap: int = 10_000, seed: int = 0
) -> dict[str, float | list[float]]:
    """Test metrics at the victim's clean-validation threshold, with bootstrap CIs."""
    p = victim.predict_proba(test)
    return metrics.summarize(
        test.label.astype(np.int64), p, victim.threshold_, n_resamples=n_bootstrap, seed=seed
    )


def train_victim(
    data: str | Path,
    model: str,
    seed: int = 0,
    out: str | Path | None = None,
    test_data: str | Path | None = None,
    split_file: str | Path | None = None,
    split_seed: int = 0,
    n_bootstrap: int = 10_000,
    params: dict | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Train `model` on a data source and return (and write to `out/metrics.json`) its metrics.

    `out` also receives the saved model (`out/model/`) and the split (`out/splits.json`).
    """
    prep = prepare_data(data, test_data, split_file, split_seed)
    victim, seconds = fit_victim(model, prep.train, prep.val, seed, params, progress)
    p_val = victim.predict_proba(prep.val)
    y_val = prep.val.label.astype(np.int64)
    result = {
        "model": model,
        "seed": seed,
        "data": str(data),
        "test_data": str(test_data) if test_data else None,
        **prep.sizes(),
        "threshold": float(victim.threshold_),
        "train_seconds": round(seconds, 3),
        "params": victim.get_params(),
        "val": {"auroc": metrics.auroc(y_val, p_val), "auprc": metrics.auprc(y_val, p_val)},
        "test": evaluate_victim(victim, prep.test, n_bootstrap, seed),
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        prep.split.save(out / "splits.json")
        victim.save(out / "model")
        atomic_write_json(out / "metrics.json", result)
    return result
