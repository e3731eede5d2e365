"""Expand a config into cells and the shared steps they need.

A cell is one (data source, attack setting, victim, seed). Its expensive inputs are shared:

* the clean cohorts of a data source (loaded and split once: `DataStep`),
* the fitted trigger of a (trigger family, parameters, seed): fit once on the clean training stays
  and used by every rate, target and apply mode (`TriggerStep`; a VAE is not cheap),
* the poisoned training cohort and attacked test cohort of an (attack setting, seed), used by every
  victim (`PoisonStep`),
* the clean-trained baseline of a (victim, seed), used by every attack setting (`BaselineStep`).

Every step and cell has a key: a hash of exactly what its result depends on, so a rerun (or a
changed config) recognises finished work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ehrbackdoor.experiments.config import DataSpec, ExperimentConfig, stable_hash


@dataclass(frozen=True)
class DataStep:
    key: str
    spec: DataSpec

    @property
    def label(self) -> str:
        return self.spec.label


@dataclass(frozen=True)
class TriggerStep:
    key: str
    data_key: str
    trigger: str
    params: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class PoisonStep:
    key: str
    data_key: str
    trigger_key: str
    setting: dict[str, Any]  # attack, trigger, target, rate, apply, selection, trigger_params
    seed: int


@dataclass(frozen=True)
class BaselineStep:
    key: str
    data_key: str
    victim: str
    params: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class Cell:
    key: str
    data: str  # data source label
    data_key: str
    poison_key: str
    baseline_key: str
    victim: str
    victim_params: dict[str, Any]
    setting: dict[str, Any]
    seed: int
    bootstrap: int

    def params(self) -> dict[str, Any]:
        """Everything that defines the cell, flat (stored with its row)."""
        return {
            "data": self.data,
            "victim": self.victim,
            "victim_params": self.victim_params,
            **{k: v for k, v in self.setting.items()},
            "seed": self.seed,
            "bootstrap": self.bootstrap,
        }


@dataclass
class Plan:
    cells: list[Cell] = field(default_factory=list)
    data: dict[str, DataStep] = field(default_factory=dict)
    triggers: dict[str, TriggerStep] = field(default_factory=dict)
    poison: dict[str, PoisonStep] = field(default_factory=dict)
    baselines: dict[str, BaselineStep] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.cells]


def expand(config: ExperimentConfig) -> Plan:
    """All cells of a config in a stable order (seed-major, so whole seeds finish early)."""
    plan = Plan()
    settings = [s for a in config.attacks for s in a.settings()]
    for spec in config.data:
        dkey = "d" + stable_hash(spec.identity())
        plan.data[dkey] = DataStep(dkey, spec)
        for seed in config.seeds:
            for setting in settings:
                ident = {k: v for k, v in setting.items() if k != "attack"}
                tident = {"trigger": setting["trigger"], "params": setting["trigger_params"]}
                tkey = "t" + stable_hash({"data": dkey, **tident, "seed": seed})
                plan.triggers.setdefault(
                    tkey,
                    TriggerStep(tkey, dkey, setting["trigger"], setting["trigger_params"], seed),
                )
                pkey = "p" + stable_hash({"data": dkey, **ident, "seed": seed})
                plan.poison.setdefault(pkey, PoisonStep(pkey, dkey, tkey, setting, seed))
                for v in config.victims:
                    params = dict(sorted(v.params.items()))
                    bkey = "b" + stable_hash(
                        {"data": dkey, "victim": v.name, "params": params, "seed": seed}
                    )
                    plan.baselines.setdefault(bkey, BaselineStep(bkey, dkey, v.name, params, seed))
                    ckey = "c" + stable_hash(
                        {"poison": pkey, "baseline": bkey, "bootstrap": config.evaluation.bootstrap}
                    )
                    plan.cells.append(
                        Cell(
                            key=ckey,
                            data=spec.label,
                            data_key=dkey,
                            poison_key=pkey,
                            baseline_key=bkey,
                            victim=v.name,
                            victim_params=params,
                            setting=setting,
                            seed=seed,
                            bootstrap=config.evaluation.bootstrap,
                        )
                    )
    seen: set[str] = set()
    dup = [c.key for c in plan.cells if c.key in seen or seen.add(c.key)]
    if dup:
        raise ValueError(
            f"the config lists the same cell more than once ({len(dup)} duplicates): check for "
            "repeated attack settings"
        )
    return plan
