from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small synthetic MIMIC-III-format cohort shared by the pipeline tests."""
    from ehrbackdoor.data.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synth") / "d", n_stays=800, seed=1)
