"""Whole runs as library calls: prepare data, train one victim, run one attack against victims,
audit an attack with poison detectors.

The CLI commands `train`, `attack` and `audit` are thin wrappers over `train_victim`,
`run_attack` and `run_audit`.
"""

from ehrbackdoor.pipeline.attack import AttackConfig, run_attack
from ehrbackdoor.pipeline.audit import run_audit
from ehrbackdoor.pipeline.prepare import Prepared, prepare_data
from ehrbackdoor.pipeline.train import evaluate_victim, fit_victim, train_victim

__all__ = [
    "AttackConfig",
    "Prepared",
    "evaluate_victim",
    "fit_victim",
    "prepare_data",
    "run_attack",
    "run_audit",
    "train_victim",
]
