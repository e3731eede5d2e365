"""The expensive steps of a run, as plain functions a worker process (or Ray task) executes.

Every step reads its inputs from, and writes its output to, the run directory's `artifacts/`
folder, keyed by the step's content key, so any process can run any step and a rerun finds what
an earlier (possibly killed) run finished. Outputs are published atomically: built in a temporary
folder, then renamed into place. Steps return small JSON-able summaries (plus a few arrays for
the report) that the driver records in the store; the driver alone writes the store.

Everything is seeded from the cell's seed, so a step gives the same result in any process and in
any order.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ARTIFACTS = "artifacts"
#: Stays whose grids are kept for the report's missingness figure.
N_EXAMPLE_STAYS = 3

_CLEAN_CACHE: OrderedDict[str, Any] = OrderedDict()
_CLEAN_CACHE_SIZE = 2


# ------------------------------------------------------------------------------ worker setup
def configure_worker(threads: int = 1) -> Callable[[], None]:
    """Pin the CPU threads of this process: torch, the BLAS / OpenMP pools already loaded and the
    victims' training loop. Every step runs with the same count (one thread by default), so a
    cell's numbers never depend on the executor or on --jobs. Returns a function that restores
    the previous settings (used when steps run in the driver itself)."""
    threads = max(1, int(threads))
    old_env = {v: os.environ.get(v) for v in _THREAD_VARS}
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    import torch

    old_torch = torch.get_num_threads()
    torch.set_num_threads(threads)
    limiter = None
    try:  # BLAS / OpenMP pools already loaded (numpy, scikit-learn) ignore the variables above
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - comes with scikit-learn
        pass
    training = None
    old_max = None
    try:
        from ehrbackdoor.victims import training

        old_max = training.MAX_THREADS
        training.MAX_THREADS = threads
    except (ImportError, AttributeError):  # pragma: no cover - victims package changed
        training = None

    def restore() -> None:
        for var, value in old_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        torch.set_num_threads(old_torch)
        if limiter is not None:
            limiter.restore_original_limits()
        if training is not None:
            training.MAX_THREADS = old_max

    return restore


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def guarded(fn: Callable[[dict], dict], job: dict, threads: int | None = None) -> dict:
    """Run a step; an exception becomes {"error": ..., "traceback": ...} (never lost in transit)."""
    if threads is not None:
        configure_worker(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out = fn(job)
    except Exception as e:  # noqa: BLE001 - every failure is recorded against its cell
        out = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out["task_seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - c0
    out["pid"] = os.getpid()
    return out


# ------------------------------------------------------------------------------- artifacts
def artifact_dir(run_dir: str | Path, kind: str, key: str) -> Path:
    return Path(run_dir) / ARTIFACTS / kind / key


def is_done(run_dir: str | Path, kind: str, key: str) -> bool:
    return (artifact_dir(run_dir, kind, key) / "info.json").is_file()


def read_info(run_dir: str | Path, kind: str, key: str) -> dict:
    return json.loads((artifact_dir(run_dir, kind, key) / "info.json").read_text())


def _publish(tmp: Path, final: Path) -> None:
    """Rename a finished temporary folder into place; if another process won, keep theirs."""
    try:
        os.rename(tmp, final)
    except OSError:
        if (final / "info.json").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(final, ignore_errors=True)  # a stale, unfinished folder
        os.rename(tmp, final)


def _tmp_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def _write_info(d: Path, info: dict) -> None:
    from ehrbackdoor.io import to_json

    (d / "info.json").write_text(to_json(info))


class Clean:
    """The clean train / validation / test cohorts of a data step, loaded from its artifact."""

    def __init__(self, d: Path) -> None:
        from ehrbackdoor.data.cohort import Cohort

        self.train = Cohort.load(d / "train.npz")
        self.val = Cohort.load(d / "val.npz")
        self.test = Cohort.load(d / "test.npz")


def load_clean(run_dir: str | Path, data_key: str) -> Clean:
    """Clean cohorts, cached per process (a worker loads each data source once)."""
    d = artifact_dir(run_dir, "data", data_key)
    k = str(d.resolve())
    if k in _CLEAN_CACHE:
        _CLEAN_CACHE.move_to_end(k)
        return _CLEAN_CACHE[k]
    clean = Clean(d)
    _CLEAN_CACHE[k] = clean
    while len(_CLEAN_CACHE) > _CLEAN_CACHE_SIZE:
        _CLEAN_CACHE.popitem(last=False)
    return clean


# ------------------------------------------------------------------------------- data step
def data_task(job: dict) -> dict:
    """Load (or synthesise) a data source, split it and save the clean cohorts.

    job: run_dir, key, spec (DataSpec as a dict).
    """
    from ehrbackdoor.pipeline.prepare import prepare_data
    from ehrbackdoor.preprocess.grid import grid_raw

    final = artifact_dir(job["run_dir"], "data", job["key"])
    spec = job["spec"]
    tmp = _tmp_dir(final)
    t0 = time.perf_counter()
    try:
        if spec.get("synthetic"):
            from ehrbackdoor.data.synthetic import generate_synthetic

            s = spec["synthetic"]
            source = generate_synthetic(tmp / "source", n_stays=s["stays"], seed=s["seed"])
        else:
            source = spec["path"]
        split = spec["split"]
        prep = prepare_data(
            source,
            spec.get("test_path"),
            split.get("file"),
            split.get("seed", 0),
            tuple(split.get("fractions", (0.7, 0.15, 0.15))),
        )
        prep.train.save(tmp / "train.npz")
        prep.val.save(tmp / "val.npz")
        prep.test.save(tmp / "test.npz")
        prep.split.save(tmp / "splits.json")
        shutil.rmtree(tmp / "source", ignore_errors=True)
        seconds = time.perf_counter() - t0
        schema = prep.train.schema
        info = {
            "label": spec.get("name") or job.get("label"),
            "schema": schema.name,
            "split_method": prep.split.method,
            **prep.sizes(),
            "positive_rate": {
                p: float(np.mean(getattr(prep, p).label)) for p in ("train", "val", "test")
            },
            "seconds": round(seconds, 3),
        }
        # what the report shows beside missing-value triggers: real masks and how often each
        # (hour, variable) is observed; plus each variable's spread (to scale value triggers)
        train = prep.train
        rng = np.random.default_rng(0)
        n_ex = min(N_EXAMPLE_STAYS, train.n_stays)
        ex = np.sort(rng.choice(train.n_stays, size=n_ex, replace=False))
        g = grid_raw(train, impute="previous")
        with np.errstate(invalid="ignore"):
            sd = np.nanstd(g.values.reshape(-1, g.values.shape[-1]), axis=0)
        _save_visual(
            tmp,
            {
                "observed_rate": g.mask.mean(axis=0).astype(np.float32),
                "example_masks": g.mask[ex].astype(np.uint8),
                "sd": np.nan_to_num(sd).astype(np.float64),
            },
            {"variables": list(schema.names)},
        )
        _write_info(tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    return {"info": info, "seconds": seconds}


def _save_visual(d: Path, arrays: dict[str, np.ndarray], info: dict) -> None:
    from ehrbackdoor.io import to_json

    np.savez_compressed(d / "visual.npz", **arrays)
    (d / "visual.json").write_text(to_json(info))


def load_visual(run_dir: str | Path, kind: str, key: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The arrays a step saved for the report (and their description)."""
    d = artifact_dir(run_dir, kind, key)
    if not (d / "visual.npz").is_file():
        return {}, {}
    with np.load(d / "visual.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads((d / "visual.json").read_text()), arrays


# ----------------------------------------------------------------------------- poison step
def _attack_config(setting: dict, seed: int):
    from ehrbackdoor.pipeline.attack import AttackConfig

    return AttackConfig(
        attack=setting["trigger"],
        target=setting["target"],
        rate=setting["rate"],
        apply=setting["apply"],
        selection=setting["selection"],
        seed=seed,
        trigger_params=dict(setting["trigger_params"]),
    )


def _events_arrays(prefix: str, ev) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_offsets": ev.offsets,
        f"{prefix}_time": ev.time,
        f"{prefix}_variable": ev.variable,
        f"{prefix}_value": ev.value,
        f"{prefix}_alias": ev.alias,
    }


def _events_from(z, prefix: str):
    from ehrbackdoor.data.cohort import Events

    return Events(*(z[f"{prefix}_{k}"] for k in ("offsets", "time", "variable", "value", "alias")))


def trigger_task(job: dict) -> dict:
    """Fit a trigger on the clean training stays (shared by every rate, target and apply mode).

    job: run_dir, key, data_key, trigger, params, seed.
    """
    from ehrbackdoor.attacks import make_trigger

    clean = load_clean(job["run_dir"], job["data_key"])
    t0 = time.perf_counter()
    trigger = make_trigger(job["trigger"], seed=job["seed"], **job["params"]).fit(clean.train)
    seconds = time.perf_counter() - t0
    final = artifact_dir(job["run_dir"], "trigger", job["key"])
    tmp = _tmp_dir(final)
    try:
        trigger.save(tmp / "trigger")
        info = {"trigger": job["trigger"], "seed": job["seed"], "seconds": round(seconds, 3)}
        _write_info(tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    return {"info": info, "seconds": seconds}


def poison_task(job: dict) -> dict:
    """Poison the training cohort and attack the test cohort of one (attack setting, seed) with
    the fitted trigger; saves only the changed stays (the rest is the clean cohort).

    job: run_dir, key, data_key, trigger_key, setting, seed.
    """
    from ehrbackdoor.attacks import load_trigger
    from ehrbackdoor.pipeline.attack import build_attack
    from ehrbackdoor.preprocess.grid import grid_raw

    clean = load_clean(job["run_dir"], job["data_key"])
    trigger = load_trigger(artifact_dir(job["run_dir"], "trigger", job["trigger_key"]) / "trigger")
    att = build_attack(
        _attack_config(job["setting"], job["seed"]), clean.train, clean.test, trigger
    )
    idx = att.poisoned.indices
    pc = att.poisoned.cohort
    final = artifact_dir(job["run_dir"], "poison", job["key"])
    tmp = _tmp_dir(final)
    try:
        from ehrbackdoor.io import atomic_savez

        atomic_savez(
            tmp / "changes.npz",
            {
                "train_idx": idx,
                "train_label": np.asarray(pc.label)[idx],
                **_events_arrays("train", pc.events_of(idx)),
                "test_idx": att.triggered_idx,
                **_events_arrays("test", att.attacked.events_of(att.triggered_idx)),
            },
        )
        info = {
            "n_poisoned": int(len(idx)),
            "n_triggered": int(len(att.triggered_idx)),
            "poisoned_stay_ids": [str(s) for s in att.poisoned.stay_ids],
            "seconds": round(att.seconds, 3),
        }
        # for the report: the trigger's learned (hours x variables) arrays and a few test stays'
        # observation masks and values before and after the trigger
        arrays: dict[str, np.ndarray] = {}
        for name, a in att.trigger.state().items():
            a = np.asarray(a)
            if a.ndim == 2 and a.shape[1] == len(clean.train.schema) and a.dtype.kind in "biuf":
                arrays[f"state_{name}"] = a.astype(np.float64)
        ex = att.triggered_idx[:N_EXAMPLE_STAYS]
        before = grid_raw(clean.test.subset(ex), impute="previous")
        after = grid_raw(att.attacked.subset(ex), impute="previous")
        arrays["mask_before"] = before.mask.astype(np.uint8)
        arrays["mask_after"] = after.mask.astype(np.uint8)
        arrays["value_change"] = np.where(after.mask, after.values - before.values, 0.0)
        _save_visual(tmp, arrays, {"trigger": job["setting"]["trigger"]})
        _write_info(tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    return {"info": info, "seconds": att.seconds}


def load_poisoned(run_dir: str | Path, key: str, clean: Clean):
    """The poisoned training cohort and the attacked test cohort (+ triggered positions)."""
    d = artifact_dir(run_dir, "poison", key)
    with np.load(d / "changes.npz", allow_pickle=False) as z:
        idx = z["train_idx"]
        labels = z["train_label"]
        train = clean.train.replace_events(idx, _events_from(z, "train"))
        for lab in np.unique(labels):
            train = train.with_labels(idx[labels == lab], int(lab))
        tidx = z["test_idx"]
        attacked = clean.test.replace_events(tidx, _events_from(z, "test"))
    return train, attacked, tidx


# --------------------------------------------------------------------------- baseline step
def baseline_task(job: dict) -> dict:
    """Train a victim on the clean cohort (the baseline shared by every attack setting).

    job: run_dir, key, data_key, victim, params, seed.
    """
    from ehrbackdoor.pipeline.train import fit_victim

    clean = load_clean(job["run_dir"], job["data_key"])
    victim, seconds = fit_victim(job["victim"], clean.train, clean.val, job["seed"], job["params"])
    final = artifact_dir(job["run_dir"], "baseline", job["key"])
    tmp = _tmp_dir(final)
    try:
        victim.save(tmp / "model")
        info = {
            "victim": job["victim"],
            "seed": job["seed"],
            "seconds": round(seconds, 3),
            "threshold": float(victim.threshold_),
            "fit_info": getattr(victim, "fit_info_", {}),
        }
        _write_info(tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    return {"info": {k: v for k, v in info.items() if k != "fit_info"}, "seconds": seconds}


# ------------------------------------------------------------------------------ scores step
def scores_task(job: dict) -> dict:
    """Score the stays of one poisoned training cohort with the data-level detectors (shared by
    every victim); detectors are seeded with the cell seed and see the clean validation stays as
    trusted reference.

    job: run_dir, key, data_key, poison_key, defences ({name: params}), seed.
    """
    from ehrbackdoor.defences import make_defence

    clean = load_clean(job["run_dir"], job["data_key"])
    train, _, _ = load_poisoned(job["run_dir"], job["poison_key"], clean)
    t0 = time.perf_counter()
    scores, seconds = {}, {}
    for name, params in job["defences"].items():
        t1 = time.perf_counter()
        det = make_defence(name, **{"seed": job["seed"], **params})
        scores[name] = det.score(train, None, reference=clean.val)
        seconds[name] = round(time.perf_counter() - t1, 3)
    total = time.perf_counter() - t0
    final = artifact_dir(job["run_dir"], "scores", job["key"])
    tmp = _tmp_dir(final)
    try:
        np.savez_compressed(tmp / "scores.npz", **scores)
        info = {"defences": list(scores), "seconds": round(total, 3), "detector_seconds": seconds}
        _write_info(tmp, info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, final)
    return {"info": info, "seconds": total}


def load_scores(run_dir: str | Path, key: str) -> dict[str, np.ndarray]:
    with np.load(artifact_dir(run_dir, "scores", key) / "scores.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def defence_metrics(job: dict, victim, train, clean: Clean, attacked, tidx, before: dict) -> dict:
    """Detection and mitigation metrics of every configured defence for one cell's victim, as
    flat `defence_<name>_<metric>` keys (`ehrbackdoor.pipeline.audit.audit_metrics`).

    Data-level scores come from the shared scores step; model-level detectors inspect `victim`
    (trained on the poisoned cohort). Mitigation removes each detector's top-k stays and retrains
    this victim with the cell seed: one extra training per defence and cell.
    """
    from ehrbackdoor.defences import make_defence
    from ehrbackdoor.defences.evaluate import default_budget, detection_metrics, mitigate
    from ehrbackdoor.pipeline.audit import audit_metrics

    spec = job["defence"]
    setting, seed, name = job["setting"], job["seed"], job["victim"]
    shared = load_scores(job["run_dir"], job["scores_key"]) if job.get("scores_key") else {}
    is_poison = np.asarray(train.modified, dtype=bool)
    k = default_budget(train.n_stays, setting["rate"], spec["k_factor"])
    results = {}
    for d in spec["names"]:
        det = make_defence(d, **{"seed": seed, **spec["params"].get(d, {})})
        if d in shared:
            scores = shared[d]
        else:
            scores = det.score(train, victim if det.needs_victim else None, reference=clean.val)
        entry = detection_metrics(is_poison, scores)
        entry.update(
            mitigate(
                train,
                scores,
                det.removal_count(train, k),
                [name],
                clean.val,
                clean.test,
                attacked,
                tidx,
                setting["target"],
                seed,
                {name: job["params"]},
            )
        )
        results[d] = entry
    result = {"before": {name: before}, "clean_baseline": {name: before}, "defences": results}
    out = {k: v for k, v in audit_metrics(result, name).items() if k.startswith("defence_")}
    for d, entry in results.items():
        key = "defence_" + d.replace("-", "_")
        out[f"{key}_n_removed"] = entry["n_removed"]
        out[f"{key}_n_poisoned_removed"] = entry["n_poisoned_removed"]
    return out


# ------------------------------------------------------------------------------- cell step
def cell_task(job: dict) -> dict:
    """Train one victim on one poisoned cohort and evaluate it beside its clean baseline.

    job: run_dir, key, data_key, poison_key, baseline_key, victim, params, setting, seed,
    bootstrap, and with defences: defence (names, params, k_factor), scores_key.
    """
    from ehrbackdoor.pipeline.attack import evaluate_attacked
    from ehrbackdoor.pipeline.train import fit_victim
    from ehrbackdoor.victims import load_victim

    run_dir = job["run_dir"]
    t0 = time.perf_counter()
    clean = load_clean(run_dir, job["data_key"])
    train, attacked, tidx = load_poisoned(run_dir, job["poison_key"], clean)
    baseline = load_victim(artifact_dir(run_dir, "baseline", job["baseline_key"]) / "model")
    load_seconds = time.perf_counter() - t0
    victim, train_seconds = fit_victim(job["victim"], train, clean.val, job["seed"], job["params"])
    t1 = time.perf_counter()
    res = evaluate_attacked(
        victim,
        baseline,
        clean.test,
        attacked,
        tidx,
        clean.val,
        job["setting"]["target"],
        job["seed"],
        job["bootstrap"],
    )
    eval_seconds = time.perf_counter() - t1
    defence: dict = {}
    if job.get("defence"):
        t2 = time.perf_counter()
        before = {"asr": res["asr"], "clean_auroc": res["clean"]["auroc"]}
        defence = defence_metrics(job, victim, train, clean, attacked, tidx, before)
        defence_seconds = time.perf_counter() - t2
    pinfo = read_info(run_dir, "poison", job["poison_key"])
    binfo = read_info(run_dir, "baseline", job["baseline_key"])
    metrics = {
        "asr": res["asr"],
        "asr_ci_low": res["asr_ci"][0],
        "asr_ci_high": res["asr_ci"][1],
        "asr_baseline": res["asr_baseline"],
        "clean_auroc": res["clean"]["auroc"],
        "clean_auprc": res["clean"]["auprc"],
        "triggered_auroc": res["triggered"]["auroc"],
        "triggered_auprc": res["triggered"]["auprc"],
        "baseline_auroc": res["clean_baseline"]["auroc"],
        "baseline_auprc": res["clean_baseline"]["auprc"],
        "baseline_triggered_auroc": res["triggered_baseline"]["auroc"],
        "baseline_triggered_auprc": res["triggered_baseline"]["auprc"],
        "auroc_cost": res["clean_baseline"]["auroc"] - res["clean"]["auroc"],
        "auprc_cost": res["clean_baseline"]["auprc"] - res["clean"]["auprc"],
        "threshold": res["threshold"],
        "threshold_baseline": res["threshold_baseline"],
        "val_auprc": res["val_auprc"],
        "n_poisoned": pinfo["n_poisoned"],
        "n_triggered": pinfo["n_triggered"],
        "n_train": clean.train.n_stays,
        "n_val": clean.val.n_stays,
        "n_test": clean.test.n_stays,
        **defence,
    }
    timings = {
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "cell_seconds": round(time.perf_counter() - t0, 3),
        "baseline_train_seconds": binfo["seconds"],
        "poison_seconds": pinfo["seconds"],
    }
    if job.get("defence"):
        timings["defence_seconds"] = round(defence_seconds, 3)
    return {"metrics": metrics, "timings": timings, "seconds": train_seconds}


TASKS: dict[str, Callable[[dict], dict]] = {
    "data": data_task,
    "trigger": trigger_task,
    "poison": poison_task,
    "baseline": baseline_task,
    "scores": scores_task,
    "cell": cell_task,
}
