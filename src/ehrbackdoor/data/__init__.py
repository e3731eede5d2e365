"""Data layer: variable schemas, the column-wise cohort, readers, synthetic data, splits."""

from ehrbackdoor.data.cohort import Cohort, Events, hour_bins
from ehrbackdoor.data.errors import DataFormatError
from ehrbackdoor.data.schema import Kind, Schema, Variable, get_schema

__all__ = [
    "Cohort",
    "DataFormatError",
    "Events",
    "Kind",
    "Schema",
    "Variable",
    "get_schema",
    "hour_bins",
]
