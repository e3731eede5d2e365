"""What a config will cost before it runs (`ehrbackdoor run CONFIG --dry-run`).

The plan (cells and the shared steps they need) is expanded exactly as a run would; each step is
priced from a small table of measured per-step costs (`resources/step_costs.json`: seconds per
1,000 stays, and for victims that train in epochs seconds per 1,000 training stays per epoch run;
bytes per stay written), scaled by the config's number of stays and expected epochs. Victims are
priced per preset where the table has one (`"mlp@paper"`), since a preset changes the network.
Expected epochs are `max_epochs` times the share of them fits were measured to run under that
protocol (early stopping ends honest fits early). The table is fitted with
`benchmarks/step_costs.py` on finished run directories and checked on held-out ones; it ships with
the package so an estimate needs no data and writes nothing. An estimate, not a promise: other load
on the machine and a data cache change the real time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ehrbackdoor.experiments.config import ExperimentConfig
from ehrbackdoor.experiments.plan import Plan, expand

COSTS_FILE = "step_costs.json"
#: Stays assumed for a data path whose size cannot be read cheaply.
DEFAULT_STAYS = 4000


def load_costs(path: str | Path | None = None) -> dict[str, Any]:
    """The per-step cost table (default: the one shipped with the package)."""
    if path is not None:
        return json.loads(Path(path).read_text())
    text = resources.files("ehrbackdoor.experiments").joinpath("resources", COSTS_FILE).read_text()
    return json.loads(text)


@dataclass
class Estimate:
    """Seconds (summed over steps, as on one free core) and bytes a plan will take."""

    n_cells: int
    steps: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)  # per step kind
    disk_bytes: float = 0.0
    stays: dict[str, int] = field(default_factory=dict)  # per data source label
    by_key: dict[str, float] = field(default_factory=dict)  # seconds per step or cell key
    notes: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    def wall_seconds(self, jobs: int) -> float:
        """Wall time with `jobs` parallel steps on as many free cores: the work shared out,
        plus the table's measured loss of parallel efficiency."""
        return self.total_seconds / max(1, jobs) * (1.0 if jobs <= 1 else self.parallel_loss)

    parallel_loss: float = 1.0


def count_stays(spec) -> tuple[int, bool]:
    """(number of stays, whether it is exact) of a data source, without reading the data."""
    if spec.synthetic is not None:
        return int(spec.synthetic.stays), True
    p = Path(spec.path)
    try:
        if p.is_dir():
            n = 0
            for _root, _dirs, files in os.walk(p):
                n += sum(1 for f in files if f.endswith((".txt", ".csv", ".psv")))
                if n > 10_000_000:
                    break
            if n:
                return n, False
    except OSError:
        pass
    return DEFAULT_STAYS, False


def _lin(c: dict[str, float], thousands: float) -> float:
    """A fitted step cost: fixed seconds plus seconds per 1,000 (stays x epoch scale)."""
    return c.get("fixed", 0.0) + c.get("per_1000", 0.0) * thousands


def victim_entry(costs: dict, name: str, preset: str = "tuned") -> dict:
    """The table's entry for a victim under a preset (falling back to the victim, then a guess)."""
    v = costs["victims"]
    return v.get(f"{name}@{preset}") or v.get(name) or v["default"]


def expected_epochs(entry: dict, params: dict, protocol: str) -> float:
    """Epochs a fit is expected to run (1 for victims not trained in epochs): `max_epochs` times
    the measured share run under `protocol` (honest early stopping usually stops well before)."""
    if "default_epochs" not in entry:
        return 1.0
    share = entry.get("epoch_share", {}).get(protocol, 1.0)
    return float(params.get("max_epochs", entry["default_epochs"])) * share


def _victim_cost(costs: dict, b: Any, preset: str, n_train: float, baseline: bool = False) -> float:
    v = victim_entry(costs, b.victim, preset)
    fit = v.get("baseline", v["train"]) if baseline else v["train"]
    return _lin(fit, n_train / 1000 * expected_epochs(v, b.params, b.protocol))


def estimate(config: ExperimentConfig, costs: dict[str, Any] | None = None) -> Estimate:
    """Price every step of `config`'s plan (as run from an empty run directory)."""
    costs = costs or load_costs()
    plan: Plan = expand(config)
    est = Estimate(
        n_cells=len(plan.cells),
        steps={
            "data": len(plan.data),
            "trigger": len(plan.triggers),
            "poison": len(plan.poison),
            "baseline": len(plan.baselines),
            "scores": len(plan.scores),
        },
        parallel_loss=float(costs.get("parallel_loss", 1.0)),
    )

    def add(kind: str, seconds: float, key: str = "") -> None:
        est.seconds[kind] = est.seconds.get(kind, 0.0) + seconds
        est.by_key[key] = est.by_key.get(key, 0.0) + seconds

    sizes = {}
    for key, step in plan.data.items():
        n, exact = count_stays(step.spec)
        est.stays[step.label] = n
        if not exact:
            est.notes.append(f"{step.label}: about {n} stays (counted files, not read)")
        fr = list(step.spec.split.fractions) if step.spec.split else [0.7, 0.15, 0.15]
        sizes[key] = (n, n * fr[0], n * (1 - fr[0]) / 2)
        kind = "synthetic" if step.spec.synthetic is not None else "path"
        per = costs["data"].get(kind)
        if per is None:
            est.notes.append(f"{step.label}: reading the files is not priced (not measured)")
        add("data", _lin(per or {}, n / 1000), key)
        est.disk_bytes += costs["disk"]["data_per_stay"] * n
    for t in plan.triggers.values():
        fit = costs["triggers"].get(t.trigger, costs["triggers"]["default"])
        add("trigger", _lin(fit, sizes[t.data_key][1] / 1000), t.key)
    for p in plan.poison.values():
        n = sizes[p.data_key][0]
        add("poison", _lin(costs["poison"], n / 1000), p.key)
        est.disk_bytes += costs["disk"]["poison_per_stay"] * n
    preset = {c.baseline_key: c.victim_preset for c in plan.cells}
    for name, pre in dict.fromkeys((c.victim, c.victim_preset) for c in plan.cells):
        if not victim_entry(costs, name, pre).get("measured"):
            est.notes.append(f"{name} ({pre}): training cost not measured here; a rough guess")
    for b in plan.baselines.values():
        _, n_train, n_eval = sizes[b.data_key]
        cost = _victim_cost(costs, b, preset.get(b.key, "tuned"), n_train, baseline=True)
        add("baseline", cost, b.key)
    for s in plan.scores.values():
        per = _lin(costs["defences"]["score"], sizes[s.data_key][0] / 1000)
        add("scores", per * len(s.defences), s.key)
    for c in plan.cells:
        n, n_train, n_eval = sizes[c.data_key]
        train = _victim_cost(costs, plan.baselines[c.baseline_key], c.victim_preset, n_train)
        cost = train + _lin(costs["cell"], (n_train + 2 * n_eval) / 1000)
        if c.defence and c.defence.get("mitigation", True):  # retrains once per defence
            cost += train * len(c.defence.get("names", [])) * costs["defences"]["retrain_share"]
        add("cell", cost, c.key)
        est.disk_bytes += costs["disk"]["cell_bytes"]
    return est


def describe(est: Estimate, jobs: int) -> str:
    """A few lines for people: what will run, and about how long and how much disk."""

    def dur(s: float) -> str:
        if s < 90:
            return f"{s:.0f} s"
        if s < 5400:
            return f"{s / 60:.1f} min"
        return f"{s / 3600:.1f} h"

    lines = [
        f"{est.n_cells} cells; shared steps: "
        + ", ".join(f"{n} {k}" for k, n in est.steps.items() if n),
        "data: " + ", ".join(f"{k} ({v} stays)" for k, v in est.stays.items()),
        "estimated compute per step kind: "
        + ", ".join(f"{k} {dur(v)}" for k, v in est.seconds.items() if v > 0),
        f"estimated time: {dur(est.total_seconds)} on one core, about "
        f"{dur(est.wall_seconds(jobs))} with {jobs} parallel steps; disk about "
        f"{_size(est.disk_bytes)}",
    ]
    lines += [f"note: {n}" for n in est.notes]
    lines.append("nothing was run or written (dry run)")
    return "\n".join(lines) + "\n"


def _size(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if b < 1000 or unit == "GB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1000
    return f"{b:.1f} GB"  # pragma: no cover
