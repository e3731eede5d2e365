"""Variable schemas: what each clinical variable is, where its values lie, how it is recorded.

Attacks must keep poisoned values plausible (valid range, recorded precision, categorical levels) and
preprocessing needs normal values for imputation, so every data source declares one `Schema`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from importlib import resources

import numpy as np

from ehrbackdoor.data.transforms import check_transform


class Kind(str, Enum):
    """How a variable's values behave."""

    CONTINUOUS = "continuous"
    ORDINAL = "ordinal"  # ordered categorical levels (GCS, capillary refill)
    BINARY = "binary"  # present/absent flag (PhysioNet MechVent)


@dataclass(frozen=True)
class Variable:
    """One clinical variable.

    Values are stored as numbers everywhere in ehrbackdoor. Ordinal variables store their clinical
    code (e.g. GCS eye opening 1-4); `aliases` maps each text spelling found in files to the code.
    `benchmark_values` is the order of text values the MIMIC-III benchmark one-hot encodes (the order
    of `possible_values` in its discretizer_config.json, which is not clinical order).
    `transform` is the variance-stabilising space triggers work in (`ehrbackdoor.data.transforms`):
    "log" for positive right-skewed labs, "identity" otherwise (always for categoricals).
    """

    name: str
    kind: Kind
    unit: str
    normal: float
    low: float
    high: float
    precision: int
    levels: tuple[float, ...] = ()
    level_labels: tuple[str, ...] = ()
    aliases: dict[str, float] = field(default_factory=dict)
    benchmark_values: tuple[str, ...] = ()
    short: str = ""
    transform: str = "identity"

    def __post_init__(self) -> None:
        check_transform(self.transform, self.low)
        if self.transform != "identity" and self.kind is not Kind.CONTINUOUS:
            raise ValueError(f"{self.name}: only continuous variables take a transform")

    @property
    def is_categorical(self) -> bool:
        return self.kind is not Kind.CONTINUOUS

    def label_of(self, code: float) -> str:
        """Canonical text of a categorical code (the benchmark's numbered spelling)."""
        i = self.levels.index(code)
        return self.level_labels[i]


class _Column:
    """A read-only property of a `Schema`: one attribute of every variable, in variable order,
    as an array of `dtype`."""

    def __init__(self, attr: str, dtype: type) -> None:
        self.attr, self.dtype = attr, dtype

    def __get__(self, schema: Schema | None, owner: type | None = None) -> np.ndarray:
        if schema is None:
            return self  # type: ignore[return-value]
        return np.array([getattr(v, self.attr) for v in schema.variables], dtype=self.dtype)


@dataclass(frozen=True)
class Schema:
    """The variables of one data source, in a fixed order (the variable index used in events)."""

    name: str
    variables: tuple[Variable, ...]
    static: tuple[Variable, ...] = ()

    def __post_init__(self) -> None:
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise ValueError(f"schema {self.name!r} has duplicate variable names")

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def static_names(self) -> list[str]:
        return [v.name for v in self.static]

    def __len__(self) -> int:
        return len(self.variables)

    def index(self, name: str) -> int:
        """Variable index by full or short name."""
        for i, v in enumerate(self.variables):
            if name in (v.name, v.short):
                return i
        raise KeyError(f"unknown variable {name!r} in schema {self.name!r}; known: {self.names}")

    # Column-wise views used by vectorised code (read-only properties, one array per access).
    lows = _Column("low", np.float64)
    highs = _Column("high", np.float64)
    normals = _Column("normal", np.float64)
    precisions = _Column("precision", np.int64)
    categorical = _Column("is_categorical", bool)

    @property
    def transforms(self) -> tuple[str, ...]:
        return tuple(v.transform for v in self.variables)

    def to_dict(self) -> dict:
        """JSON-serialisable description (saved with runs so a result names its schema)."""
        return {
            "name": self.name,
            "variables": [_var_dict(v) for v in self.variables],
            "static": [_var_dict(v) for v in self.static],
        }


def _var_dict(v: Variable) -> dict:
    return {
        "name": v.name,
        "short": v.short,
        "kind": v.kind.value,
        "unit": v.unit,
        "normal": v.normal,
        "low": v.low,
        "high": v.high,
        "precision": v.precision,
        "levels": list(v.levels),
        "level_labels": list(v.level_labels),
        "aliases": dict(v.aliases),
        "transform": v.transform,
    }


def round_to_precision(values: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Round each value to its variable's number of recorded decimals (vectorised)."""
    scale = 10.0 ** np.asarray(precision, dtype=np.float64)
    return np.round(np.asarray(values, dtype=np.float64) * scale) / scale


# --------------------------------------------------------------------------------------------------
# MIMIC-III in-hospital-mortality benchmark: 17 channels
# --------------------------------------------------------------------------------------------------

_MIMIC_CONTINUOUS = {
    # name: (short, unit, low, high, precision)  -- valid ranges from the benchmark's
    # variable_ranges.csv (VALID LOW/HIGH); precision is what charted values carry.
    "Diastolic blood pressure": ("DBP", "mmHg", 0.0, 375.0, 0),
    "Fraction inspired oxygen": ("FiO2", "fraction", 0.21, 1.0, 2),
    "Glucose": ("Glucose", "mg/dL", 33.0, 2000.0, 0),
    "Heart Rate": ("HR", "bpm", 0.0, 350.0, 0),
    "Height": ("Height", "cm", 0.0, 240.0, 0),
    "Mean blood pressure": ("MBP", "mmHg", 14.0, 330.0, 0),
    "Oxygen saturation": ("SpO2", "%", 0.0, 100.0, 0),
    "Respiratory rate": ("RR", "breaths/min", 0.0, 300.0, 0),
    "Systolic blood pressure": ("SBP", "mmHg", 0.0, 375.0, 0),
    "Temperature": ("Temp", "degC", 26.0, 45.0, 1),
    "Weight": ("Weight", "kg", 0.0, 250.0, 1),
    "pH": ("pH", "", 6.3, 8.4, 2),
}

# Right-skewed positive channels whose triggers work on the log scale (the only strongly skewed
# continuous channel of the 17; vitals stay in raw units).
_MIMIC_LOG = {"Glucose"}

# Ordinal channels in clinical order: (short, levels, canonical labels).
_MIMIC_ORDINAL = {
    "Capillary refill rate": ("CRR", (0.0, 1.0), ("0.0", "1.0")),
    "Glascow coma scale eye opening": (
        "GCS_eye",
        (1.0, 2.0, 3.0, 4.0),
        ("1 No Response", "2 To pain", "3 To speech", "4 Spontaneously"),
    ),
    "Glascow coma scale motor response": (
        "GCS_motor",
        (1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
        (
            "1 No Response",
            "2 Abnorm extensn",
            "3 Abnorm flexion",
            "4 Flex-withdraws",
            "5 Localizes Pain",
            "6 Obeys Commands",
        ),
    ),
    "Glascow coma scale total": (
        "GCS_total",
        tuple(float(i) for i in range(3, 16)),
        tuple(str(i) for i in range(3, 16)),
    ),
    "Glascow coma scale verbal response": (
        "GCS_verbal",
        (1.0, 2.0, 3.0, 4.0, 5.0),
        ("1 No Response", "2 Incomp sounds", "3 Inapprop words", "4 Confused", "5 Oriented"),
    ),
}


def _resource_json(name: str) -> dict:
    text = resources.files("ehrbackdoor.data").joinpath("resources", name).read_text()
    return json.loads(text)


@cache
def mimic3_schema() -> Schema:
    """The 17 channels of the MIMIC-III in-hospital-mortality benchmark, in its channel order.

    Categories, text aliases and normal values come from the benchmark's discretizer_config.json and
    channel_info.json. One quirk is kept for parity: channel_info codes the eye-opening text
    "None" as 0, below the clinical levels 1-4; it is accepted on input and kept as 0 in window features,
    while attacks move eye opening only among levels 1-4.
    """
    disc = _resource_json("discretizer_config.json")
    info = _resource_json("channel_info.json")
    variables = []
    for name in disc["id_to_channel"]:
        normal_text = disc["normal_values"][name]
        if disc["is_categorical_channel"][name]:
            short, levels, labels = _MIMIC_ORDINAL[name]
            aliases = {k: float(v) for k, v in info[name]["values"].items()}
            variables.append(
                Variable(
                    name=name,
                    short=short,
                    kind=Kind.ORDINAL,
                    unit="",
                    normal=aliases[normal_text],
                    low=levels[0],
                    high=levels[-1],
                    precision=0,
                    levels=levels,
                    level_labels=labels,
                    aliases=aliases,
                    benchmark_values=tuple(disc["possible_values"][name]),
                )
            )
        else:
            short, unit, low, high, precision = _MIMIC_CONTINUOUS[name]
            variables.append(
                Variable(
                    name=name,
                    short=short,
                    kind=Kind.CONTINUOUS,
                    unit=unit,
                    normal=float(normal_text),
                    low=low,
                    high=high,
                    precision=precision,
                    transform="log" if short in _MIMIC_LOG else "identity",
                )
            )
    return Schema(name="mimic3", variables=tuple(variables))


# --------------------------------------------------------------------------------------------------
# PhysioNet/CinC Challenge 2012: 37 time series + 5 static descriptors
# --------------------------------------------------------------------------------------------------

# name: (unit, normal, low, high, precision, description)
# Valid ranges are physiological limits: values outside are recording artefacts (zeros for blood
# pressure and heart rate, negative temperatures) or unit errors (pH 735 for 7.35, height in mm).
# The reader drops them and counts what it dropped (see physionet2012.CLEANING_POLICY).
_PHYSIONET_SERIES: dict[str, tuple[str, float, float, float, int, str]] = {
    "Albumin": ("g/dL", 3.0, 0.5, 7.0, 1, "Albumin"),
    "ALP": ("IU/L", 80.0, 1.0, 5000.0, 0, "Alkaline phosphatase"),
    "ALT": ("IU/L", 40.0, 1.0, 20000.0, 0, "Alanine transaminase"),
    "AST": ("IU/L", 45.0, 1.0, 30000.0, 0, "Aspartate transaminase"),
    "Bilirubin": ("mg/dL", 0.8, 0.1, 80.0, 1, "Bilirubin"),
    "BUN": ("mg/dL", 20.0, 1.0, 300.0, 0, "Blood urea nitrogen"),
    "Cholesterol": ("mg/dL", 155.0, 10.0, 1000.0, 0, "Cholesterol"),
    "Creatinine": ("mg/dL", 1.0, 0.1, 30.0, 1, "Serum creatinine"),
    "DiasABP": ("mmHg", 59.0, 1.0, 300.0, 0, "Invasive diastolic arterial blood pressure"),
    "FiO2": ("fraction", 0.21, 0.21, 1.0, 2, "Fractional inspired O2"),
    "GCS": ("", 15.0, 3.0, 15.0, 0, "Glasgow Coma Score"),
    "Glucose": ("mg/dL", 128.0, 10.0, 2000.0, 0, "Serum glucose"),
    "HCO3": ("mmol/L", 24.0, 1.0, 60.0, 0, "Serum bicarbonate"),
    "HCT": ("%", 30.5, 5.0, 75.0, 1, "Haematocrit"),
    "HR": ("bpm", 86.0, 1.0, 300.0, 0, "Heart rate"),
    "K": ("mEq/L", 4.1, 1.0, 15.0, 1, "Serum potassium"),
    "Lactate": ("mmol/L", 1.8, 0.1, 40.0, 1, "Lactate"),
    "Mg": ("mmol/L", 2.0, 0.1, 20.0, 1, "Serum magnesium"),
    "MAP": ("mmHg", 77.0, 1.0, 300.0, 0, "Invasive mean arterial blood pressure"),
    "MechVent": ("", 0.0, 0.0, 1.0, 0, "Mechanical ventilation respiration (0 false, 1 true)"),
    "Na": ("mEq/L", 139.0, 80.0, 200.0, 0, "Serum sodium"),
    "NIDiasABP": ("mmHg", 59.0, 1.0, 300.0, 0, "Non-invasive diastolic arterial blood pressure"),
    "NIMAP": ("mmHg", 77.0, 1.0, 300.0, 2, "Non-invasive mean arterial blood pressure"),
    "NISysABP": ("mmHg", 118.0, 1.0, 300.0, 0, "Non-invasive systolic arterial blood pressure"),
    "PaCO2": ("mmHg", 40.0, 5.0, 200.0, 0, "Partial pressure of arterial CO2"),
    "PaO2": ("mmHg", 112.0, 10.0, 800.0, 0, "Partial pressure of arterial O2"),
    "pH": ("", 7.4, 6.5, 8.0, 2, "Arterial pH"),
    "Platelets": ("cells/nL", 208.0, 1.0, 3000.0, 0, "Platelets"),
    "RespRate": ("breaths/min", 19.0, 0.0, 100.0, 0, "Respiration rate"),
    "SaO2": ("%", 97.0, 20.0, 100.0, 0, "O2 saturation in haemoglobin"),
    "SysABP": ("mmHg", 118.0, 1.0, 300.0, 0, "Invasive systolic arterial blood pressure"),
    "Temp": ("degC", 36.6, 25.0, 45.0, 1, "Temperature"),
    "TroponinI": ("ug/L", 0.3, 0.1, 100.0, 1, "Troponin-I"),
    "TroponinT": ("ug/L", 0.1, 0.01, 50.0, 2, "Troponin-T"),
    "Urine": ("mL", 80.0, 0.0, 20000.0, 0, "Urine output"),
    "WBC": ("cells/nL", 9.9, 0.1, 500.0, 1, "White blood cell count"),
    "Weight": ("kg", 81.0, 1.0, 500.0, 1, "Weight"),
}

# Variance-stabilising transforms (see `ehrbackdoor.data.transforms`), chosen from the data: every
# continuous series whose skewness over training values is >= 1.8 and at least halves on the log
# scale (set-a+b, seed-0 training split: AST 5.7 -> 1.0, ALT 6.3 -> 1.0, ALP 5.5 -> 1.0, WBC 15 ->
# -1.7, Urine 15.5 -> -0.9 with log1p as it may be 0). The rest (vitals, bounded FiO2/SaO2/pH,
# symmetric electrolytes) stays in raw units.
_PHYSIONET_TRANSFORM: dict[str, str] = {
    **dict.fromkeys(
        (
            "ALP",
            "ALT",
            "AST",
            "Bilirubin",
            "BUN",
            "Creatinine",
            "Glucose",
            "Lactate",
            "Mg",
            "Platelets",
            "TroponinI",
            "TroponinT",
            "WBC",
        ),
        "log",
    ),
    "Urine": "log1p",
}

_PHYSIONET_STATIC: dict[str, tuple[str, float, float, float, int]] = {
    "Age": ("years", 65.0, 15.0, 120.0, 0),
    "Gender": ("0 female, 1 male", 0.5, 0.0, 1.0, 0),
    "Height": ("cm", 170.0, 50.0, 250.0, 1),
    "ICUType": ("1 coronary, 2 cardiac surgery, 3 medical, 4 surgical", 3.0, 1.0, 4.0, 0),
    "Weight": ("kg", 81.0, 1.0, 500.0, 1),
}


@cache
def physionet2012_schema() -> Schema:
    """The 37 time-series parameters and 5 static descriptors of the PhysioNet 2012 challenge."""
    variables = []
    for name, (unit, normal, low, high, precision, _desc) in _PHYSIONET_SERIES.items():
        if name == "GCS":
            levels = tuple(float(i) for i in range(3, 16))
            variables.append(
                Variable(
                    name,
                    Kind.ORDINAL,
                    unit,
                    normal,
                    low,
                    high,
                    precision,
                    levels=levels,
                    level_labels=tuple(str(int(x)) for x in levels),
                    short=name,
                )
            )
        elif name == "MechVent":
            variables.append(
                Variable(
                    name,
                    Kind.BINARY,
                    unit,
                    normal,
                    low,
                    high,
                    precision,
                    levels=(0.0, 1.0),
                    level_labels=("0", "1"),
                    short=name,
                )
            )
        else:
            transform = _PHYSIONET_TRANSFORM.get(name, "identity")
            variables.append(
                Variable(
                    name,
                    Kind.CONTINUOUS,
                    unit,
                    normal,
                    low,
                    high,
                    precision,
                    short=name,
                    transform=transform,
                )
            )
    static = tuple(
        Variable(name, Kind.CONTINUOUS, unit, normal, low, high, precision, short=name)
        for name, (unit, normal, low, high, precision) in _PHYSIONET_STATIC.items()
    )
    return Schema(name="physionet2012", variables=tuple(variables), static=static)


def _yaib_schema() -> Schema:
    from ehrbackdoor.data.schema_yaib import yaib_schema  # its own module: 48 concepts

    return yaib_schema()


SCHEMAS = {"mimic3": mimic3_schema, "physionet2012": physionet2012_schema, "yaib": _yaib_schema}


def get_schema(name: str) -> Schema:
    """Schema by data-source name."""
    try:
        return SCHEMAS[name]()
    except KeyError:
        raise ValueError(f"unknown schema {name!r}; expected one of {sorted(SCHEMAS)}") from None
