"""`data info`'s cleaning report and window, on small data written by the tests."""

from __future__ import annotations

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.info import cleaning_of, data_info

from .test_physionet_reader import record, write_dir
from .test_yaib_reader import write_cohort


def test_info_reports_cleaning_and_window(tmp_path):
    root = write_dir(tmp_path / "p", {"1": record("1", "00:10,HR,80\n10:45,,1.9\n00:11,HR,nan\n")})
    info = data_info(root)
    assert info["format"] == "physionet2012" and info["window_hours"] == 48.0
    assert info["cleaning"]["dropped_empty_parameter"]["total"] == 1
    assert info["cleaning"]["dropped_non_finite_total"] == 1
    y = data_info(write_cohort(tmp_path / "y"))
    assert y["format"] == "yaib" and y["window_hours"] == 24.0 and y["n_stays"] == 3


def test_cleaning_of_concatenated_cohort(tmp_path):
    from ehrbackdoor.data.readers.physionet2012 import read_physionet2012

    a = read_physionet2012(write_dir(tmp_path / "a", {"1": record("1", "10:45,,1.9\n")}))
    b = read_physionet2012(write_dir(tmp_path / "b", {"2": record("2", "")}))
    both = Cohort.concat([a, b])
    got = cleaning_of(both.meta)
    assert [s["dropped_empty_parameter"]["total"] for s in got["sources"]] == [1, 0]
    assert cleaning_of({}) == {}
