"""Whole runs as library calls: prepare data, train one victim, run one attack against victims,
audit an attack with poison detectors.

The CLI commands `train`, `attack` and `audit` are thin wrappers over `train_victim`,
`run_attack` and `run_audit`; those and the experiment runner evaluate every attack through one
function, `run_cell` (`ehrbackdoor.pipeline.cell`), and measure the trigger's fidelity on the
poisoned training stays through one function, `trigger_fidelity` (`ehrbackdoor.pipeline.fidelity`).
"""

from ehrbackdoor.pipeline.attack import AttackConfig, run_attack
from ehrbackdoor.pipeline.audit import run_audit
from ehrbackdoor.pipeline.cell import DefenceSpec, run_cell
from ehrbackdoor.pipeline.fidelity import trigger_fidelity
from ehrbackdoor.pipeline.prepare import Prepared, prepare_data
from ehrbackdoor.pipeline.train import evaluate_victim, fit_victim, train_victim

__all__ = [
    "AttackConfig",
    "DefenceSpec",
    "Prepared",
    "evaluate_victim",
    "fit_victim",
    "prepare_data",
    "run_attack",
    "run_audit",
    "run_cell",
    "train_victim",
    "trigger_fidelity",
]
