"""Whole runs as library calls: prepare data, train one victim, run one attack against victims.

The CLI commands `train` and `attack` are thin wrappers over `train_victim` and `run_attack`.
"""

from ehrbackdoor.pipeline.attack import AttackConfig, run_attack
from ehrbackdoor.pipeline.prepare import Prepared, prepare_data
from ehrbackdoor.pipeline.train import evaluate_victim, fit_victim, train_victim

__all__ = [
    "AttackConfig",
    "Prepared",
    "evaluate_victim",
    "fit_victim",
    "prepare_data",
    "run_attack",
    "train_victim",
]
