"""A sweep of attacks through the caches gives exactly the results of the uncached path, and the
cache stores the clean representation once."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.cachedir import cache_info
from ehrbackdoor.pipeline import AttackConfig, run_attack


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from ehrbackdoor.data.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synth") / "d", n_stays=400, seed=3)


def _numbers(res: dict) -> dict:
    m = res["models"]["lr"]
    return {
        "asr": m["asr"],
        "clean": m["clean"],
        "clean_baseline": m["clean_baseline"],
        "n_poisoned": res["n_poisoned"],
    }


def test_attack_sweep_cached_equals_uncached(synth, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EHRBACKDOOR_CACHE_MAX", raising=False)
    cached, plain, sizes = [], [], []
    for i, rate in enumerate((0.02, 0.05)):
        config = AttackConfig(attack="temporal", target=1, rate=rate, seed=0)
        monkeypatch.delenv("EHRBACKDOOR_NO_CACHE", raising=False)
        monkeypatch.setenv("EHRBACKDOOR_CACHE", str(tmp_path / "cache"))
        for _ in range(2):  # cold, then warm
            cached.append(
                _numbers(run_attack(config, ["lr"], synth, out=tmp_path / f"c{i}", n_bootstrap=50))
            )
        sizes.append(cache_info()["areas"]["preprocess"]["bytes"])
        monkeypatch.setenv("EHRBACKDOOR_NO_CACHE", "1")
        plain.append(
            _numbers(run_attack(config, ["lr"], synth, out=tmp_path / f"p{i}", n_bootstrap=50))
        )
    assert cached[0] == cached[1] == plain[0]
    assert cached[2] == cached[3] == plain[1]
    assert np.isfinite(plain[0]["asr"])
    assert sizes[1] <= 1.3 * sizes[0], sizes
