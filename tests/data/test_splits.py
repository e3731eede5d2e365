import numpy as np
import pytest

from ehrbackdoor.data.splits import Split, stratified_split
from tests.data.test_cohort import make_cohort


def test_stratified_split_is_seeded_disjoint_and_stratified(tmp_path):
    c = make_cohort([1] * 1000)
    s = stratified_split(c, seed=3)
    assert s.sizes() == {"train": 700, "val": 150, "test": 150}
    ids = np.concatenate([s.train, s.val, s.test])
    assert len(set(ids)) == 1000
    rate = c.label.mean()
    for part in s.apply(c).values():
        assert abs(part.label.mean() - rate) < 0.02
    assert np.array_equal(stratified_split(c, seed=3).test, s.test)
    assert not np.array_equal(stratified_split(c, seed=4).test, s.test)
    s.save(tmp_path / "splits.json")
    back = Split.load(tmp_path / "splits.json")
    assert np.array_equal(back.train, s.train) and back.seed == 3


def test_split_errors(tmp_path):
    c = make_cohort([1] * 10)
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(c, (0.5, 0.5, 0.5))
    (tmp_path / "bad.json").write_text('{"train": ["a"], "val": ["a"], "test": []}')
    with pytest.raises(ValueError, match="more than one part"):
        Split.load(tmp_path / "bad.json")
