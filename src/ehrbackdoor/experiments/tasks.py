"""The expensive steps of a run, as plain functions a worker process (or Ray task) executes.

Each step takes a `Job` (the typed plan step and the run directory), reads its inputs from, and
writes its output to, the run directory's `artifacts/` folder keyed by the step's content key
(`artifacts.publish`), so any process can run any step and a rerun finds what an earlier
(possibly killed) run finished. Steps return small JSON-able summaries that the driver records in
the store; the driver alone writes the store. The science is `ehrbackdoor.pipeline.cell`, shared
with `ehrbackdoor attack` and `ehrbackdoor audit`.

Everything is seeded from the cell's seed, so a step gives the same result in any process and in
any order.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

import numpy as np

from ehrbackdoor.experiments.artifacts import (
    ARTIFACTS,
    FIDELITY_FILE,
    Clean,
    artifact_dir,
    events_arrays,
    grid_arrays,
    is_done,
    load_clean,
    load_fidelity,
    load_poisoned,
    load_scores,
    load_visual,
    publish,
    read_info,
    save_visual,
)
from ehrbackdoor.experiments.plan import (
    BaselineStep,
    Cell,
    DataStep,
    Job,
    PoisonStep,
    ScoreStep,
    TriggerStep,
)
from ehrbackdoor.experiments.visuals import N_EXAMPLE_STAYS, data_visual, poison_visual
from ehrbackdoor.experiments.worker import configure_worker, guarded

__all__ = [
    "ARTIFACTS",
    "FIDELITY_FILE",
    "N_EXAMPLE_STAYS",
    "TASKS",
    "Clean",
    "artifact_dir",
    "configure_worker",
    "guarded",
    "is_done",
    "load_clean",
    "load_fidelity",
    "load_poisoned",
    "load_scores",
    "load_visual",
    "read_info",
    "run_job",
]


def data_task(job: Job) -> dict:
    """Load (or synthesise) a data source, split it and save the clean cohorts."""
    from ehrbackdoor.pipeline.prepare import prepare_data

    step: DataStep = job.step
    spec = step.spec.model_dump()
    info: dict = {}
    t0 = time.perf_counter()
    with publish(job.run_dir, "data", step.key, info) as tmp:
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
        info.update(
            {
                "label": spec.get("name") or step.label,
                "schema": prep.train.schema.name,
                "split_method": prep.split.method,
                **prep.sizes(),
                "positive_rate": {
                    p: float(np.mean(getattr(prep, p).label)) for p in ("train", "val", "test")
                },
                "seconds": round(seconds, 3),
            }
        )
        save_visual(tmp, *data_visual(prep.train))
    return {"info": info, "seconds": seconds}


def trigger_task(job: Job) -> dict:
    """Fit a trigger on the clean training stays (shared by every rate, target and apply mode)."""
    from ehrbackdoor.attacks import make_trigger

    step: TriggerStep = job.step
    clean = load_clean(job.run_dir, step.data_key)
    t0 = time.perf_counter()
    trigger = make_trigger(step.trigger, seed=step.seed, **step.params).fit(clean.train)
    seconds = time.perf_counter() - t0
    info = {"trigger": step.trigger, "seed": step.seed, "seconds": round(seconds, 3)}
    with publish(job.run_dir, "trigger", step.key, info) as tmp:
        trigger.save(tmp / "trigger")
    return {"info": info, "seconds": seconds}


def poison_task(job: Job) -> dict:
    """Poison the training cohort and attack the test cohort of one (attack setting, seed) with
    the fitted trigger; saves only the changed stays (the rest is the clean cohort). The trigger's
    fidelity on the poisoned stays is measured here, once per setting: the per-variable report in
    ``fidelity.json``, its summary in the step's info (every cell's ``fidelity_*`` columns)."""
    from ehrbackdoor.attacks import load_trigger
    from ehrbackdoor.io import atomic_savez, atomic_write_json
    from ehrbackdoor.pipeline import cell
    from ehrbackdoor.pipeline.fidelity import fidelity_entries

    step: PoisonStep = job.step
    clean = load_clean(job.run_dir, step.data_key)
    trigger = load_trigger(artifact_dir(job.run_dir, "trigger", step.trigger_key) / "trigger")
    att = cell.build_attack(step.attack_config, clean.train, clean.test, trigger)
    idx = att.poisoned.indices
    pc = att.poisoned.cohort
    config = step.attack_config
    fidelity = fidelity_entries(att.trigger, clean.train, att.poisoned, config.space, config.apply)
    info = {
        "n_poisoned": int(len(idx)),
        "n_triggered": int(len(att.triggered_idx)),
        "poisoned_stay_ids": [str(s) for s in att.poisoned.stay_ids],
        "seconds": round(att.seconds, 3),
        "fidelity": fidelity["trigger_fidelity_summary"],
    }
    with publish(job.run_dir, "poison", step.key, info) as tmp:
        atomic_write_json(tmp / FIDELITY_FILE, fidelity)
        atomic_savez(
            tmp / "changes.npz",
            {
                "train_idx": idx,
                "train_label": np.asarray(pc.label)[idx],
                **events_arrays("train", pc.events_of(idx)),
                "test_idx": att.triggered_idx,
                **events_arrays("test", att.attacked.events_of(att.triggered_idx)),
                **grid_arrays("train", pc),
                **grid_arrays("test", att.attacked),
            },
        )
        arrays = poison_visual(att.trigger, clean.test, att.attacked, att.triggered_idx)
        save_visual(tmp, arrays, {"trigger": step.setting["trigger"]})
    return {"info": info, "seconds": att.seconds}


def _trigger(run_dir: str, key: str | None):
    from ehrbackdoor.attacks import load_trigger

    return None if key is None else load_trigger(artifact_dir(run_dir, "trigger", key) / "trigger")


def baseline_task(job: Job) -> dict:
    """Train a victim on the clean cohort (the baseline shared by every attack setting), selected
    by the cells' protocol (`ehrbackdoor.pipeline.protocols.selection_for`)."""
    from ehrbackdoor.attacks import ThreatModel
    from ehrbackdoor.pipeline.protocols import selection_for
    from ehrbackdoor.victims import fit

    step: BaselineStep = job.step
    clean = load_clean(job.run_dir, step.data_key)
    threat = step.attack_config.threat() if step.setting else ThreatModel()
    selection = selection_for(
        step.protocol, step.victim, clean.val, _trigger(job.run_dir, step.trigger_key), threat
    )
    victim, seconds = fit.fit_victim(
        step.victim, clean.train, clean.val, step.seed, step.params, selection=selection
    )
    info = {
        "victim": step.victim,
        "seed": step.seed,
        "seconds": round(seconds, 3),
        "threshold": float(victim.threshold_),
        "fit_info": getattr(victim, "fit_info_", {}),
    }
    with publish(job.run_dir, "baseline", step.key, info) as tmp:
        victim.save(tmp / "model")
    return {"info": {k: v for k, v in info.items() if k != "fit_info"}, "seconds": seconds}


def scores_task(job: Job) -> dict:
    """Score the stays of one poisoned training cohort with the data-level detectors (shared by
    every victim); detectors are seeded with the cell seed and see the clean validation stays as
    trusted reference."""
    from ehrbackdoor.defences import make_defence
    from ehrbackdoor.pipeline.defend import NO_TRIGGER, without_trigger

    step: ScoreStep = job.step
    clean = load_clean(job.run_dir, step.data_key)
    train, _, _, idx = load_poisoned(job.run_dir, step.poison_key, clean)
    bare = without_trigger(clean.train, train, idx) if step.baseline else None
    t0 = time.perf_counter()
    scores, seconds = {}, {}
    for name, params in step.defences.items():
        t1 = time.perf_counter()
        det = make_defence(name, **{"seed": step.seed, **params})
        scores[name] = det.score(train, None, reference=clean.val)
        if bare is not None:
            scores[name + NO_TRIGGER] = det.score(bare, None, reference=clean.val)
        seconds[name] = round(time.perf_counter() - t1, 3)
    total = time.perf_counter() - t0
    info = {
        "defences": list(step.defences),
        "seconds": round(total, 3),
        "detector_seconds": seconds,
    }
    with publish(job.run_dir, "scores", step.key, info) as tmp:
        np.savez_compressed(tmp / "scores.npz", **scores)
    return {"info": info, "seconds": total}


def cell_task(job: Job) -> dict:
    """Train one victim on one poisoned cohort and evaluate it beside its clean baseline (and,
    with defences, defend it): `ehrbackdoor.pipeline.cell.run_cell` on the shared steps'
    outputs. Model-level detectors inspect this cell's victim; mitigation retrains it once per
    defence."""
    from ehrbackdoor.attacks import Poisoned
    from ehrbackdoor.pipeline.cell import AttackData, defence_columns, metric_columns, run_cell
    from ehrbackdoor.pipeline.fidelity import fidelity_columns
    from ehrbackdoor.pipeline.protocols import needs_triggered_val
    from ehrbackdoor.victims import load_victim

    c: Cell = job.step
    run_dir = job.run_dir
    t0 = time.perf_counter()
    clean = load_clean(run_dir, c.data_key)
    train, attacked, tidx, idx = load_poisoned(run_dir, c.poison_key, clean)
    baseline = load_victim(artifact_dir(run_dir, "baseline", c.baseline_key) / "model")
    shared = load_scores(run_dir, c.scores_key) if c.scores_key else None
    load_seconds = time.perf_counter() - t0
    config = c.attack_config
    trigger = None
    if needs_triggered_val(config.protocol, c.victim):  # the paper rule reads triggered val stays
        trigger = _trigger(run_dir, c.trigger_key)
    att = AttackData(trigger, Poisoned(train, idx, train.stay_id[idx]), attacked, tidx, 0.0)
    _, res = run_cell(
        config,
        clean.train,
        clean.val,
        clean.test,
        att,
        [c.victim],
        victim_params={c.victim: c.victim_params},
        baselines={c.victim: baseline},
        n_bootstrap=c.bootstrap,
        defence=c.defence_spec,
        inspect=c.victim,
        shared_scores=shared,
        victim_preset=c.victim_preset,
    )
    v = res.victims[c.victim]
    pinfo = read_info(run_dir, "poison", c.poison_key)
    binfo = read_info(run_dir, "baseline", c.baseline_key)
    metrics = {
        **metric_columns(v.metrics),
        "n_poisoned": pinfo["n_poisoned"],
        "n_triggered": pinfo["n_triggered"],
        "n_train": clean.train.n_stays,
        "n_val": clean.val.n_stays,
        "n_test": clean.test.n_stays,
        **fidelity_columns(pinfo.get("fidelity")),  # shared by the setting's cells
    }
    if c.defence is not None:
        metrics.update(defence_columns(res.defences, c.victim))
        for d, entry in res.defences.items():
            key = "defence_" + d.replace("-", "_")
            for count in ("n_removed", "n_poisoned_removed"):  # only with mitigation
                if count in entry:
                    metrics[f"{key}_{count}"] = entry[count]
    timings = {
        "train_seconds": round(v.train_seconds, 3),
        "eval_seconds": round(res.eval_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "cell_seconds": round(time.perf_counter() - t0, 3),
        "baseline_train_seconds": binfo["seconds"],
        "poison_seconds": pinfo["seconds"],
    }
    if c.defence is not None:
        timings["defence_seconds"] = round(res.defence_seconds, 3)
    # the cell's result beside the artifacts: the store can be rebuilt from these
    with publish(run_dir, "cell", c.key, {"metrics": metrics, "timings": timings}):
        pass
    return {"metrics": metrics, "timings": timings, "seconds": v.train_seconds}


TASKS: dict[type, Callable[[Job], dict]] = {
    DataStep: data_task,
    TriggerStep: trigger_task,
    PoisonStep: poison_task,
    BaselineStep: baseline_task,
    ScoreStep: scores_task,
    Cell: cell_task,
}


def run_job(job: Job) -> dict:
    """Run the step of `job` (the function its step type names)."""
    return TASKS[type(job.step)](job)
