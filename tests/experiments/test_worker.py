"""Worker setup: the thread count reaches the victims' training loop and is restored; plan steps
travel to workers as typed, picklable jobs."""

from __future__ import annotations

import os
import pickle

from ehrbackdoor.experiments.config import config_from_dict
from ehrbackdoor.experiments.plan import Job, expand
from ehrbackdoor.experiments.tasks import TASKS, run_job
from ehrbackdoor.experiments.worker import configure_worker
from ehrbackdoor.victims import training
from tests.experiments.conftest import tiny_doc


def test_configure_worker_sets_and_restores_the_training_threads(monkeypatch):
    monkeypatch.setenv(training.THREADS_ENV, "2")
    restore = configure_worker(1)
    try:
        assert training.n_threads() == 1
    finally:
        restore()
    assert os.environ[training.THREADS_ENV] == "2"

    monkeypatch.delenv(training.THREADS_ENV)
    restore = configure_worker(1)
    restore()
    assert training.THREADS_ENV not in os.environ


def test_every_step_is_a_typed_picklable_job(tmp_path):
    plan = expand(config_from_dict(tiny_doc(defences=["range-check", "strip"]), tmp_path))
    steps = [
        *plan.data.values(),
        *plan.triggers.values(),
        *plan.poison.values(),
        *plan.baselines.values(),
        *plan.scores.values(),
        *plan.cells,
    ]
    kinds = set()
    for step in steps:
        job = Job(str(tmp_path), step)
        back = pickle.loads(pickle.dumps(job))
        assert back == job and type(back.step) in TASKS
        kinds.add(back.kind)
    assert kinds == {"data", "trigger", "poison", "baseline", "scores", "cell"}
    assert callable(run_job)
    cell = plan.cells[0]
    ac = cell.attack_config
    assert (ac.attack, ac.rate, ac.seed) == (
        cell.setting["trigger"],
        cell.setting["rate"],
        cell.seed,
    )
