"""Expand a config into cells and the shared steps they need.

A cell is one (data source, attack setting, victim, seed). Its expensive inputs are shared:

* the clean cohorts of a data source (loaded and split once: `DataStep`),
* the fitted trigger of a (trigger family, parameters, seed): fit once on the clean training stays
  and used by every rate, target and apply mode (`TriggerStep`; a VAE is not cheap),
* the poisoned training cohort and attacked test cohort of an (attack setting, seed), used by every
  victim (`PoisonStep`),
* the clean-trained baseline of a (victim, parameters, seed), used by every attack setting
  (`BaselineStep`); its parameters are the cell's (preset, and in grid space hourly window
  features for window-feature victims) and, under the paper protocol, its selection is the
  poisoned victim's: lr / mlp baselines then depend on the trigger (their epoch is chosen by
  attack success on triggered validation stays, `ehrbackdoor.pipeline.protocols`), lstm / gru
  baselines only on the protocol,
* with `defences`, the suspicion scores of the data-level detectors on a poisoned training cohort
  (`ScoreStep`), used by every victim. Model-level detectors inspect the cell's own poisoned victim
  and mitigation retrains that victim once per defence, so both run inside the cell.

Every step and cell has a key: a hash of exactly what its result depends on, so a rerun (or a
changed config) recognises finished work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ehrbackdoor.experiments.config import DataSpec, ExperimentConfig, stable_hash

if TYPE_CHECKING:
    from ehrbackdoor.pipeline.cell import AttackConfig, DefenceSpec


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


class _HasAttack:
    """Steps that know an attack setting and seed."""

    setting: dict[str, Any] | None
    seed: int

    @property
    def attack_config(self) -> AttackConfig:
        from ehrbackdoor.pipeline.cell import AttackConfig

        return AttackConfig.from_setting(self.setting or {}, self.seed)


@dataclass(frozen=True)
class PoisonStep(_HasAttack):
    key: str
    data_key: str
    trigger_key: str
    # attack, trigger, target, rate, apply, selection, [space, protocol], trigger_params
    setting: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class BaselineStep(_HasAttack):
    key: str
    data_key: str
    victim: str
    params: dict[str, Any]  # complete constructor parameters (preset included)
    seed: int
    protocol: str = "honest"
    #: Under the paper protocol for lr / mlp: the trigger and setting of the triggered
    #: validation stays that select the baseline's epoch.
    trigger_key: str | None = None
    setting: dict[str, Any] | None = None


@dataclass(frozen=True)
class ScoreStep:
    key: str
    data_key: str
    poison_key: str
    defences: dict[str, dict[str, Any]]  # data-level detector name -> constructor parameters
    seed: int
    baseline: bool = False  # also score the poisoned stays without their trigger


@dataclass(frozen=True)
class Cell(_HasAttack):
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
    defence: dict[str, Any] | None = None  # names, params, k_factor (ExperimentConfig.defence_spec)
    scores_key: str | None = None
    victim_preset: str = "tuned"
    trigger_key: str | None = None

    @property
    def defence_spec(self) -> DefenceSpec | None:
        if self.defence is None:
            return None
        from ehrbackdoor.pipeline.cell import DefenceSpec

        return DefenceSpec.from_dict(self.defence)

    def params(self) -> dict[str, Any]:
        """Everything that defines the cell, flat (stored with its row)."""
        return {
            "data": self.data,
            "victim": self.victim,
            "victim_params": self.victim_params,
            **{k: v for k, v in self.setting.items()},
            **({"victim_preset": self.victim_preset} if self.victim_preset != "tuned" else {}),
            "seed": self.seed,
            "bootstrap": self.bootstrap,
        }


Step = DataStep | TriggerStep | PoisonStep | BaselineStep | ScoreStep | Cell


@dataclass(frozen=True)
class Job:
    """One step to run, as it travels to a worker (pickled for the process pool and Ray): the
    typed step of the plan and the run directory its artifacts live in."""

    run_dir: str
    step: Step

    @property
    def key(self) -> str:
        return self.step.key

    @property
    def kind(self) -> str:
        return STEP_KINDS[type(self.step)]


STEP_KINDS: dict[type, str] = {
    DataStep: "data",
    TriggerStep: "trigger",
    PoisonStep: "poison",
    BaselineStep: "baseline",
    ScoreStep: "scores",
    Cell: "cell",
}


@dataclass
class Plan:
    cells: list[Cell] = field(default_factory=list)
    data: dict[str, DataStep] = field(default_factory=dict)
    triggers: dict[str, TriggerStep] = field(default_factory=dict)
    poison: dict[str, PoisonStep] = field(default_factory=dict)
    baselines: dict[str, BaselineStep] = field(default_factory=dict)
    scores: dict[str, ScoreStep] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.cells]

    def step(self, kind: str, key: str) -> Step:
        """The shared step `key` of a kind ("data", "trigger", "poison", "baseline", "scores")."""
        table = {
            "data": self.data,
            "trigger": self.triggers,
            "poison": self.poison,
            "baseline": self.baselines,
            "scores": self.scores,
        }
        return table[kind][key]


def expand(config: ExperimentConfig) -> Plan:
    """All cells of a config in a stable order (seed-major, so whole seeds finish early)."""
    plan = Plan()
    defence = config.defence_spec()
    data_level = _data_level(defence)
    settings = [(a, s) for a in config.attacks for s in a.settings()]
    for spec in config.data:
        dkey = "d" + stable_hash(spec.identity())
        plan.data[dkey] = DataStep(dkey, spec)
        for seed in config.seeds:
            for attack, setting in settings:
                tident = {"trigger": setting["trigger"], "params": setting["trigger_params"]}
                tkey = "t" + stable_hash({"data": dkey, **tident, "seed": seed})
                plan.triggers.setdefault(
                    tkey,
                    TriggerStep(tkey, dkey, setting["trigger"], setting["trigger_params"], seed),
                )
                # the protocol selects victims; the poisoned cohort does not depend on it
                ident = {k: v for k, v in setting.items() if k not in ("attack", "protocol")}
                pkey = "p" + stable_hash({"data": dkey, **ident, "seed": seed})
                plan.poison.setdefault(pkey, PoisonStep(pkey, dkey, tkey, setting, seed))
                skey = None
                if data_level:
                    base = bool(defence.get("baseline"))
                    sident: dict[str, Any] = {"poison": pkey, "defences": data_level}
                    if base:  # keys of runs without the baseline stay as they were
                        sident["baseline"] = True
                    skey = "s" + stable_hash(sident)
                    plan.scores.setdefault(
                        skey, ScoreStep(skey, dkey, pkey, data_level, seed, base)
                    )
                for v in config.victims:
                    if not attack.applies_to(v.name):
                        continue
                    bkey = _baseline(plan, config, dkey, tkey, v, setting, seed)
                    cident: dict[str, Any] = {
                        "poison": pkey,
                        "baseline": bkey,
                        "bootstrap": config.evaluation.bootstrap,
                    }
                    if defence is not None:  # keys of runs without defences stay as they were
                        cident["defence"] = defence
                    if setting.get("protocol", "honest") != "honest":
                        cident["protocol"] = setting["protocol"]
                    ckey = "c" + stable_hash(cident)
                    plan.cells.append(
                        Cell(
                            key=ckey,
                            data=spec.label,
                            data_key=dkey,
                            poison_key=pkey,
                            baseline_key=bkey,
                            victim=v.name,
                            victim_params=dict(sorted(v.params.items())),
                            setting=setting,
                            seed=seed,
                            bootstrap=config.evaluation.bootstrap,
                            defence=defence,
                            scores_key=skey,
                            victim_preset=config.victim_preset,
                            trigger_key=tkey,
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


def _baseline(
    plan: Plan,
    config: ExperimentConfig,
    dkey: str,
    tkey: str,
    victim: Any,
    setting: dict[str, Any],
    seed: int,
) -> str:
    """The key of the clean baseline of one cell (added to the plan once): the cell's complete
    victim parameters and, under the paper protocol, its selection. Configs without the new axes
    keep the keys they always had."""
    from ehrbackdoor.pipeline.protocols import needs_triggered_val, victim_params_for

    params, _ = victim_params_for(
        victim.name, victim.params, config.victim_preset, setting.get("space", "raw")
    )
    params = dict(sorted(params.items()))
    protocol = setting.get("protocol", "honest")
    ident: dict[str, Any] = {"data": dkey, "victim": victim.name, "params": params, "seed": seed}
    trig = trig_setting = None
    if protocol != "honest":
        ident["protocol"] = protocol
    if needs_triggered_val(protocol, victim.name):
        trig, trig_setting = tkey, setting
        ident["triggered"] = {
            "trigger": tkey,
            **{k: setting.get(k) for k in ("target", "apply", "space")},
        }
    bkey = "b" + stable_hash(ident)
    plan.baselines.setdefault(
        bkey,
        BaselineStep(bkey, dkey, victim.name, params, seed, protocol, trig, trig_setting),
    )
    return bkey


def _data_level(defence: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The detectors of a defence spec that score stays without a victim (shared by victims)."""
    if defence is None:
        return {}
    from ehrbackdoor.defences import DEFENCES

    return {n: defence["params"][n] for n in defence["names"] if not DEFENCES[n].needs_victim}
