"""Detectors of poisoned training stays and the evaluation of defences built on them.

Every detector returns one suspicion score per training stay (higher = more suspicious); see
`ehrbackdoor.defences.base`. `make_defence(name, **params)` builds one by registry name;
`ehrbackdoor.defences.evaluate` turns scores into detection metrics and mitigation results;
`ehrbackdoor.defences.distribution` holds the poisoned-vs-clean distribution tests of the stealth
table.

| name | family | what it looks at |
| --- | --- | --- |
| isolation-forest, lof | data | window statistics |
| isolation-forest-mask, lof-mask | data | hourly observation masks |
| imputation-consistency | data | hourly grid cells its raw events and masks do not imply |
| range-check | data | implausible values (extremeness, range bounds, precision) |
| mask-rarity | data | likelihood of the mask under a model of normal missingness |
| mask-duplicates | data | other stays sharing (nearly) the same hourly mask: a copied pattern |
| two-sample | data | cross-fitted classifier two-sample test of training vs reference stays, per label |
| spectral, activation-clustering | model | the victim's penultimate representation |
| strip | model | prediction entropy under superimposition with clean stays |
| perfect, random | reference | oracle bounds (not deployable) |
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ehrbackdoor.base import Registry
from ehrbackdoor.defences.activation_clustering import ActivationClusteringDetector
from ehrbackdoor.defences.base import FAMILIES, Detector
from ehrbackdoor.defences.imputation_consistency import ImputationConsistencyDetector
from ehrbackdoor.defences.isolation import (
    IsolationForestDetector,
    LocalOutlierFactorDetector,
    MaskIsolationForestDetector,
    MaskLocalOutlierFactorDetector,
)
from ehrbackdoor.defences.mask_duplicates import MaskDuplicatesDetector
from ehrbackdoor.defences.mask_rarity import MaskRarityDetector
from ehrbackdoor.defences.range_check import RangeCheckDetector
from ehrbackdoor.defences.reference import PerfectFilter, RandomFilter
from ehrbackdoor.defences.spectral import SpectralSignatureDetector
from ehrbackdoor.defences.strip import StripDetector
from ehrbackdoor.defences.two_sample import ClassifierTwoSampleDetector

DEFENCES: Registry[Detector] = Registry(
    "defence",
    (
        IsolationForestDetector,
        MaskIsolationForestDetector,
        LocalOutlierFactorDetector,
        MaskLocalOutlierFactorDetector,
        RangeCheckDetector,
        MaskRarityDetector,
        MaskDuplicatesDetector,
        ImputationConsistencyDetector,
        ClassifierTwoSampleDetector,
        SpectralSignatureDetector,
        ActivationClusteringDetector,
        StripDetector,
        PerfectFilter,
        RandomFilter,
    ),
)


def make_defence(name: str, **params: Any) -> Detector:
    """A new detector by registry name; unknown names or parameters raise ValueError listing the
    valid ones."""
    return DEFENCES.make(name, **params)


def parse_defences(spec: str | Iterable[str]) -> list[str]:
    """Defence names from ``"all"``, a family name (``"data"``, ``"model"``, ``"reference"``) or
    a comma-separated list (entries may mix names and families); order kept, duplicates dropped."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item == "all":
            names = list(DEFENCES)
        elif item in FAMILIES:
            names = [n for n, c in DEFENCES.items() if c.family == item]
        elif item in DEFENCES:
            names = [item]
        else:
            raise ValueError(
                f"unknown defence {item!r}; expected 'all', a family {list(FAMILIES)} or one of "
                f"{sorted(DEFENCES)}"
            )
        out += [n for n in names if n not in out]
    if not out:
        raise ValueError("no defence named; use 'all' or a comma-separated list")
    return out


__all__ = ["DEFENCES", "FAMILIES", "Detector", "make_defence", "parse_defences"]
