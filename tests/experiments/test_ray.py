"""The Ray executor gives the same rows as the local process pool (local Ray on 127.0.0.1)."""

from __future__ import annotations

import importlib.util

import pytest

from ehrbackdoor.experiments.config import config_from_dict
from ehrbackdoor.experiments.runner import run_experiment
from ehrbackdoor.experiments.store import Store
from tests.experiments.conftest import comparable, tiny_doc

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed (optional extra: pip install 'ehrbackdoor[ray]')",
)


@pytest.mark.slow
def test_ray_and_local_give_identical_rows(tmp_path):
    cfg = config_from_dict(tiny_doc(), tmp_path)
    s_ray = run_experiment(cfg, tmp_path / "ray", executor="ray", address="local", jobs=2)
    assert s_ray.ok == 12 and s_ray.executor.startswith("ray")
    s_local = run_experiment(cfg, tmp_path / "local", executor="local", jobs=2)
    assert s_local.ok == 12
    with Store.open_run(tmp_path / "ray", readonly=True) as a:
        rows_ray = a.cells()
    with Store.open_run(tmp_path / "local", readonly=True) as b:
        rows_local = b.cells()
    assert comparable(rows_ray) == comparable(rows_local)
