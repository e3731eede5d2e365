"""Schema of YAIB cohorts: the 48 dynamic ricu concepts and 4 static ones, in ricu's units.

YAIB (van de Water et al., ICLR 2024) builds its MIMIC-III, MIMIC-IV, eICU, HiRID and AUMCdb cohorts
with ricu, which harmonises every source to one concept dictionary: the same names and units
whatever the database. Units are the ones ricu writes into the parquet files (the `units` attribute
of each column of `dyn.parquet`). Valid ranges are physiological limits in those units, wide enough
for ricu's own concept limits (ricu already removes values outside those); the YAIB reader counts
values outside them but keeps them, for parity with what YAIB feeds its models. Precision is the
number of decimals a charted or measured value carries (ricu's hourly means can carry more).
"""

from __future__ import annotations

from functools import cache

from ehrbackdoor.data.schema import Kind, Schema, Variable

# name: (unit, normal, low, high, precision, description)
_YAIB_DYNAMIC: dict[str, tuple[str, float, float, float, int, str]] = {
    "alb": ("g/dL", 3.5, 0.5, 7.0, 1, "Albumin"),
    "alp": ("IU/L", 80.0, 1.0, 5000.0, 0, "Alkaline phosphatase"),
    "alt": ("IU/L", 30.0, 1.0, 20000.0, 0, "Alanine aminotransferase"),
    "ast": ("IU/L", 30.0, 1.0, 30000.0, 0, "Aspartate aminotransferase"),
    "be": ("mEq/L", 0.0, -40.0, 40.0, 0, "Base excess"),
    "bicar": ("mEq/L", 24.0, 2.0, 60.0, 0, "Bicarbonate"),
    "bili": ("mg/dL", 0.8, 0.05, 80.0, 1, "Total bilirubin"),
    "bili_dir": ("mg/dL", 0.2, 0.05, 60.0, 1, "Direct bilirubin"),
    "bnd": ("%", 0.0, 0.0, 100.0, 0, "Band neutrophils"),
    "bun": ("mg/dL", 18.0, 1.0, 300.0, 0, "Blood urea nitrogen"),
    "ca": ("mg/dL", 8.8, 2.0, 25.0, 1, "Calcium"),
    "cai": ("mmol/L", 1.15, 0.2, 5.0, 2, "Ionised calcium"),
    "ck": ("IU/L", 100.0, 1.0, 100000.0, 0, "Creatine kinase"),
    "ckmb": ("ng/mL", 3.0, 0.1, 1000.0, 0, "Creatine kinase MB"),
    "cl": ("mEq/L", 104.0, 50.0, 160.0, 0, "Chloride"),
    "crea": ("mg/dL", 1.0, 0.05, 30.0, 1, "Creatinine"),
    "crp": ("mg/L", 5.0, 0.0, 1000.0, 0, "C-reactive protein"),
    "dbp": ("mmHg", 60.0, 0.0, 300.0, 0, "Diastolic blood pressure"),
    "fgn": ("mg/dL", 300.0, 10.0, 2000.0, 0, "Fibrinogen"),
    "fio2": ("%", 21.0, 21.0, 100.0, 0, "Fraction of inspired oxygen"),
    "glu": ("mg/dL", 120.0, 10.0, 2000.0, 0, "Glucose"),
    "hgb": ("g/dL", 11.0, 1.0, 25.0, 1, "Haemoglobin"),
    "hr": ("bpm", 85.0, 0.0, 350.0, 0, "Heart rate"),
    "inr_pt": ("", 1.1, 0.5, 20.0, 1, "Prothrombin time, INR"),
    "k": ("mEq/L", 4.1, 1.0, 15.0, 1, "Potassium"),
    "lact": ("mmol/L", 1.5, 0.1, 40.0, 1, "Lactate"),
    "lymph": ("%", 15.0, 0.0, 100.0, 1, "Lymphocytes"),
    "map": ("mmHg", 77.0, 0.0, 330.0, 0, "Mean arterial pressure"),
    "mch": ("pg", 30.0, 10.0, 60.0, 1, "Mean corpuscular haemoglobin"),
    "mchc": ("%", 33.5, 15.0, 50.0, 1, "Mean corpuscular haemoglobin concentration"),
    "mcv": ("fL", 90.0, 40.0, 160.0, 0, "Mean corpuscular volume"),
    "methb": ("%", 0.5, 0.0, 100.0, 1, "Methaemoglobin"),
    "mg": ("mg/dL", 2.0, 0.2, 20.0, 1, "Magnesium"),
    "na": ("mEq/L", 139.0, 80.0, 200.0, 0, "Sodium"),
    "neut": ("%", 75.0, 0.0, 100.0, 1, "Neutrophils"),
    "o2sat": ("%", 97.0, 20.0, 100.0, 0, "Oxygen saturation"),
    "pco2": ("mmHg", 40.0, 5.0, 250.0, 0, "Partial pressure of CO2"),
    "ph": ("", 7.4, 6.3, 8.4, 2, "pH"),
    "phos": ("mg/dL", 3.5, 0.1, 40.0, 1, "Phosphate"),
    "plt": ("K/uL", 200.0, 1.0, 3000.0, 0, "Platelets"),
    "po2": ("mmHg", 100.0, 10.0, 800.0, 0, "Partial pressure of O2"),
    "ptt": ("sec", 32.0, 5.0, 250.0, 1, "Partial thromboplastin time"),
    "resp": ("insp/min", 18.0, 0.0, 200.0, 0, "Respiratory rate"),
    "sbp": ("mmHg", 118.0, 0.0, 375.0, 0, "Systolic blood pressure"),
    "temp": ("C", 36.8, 25.0, 45.0, 1, "Temperature"),
    "tnt": ("ng/mL", 0.05, 0.0, 100.0, 2, "Troponin T"),
    "urine": ("mL", 60.0, 0.0, 10000.0, 0, "Urine output (per hour)"),
    "wbc": ("K/uL", 9.0, 0.05, 500.0, 1, "White blood cell count"),
}

# sex is coded 0 female, 1 male (the file holds ricu's text "Female"/"Male"), as PhysioNet's Gender.
_YAIB_STATIC: dict[str, tuple[str, float, float, float, int]] = {
    "age": ("years", 65.0, 0.0, 120.0, 0),
    "sex": ("0 female, 1 male", 0.5, 0.0, 1.0, 0),
    "height": ("cm", 170.0, 50.0, 250.0, 1),
    "weight": ("kg", 80.0, 1.0, 500.0, 1),
}


@cache
def yaib_schema() -> Schema:
    """YAIB's 48 dynamic ricu concepts (`dyn.parquet` order) and 4 static ones (`sta.parquet`)."""
    variables = tuple(
        Variable(name, Kind.CONTINUOUS, unit, normal, low, high, precision, short=name)
        for name, (unit, normal, low, high, precision, _desc) in _YAIB_DYNAMIC.items()
    )
    static = (
        Variable("age", Kind.CONTINUOUS, *_YAIB_STATIC["age"], short="age"),
        Variable(
            "sex",
            Kind.BINARY,
            *_YAIB_STATIC["sex"],
            levels=(0.0, 1.0),
            level_labels=("Female", "Male"),
            short="sex",
        ),
        Variable("height", Kind.CONTINUOUS, *_YAIB_STATIC["height"], short="height"),
        Variable("weight", Kind.CONTINUOUS, *_YAIB_STATIC["weight"], short="weight"),
    )
    return Schema(name="yaib", variables=variables, static=static)


def yaib_descriptions() -> dict[str, str]:
    """Plain-language meaning of each dynamic concept name."""
    return {name: spec[-1] for name, spec in _YAIB_DYNAMIC.items()}
