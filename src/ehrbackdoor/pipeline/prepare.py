"""Load a data source and cut it into clean train / validation / test cohorts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.load import load_cohort, resolve_split
from ehrbackdoor.data.splits import Split, stratified_split


@dataclass(frozen=True)
class Prepared:
    """Clean cohorts of one run and the split that produced them (saved with results)."""

    train: Cohort
    val: Cohort
    test: Cohort
    split: Split
    data: str
    test_data: str | None = None

    def sizes(self) -> dict[str, int]:
        return {
            "n_train": self.train.n_stays,
            "n_val": self.val.n_stays,
            "n_test": self.test.n_stays,
        }


def prepare_data(
    data: str | Path,
    test_data: str | Path | None = None,
    split_file: str | Path | None = None,
    split_seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> Prepared:
    """Train/val/test cohorts of a data source.

    Without `test_data`: the saved `split_file`, else the source's official split, else a seeded
    stratified split (`fractions`, `split_seed`). With `test_data`: that whole source is the test
    cohort and `data` is split into train and validation in the ratio of the first two fractions.
    """
    cohort = load_cohort(data)
    if test_data is None:
        split = resolve_split(cohort, split_file, seed=split_seed, fractions=fractions)
        parts = split.apply(cohort)
        test = parts["test"]
    else:
        if split_file is not None:
            split = Split.load(split_file)
        else:
            tr, va = fractions[0], fractions[1]
            split = stratified_split(cohort, (tr / (tr + va), va / (tr + va), 0.0), split_seed)
        parts = split.apply(cohort)
        test = load_cohort(test_data)
        if test.schema.name != cohort.schema.name:
            raise ValueError(
                f"test data schema {test.schema.name!r} differs from training data "
                f"{cohort.schema.name!r}"
            )
    for name, part in (("train", parts["train"]), ("val", parts["val"]), ("test", test)):
        if part.n_stays == 0:
            raise ValueError(f"the {name} cohort is empty; check the data and split")
    return Prepared(
        parts["train"], parts["val"], test, split, str(data), str(test_data) if test_data else None
    )
