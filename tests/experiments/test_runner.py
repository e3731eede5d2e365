"""The runner: grid expansion into cells, shared steps counted, resume, failures, config changes."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from ehrbackdoor.experiments.config import config_from_dict
from ehrbackdoor.experiments.runner import ConfigChangedError, run_experiment
from ehrbackdoor.experiments.store import Store
from tests.experiments.conftest import comparable, tiny_doc


@pytest.fixture
def counted(monkeypatch):
    """Count every call of the expensive steps (data preparation, poisoning, victim training)."""
    import ehrbackdoor.pipeline.cell as attack
    import ehrbackdoor.pipeline.prepare as prepare
    import ehrbackdoor.victims.fit as train

    calls: Counter = Counter()

    def wrap(module, name, label):
        original = getattr(module, name)

        def counting(*args, **kwargs):
            calls[label] += 1
            if label == "fit_victim":
                calls[f"fit:{args[0]}"] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)

    wrap(prepare, "prepare_data", "prepare_data")
    wrap(attack, "build_attack", "build_attack")
    wrap(train, "fit_victim", "fit_victim")
    return calls


def test_expensive_steps_are_shared_and_rerun_skips_everything(tmp_path, counted):
    cfg = config_from_dict(tiny_doc(), tmp_path)
    s = run_experiment(cfg, tmp_path / "run", jobs=1)
    # 3 attack settings x 2 victims x 2 seeds
    assert (s.total, s.ok, s.failed) == (12, 12, 0)
    assert counted["prepare_data"] == 1  # once per cohort and split
    assert counted["build_attack"] == 3 * 2  # once per (attack setting, seed), for all victims
    # 2 victims x 2 seeds clean baselines, shared by all 3 settings, plus one poisoned fit per cell
    assert counted["fit_victim"] == 2 * 2 + 12
    # triggers are fit once per (family, parameters, seed): temporal and fixed, 2 seeds
    assert s.steps_run == {"data": 1, "trigger": 4, "poison": 6, "baseline": 4, "cell": 12}

    with Store.open_run(tmp_path / "run", readonly=True) as store:
        kinds = Counter(r["kind"] for r in store.steps())
        assert kinds == {"data": 1, "trigger": 4, "poison": 6, "baseline": 4, "cell": 12}
        rows = store.cells()
        assert all(r["status"] == "ok" for r in rows)
        m = rows[0]["metrics"]
        for k in (
            "asr",
            "asr_baseline",
            "clean_auroc",
            "triggered_auroc",
            "baseline_auroc",
            "clean_auprc",
            "triggered_auprc",
            "baseline_auprc",
            "auroc_cost",
        ):
            assert k in m and np.isfinite(m[k])
        assert set(rows[0]["timings"]) >= {
            "train_seconds",
            "cell_seconds",
            "poison_seconds",
            "baseline_train_seconds",
        }
        before = comparable(rows)

    counted.clear()
    s2 = run_experiment(cfg, tmp_path / "run", jobs=1)
    assert (s2.already_done, s2.ok, s2.failed) == (12, 0, 0)
    assert sum(counted.values()) == 0
    with Store.open_run(tmp_path / "run", readonly=True) as store:
        assert comparable(store.cells()) == before
    log = (tmp_path / "run" / "run.log").read_text()
    assert log.count("12 ok, 0 failed") == 1 and "12 finished, 0 failed earlier" in log
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_cell_matches_run_attack(tmp_path):
    """A cell's numbers are those of `ehrbackdoor attack` with the same setting and seed."""
    from ehrbackdoor.experiments.tasks import load_clean
    from ehrbackdoor.pipeline import AttackConfig, Prepared, run_attack

    doc = tiny_doc(victims={"lr": {}}, seeds=[1])
    doc["attacks"] = [doc["attacks"][1]]
    cfg = config_from_dict(doc, tmp_path)
    run_experiment(cfg, tmp_path / "run", jobs=1)
    with Store.open_run(tmp_path / "run", readonly=True) as store:
        (row,) = store.cells()
    data_key = next(iter((tmp_path / "run" / "artifacts" / "data").iterdir())).name
    clean = load_clean(tmp_path / "run", data_key)
    prep = Prepared(clean.train, clean.val, clean.test, None, "x")
    ac = AttackConfig("fixed", 1, 0.05, "observed", "non-target", 1, {"value": 200.0, "hours": 12})
    res = run_attack(ac, ["lr"], prep, n_bootstrap=50)["models"]["lr"]
    m = row["metrics"]
    assert m["asr"] == res["asr"]
    assert [m["asr_ci_low"], m["asr_ci_high"]] == res["asr_ci"]
    assert m["clean_auroc"] == res["clean"]["auroc"]
    assert m["triggered_auprc"] == res["triggered"]["auprc"]
    assert m["baseline_auroc"] == res["clean_baseline"]["auroc"]
    assert m["asr_baseline"] == res["asr_baseline"]


def test_failed_cells_are_recorded_and_retried(tmp_path, monkeypatch):
    import ehrbackdoor.pipeline.cell as attack

    original = attack.build_attack

    def flaky(config, train, test, trigger=None):
        if config.rate == 0.1:
            raise RuntimeError("simulated failure")
        return original(config, train, test, trigger)

    monkeypatch.setattr(attack, "build_attack", flaky)
    cfg = config_from_dict(tiny_doc(victims={"lr": {}}), tmp_path)
    s = run_experiment(cfg, tmp_path / "run", jobs=1)
    assert (s.ok, s.failed) == (4, 2)
    with Store.open_run(tmp_path / "run", readonly=True) as store:
        failed = store.cells("failed")
    assert len(failed) == 2
    assert all("poison step failed: RuntimeError: simulated failure" in r["error"] for r in failed)
    assert all(r["params"]["rate"] == 0.1 for r in failed)
    assert "simulated failure" in (tmp_path / "run" / "run.log").read_text()

    monkeypatch.setattr(attack, "build_attack", original)
    s = run_experiment(cfg, tmp_path / "run", jobs=1)
    assert (s.ok, s.failed, s.skipped_failed, s.already_done) == (0, 0, 2, 4)
    s = run_experiment(cfg, tmp_path / "run", jobs=1, retry_failed=True)
    assert (s.ok, s.failed, s.already_done) == (2, 0, 4)
    with Store.open_run(tmp_path / "run", readonly=True) as store:
        rows = store.cells()
    assert all(r["status"] == "ok" and r["error"] is None for r in rows)
    assert {r["attempts"] for r in rows if r["params"]["rate"] == 0.1} == {2}


def test_changed_config_is_refused_unless_forced(tmp_path):
    doc = tiny_doc(victims={"lr": {}}, seeds=[0])
    doc["attacks"] = [doc["attacks"][1]]
    run_experiment(config_from_dict(doc, tmp_path), tmp_path / "run", jobs=1)

    doc2 = json.loads(json.dumps(doc))
    doc2["attacks"][0]["rate"] = [0.05, 0.1]
    cfg2 = config_from_dict(doc2, tmp_path)
    with pytest.raises(ConfigChangedError, match="different config.*attacks.*--force"):
        run_experiment(cfg2, tmp_path / "run", jobs=1)
    s = run_experiment(cfg2, tmp_path / "run", jobs=1, force=True)
    assert (s.total, s.already_done, s.ok) == (2, 1, 1)  # the unchanged cell is kept

    doc3 = json.loads(json.dumps(doc2))
    doc3["attacks"][0]["rate"] = 0.1
    s = run_experiment(config_from_dict(doc3, tmp_path), tmp_path / "run", jobs=1, force=True)
    assert (s.total, s.already_done, s.ok) == (1, 1, 0)
    with Store.open_run(tmp_path / "run", readonly=True) as store:
        assert len(store.cells()) == 1  # cells no longer in the config are dropped


def test_one_driver_per_run_directory(tmp_path):
    from ehrbackdoor.experiments.rundir import RunLock as _RunLock

    run = tmp_path / "run"
    run.mkdir()
    (run / "artifacts" / "poison" / ".pabc.tmp-1-x").mkdir(parents=True)
    cfg = config_from_dict(tiny_doc(victims={"lr": {}}, seeds=[0]), tmp_path)
    with _RunLock(run), pytest.raises(ValueError, match="in use by another run"):
        run_experiment(cfg, run, jobs=1)
    s = run_experiment(cfg, run, jobs=1)  # the lock is released
    assert s.ok == 3
    assert not (run / "artifacts" / "poison" / ".pabc.tmp-1-x").exists()
