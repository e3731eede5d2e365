"""`ehrbackdoor attack` and `ehrbackdoor audit`: one attack against victims, with or without
poison detectors. Both take the same threat-model and trigger options (defined once here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ehrbackdoor.cli.common import check_out_dir, friendly_errors, split_names
from ehrbackdoor.cli.progress import step_status
from ehrbackdoor.experiments.tables import fmt_value, wrap

# ------------------------------------------------------------------ shared option definitions
Data = Annotated[Path, typer.Option(help="Training data (directory or cohort file).")]
Attack = Annotated[str, typer.Option(help="Trigger family.")]
Strength = Annotated[float, typer.Option(help="Mahalanobis distance of value triggers.")]
Rate = Annotated[float, typer.Option(help="Share of training stays poisoned (0 < rate < 1).")]
Target = Annotated[int, typer.Option(help="1 false alarm, 0 missed detection.")]
Apply = Annotated[
    str, typer.Option(help="observed/all (value), delete/exact (missing; observed = delete).")
]
Selection = Annotated[str, typer.Option(help="non-target or any.")]
Models = Annotated[str, typer.Option(help="Comma-separated victims.")]
Seed = Annotated[
    int, typer.Option(min=0, help="Seed of trigger, poisoning, victims (and detectors).")
]
TestData = Annotated[Path | None, typer.Option(help="Separate test data.")]
SplitSeed = Annotated[int, typer.Option(min=0, help="Seed of the stratified split.")]
Variable = Annotated[str, typer.Option(help="fixed: variable to set.")]
Value = Annotated[float | None, typer.Option(help="fixed: value (default 95th pct).")]
Hours = Annotated[int, typer.Option(min=1, help="fixed / missing-block: last k hours.")]
LatentDim = Annotated[int | None, typer.Option(min=1, help="missing-vae: latent size.")]
Candidates = Annotated[
    int | None, typer.Option(min=1, help="missing-vae: patterns sampled to choose from.")
]
Epochs = Annotated[int | None, typer.Option(min=1, help="missing-vae: max VAE epochs.")]
Space = Annotated[
    str, typer.Option(help="raw (edit raw events) or grid (add to the victims' hourly bins).")
]
Protocol = Annotated[
    str, typer.Option(help="honest (clean validation) or paper (threshold 0.5, paper's rule).")
]
VictimPreset = Annotated[str, typer.Option(help="Victim hyperparameters: tuned or paper.")]

VALUE_ATTACKS = ("temporal", "white-noise", "full-cov")
# The CLI options that only some trigger families read (`trigger_params_from_options`).
TRIGGER_OPTIONS = ("strength", "variable", "value", "hours", "latent_dim", "n_candidates", "epochs")
# The options `attack` and `audit` pass to `attack_config` by name (besides the victim names).
CONFIG_OPTIONS = (
    "attack",
    "target",
    "rate",
    "apply",
    "selection",
    "seed",
    "space",
    "protocol",
    "victim_preset",
    *TRIGGER_OPTIONS,
)


def trigger_params_from_options(attack: str, **opts) -> dict:
    """The constructor parameters of a trigger family picked out of the CLI options."""
    from ehrbackdoor.experiments.config.registry import trigger_names

    names = trigger_names()
    if attack not in names:
        raise ValueError(f"--attack: unknown attack {attack!r}; allowed: {', '.join(names)}")
    if attack in VALUE_ATTACKS:
        return {"strength": opts["strength"]}
    if attack == "fixed":
        return {"variable": opts["variable"], "value": opts["value"], "hours": opts["hours"]}
    if attack == "missing-vae":
        return {k: opts[k] for k in ("latent_dim", "n_candidates", "epochs") if opts.get(k)}
    if attack == "missing-block":
        return {"hours": opts["hours"]}
    return {}


def attack_config(
    attack: str,
    target: int,
    rate: float,
    apply: str,
    selection: str,
    seed: int,
    models: list[str],
    space: str = "raw",
    protocol: str = "honest",
    victim_preset: str = "tuned",
    **trigger_opts,
):
    """Build and check an attack request before any data is read: the threat model (space
    included), the protocol, the victim preset, the apply mode of this trigger, the trigger's
    parameters and every victim name."""
    from ehrbackdoor.checks import check_float
    from ehrbackdoor.experiments.config.registry import (
        apply_modes,
        preset_names,
        protocol_names,
        space_names,
    )
    from ehrbackdoor.pipeline import AttackConfig
    from ehrbackdoor.victims import make_victim

    for opt, value, allowed in (
        ("--space", space, space_names()),
        ("--protocol", protocol, protocol_names()),
        ("--victim-preset", victim_preset, preset_names()),
    ):
        if value not in allowed:
            raise ValueError(f"{opt} {value!r} is not allowed; allowed: {', '.join(allowed)}")
    if trigger_opts.get("value") is not None:
        check_float("--value", trigger_opts["value"])
    params = trigger_params_from_options(attack, **trigger_opts)
    config = AttackConfig(
        attack, target, rate, apply, selection, seed, params, space=space, protocol=protocol
    )
    modes = apply_modes(attack)
    if apply not in modes:
        raise ValueError(
            f"--apply {apply!r} is not allowed for {attack}; allowed: {', '.join(modes)}"
        )
    config.threat()
    trigger = config.make_trigger()
    if space == "grid" and getattr(trigger, "grid_pattern", None) is None:
        raise ValueError(
            f"--space grid: the {attack} trigger has no grid-space form; use temporal, "
            "white-noise or full-cov, or --space raw"
        )
    if not models:
        raise ValueError("--models: name at least one victim")
    for name in models:
        make_victim(name, seed=seed, preset=victim_preset)
    return config


def request_from_options(options: dict[str, Any]) -> tuple[list[str], Any]:
    """The victim names and the checked `AttackConfig` from the options `attack` and `audit`
    share (their parameters by name), so both commands read them the same way."""
    names = split_names(options["models"])
    return names, attack_config(models=names, **{k: options[k] for k in CONFIG_OPTIONS})


@friendly_errors
def attack(
    data: Data,
    out: Annotated[Path, typer.Option(help="Output directory (results.json, trigger/, ...).")],
    attack: Attack = "temporal",
    strength: Strength = 2.0,
    rate: Rate = 0.02,
    target: Target = 1,
    apply: Apply = "observed",
    selection: Selection = "non-target",
    models: Models = "lr,mlp,lstm,gru",
    seed: Seed = 0,
    test_data: TestData = None,
    split_seed: SplitSeed = 0,
    variable: Variable = "HR",
    value: Value = None,
    hours: Hours = 6,
    latent_dim: LatentDim = None,
    n_candidates: Candidates = None,
    epochs: Epochs = None,
    bootstrap: Annotated[int, typer.Option(min=1, help="Bootstrap resamples for ASR CI.")] = 1000,
    space: Space = "raw",
    protocol: Protocol = "honest",
    victim_preset: VictimPreset = "tuned",
) -> None:
    """Poison the training data once, train every victim on it and report attack success.

    Value triggers (temporal, white-noise, full-cov, fixed) apply to `observed` values or `all`
    cells; missing-value triggers (missing-vae, missing-random, missing-block, missing-real)
    `delete` observations or make the mask `exact`.
    """
    options = dict(locals())  # the shared threat-model and trigger options
    from ehrbackdoor.pipeline import run_attack

    names, config = request_from_options(options)
    check_out_dir(out)
    with step_status() as on_step:
        result = run_attack(
            config,
            names,
            data,
            out=out,
            test_data=test_data,
            split_seed=split_seed,
            n_bootstrap=bootstrap,
            on_step=on_step,
            victim_preset=victim_preset,
        )
    typer.echo(render_attack(result), nl=False)
    if "stealth" in result:
        st = result["stealth"]
        typer.echo(
            wrap(
                f"stealth: pattern ELBO percentile {fmt_value(st['elbo'].get('pattern_percentile'))}, "
                f"mean |missing-rate shift| {st['missing_rate']['mean_abs_shift']:.3f}, "
                f"clean stays carrying the trigger {st['clean_carrier_share']:.3f} "
                "(all measures in results.json under 'stealth')"
            )
        )
    typer.echo(f"wrote {out / 'results.json'}")


def render_attack(result: dict) -> str:
    """Terminal tables of an attack's results (at most the terminal's width)."""
    from ehrbackdoor.experiments.readable import attack_text

    return attack_text(result)


@friendly_errors
def audit(
    data: Data,
    out: Annotated[Path, typer.Option(help="Output directory (audit.json, scores.npz, ...).")],
    attack: Attack = "temporal",
    strength: Strength = 2.0,
    rate: Rate = 0.02,
    target: Target = 1,
    apply: Apply = "observed",
    selection: Selection = "non-target",
    models: Models = "lr",
    seed: Seed = 0,
    test_data: TestData = None,
    split_seed: SplitSeed = 0,
    variable: Variable = "HR",
    value: Value = None,
    hours: Hours = 6,
    latent_dim: LatentDim = None,
    n_candidates: Candidates = None,
    epochs: Epochs = None,
    defences: Annotated[str, typer.Option(help="all, data, model, reference or names.")] = "all",
    k_factor: Annotated[float, typer.Option(help="Remove k = factor x poisoned stays.")] = 1.5,
    space: Space = "raw",
    protocol: Protocol = "honest",
    victim_preset: VictimPreset = "tuned",
    detection_baseline: Annotated[
        bool,
        typer.Option(
            "--detection-baseline",
            help="Also score the poisoned stays without their trigger (labels alone).",
        ),
    ] = False,
) -> None:
    """Poison the training data, run poison detectors, retrain without the flagged stays."""
    options = dict(locals())  # the shared threat-model and trigger options
    from ehrbackdoor.defences import parse_defences
    from ehrbackdoor.pipeline.audit import AUDIT_FILE, run_audit

    names, config = request_from_options(options)
    from ehrbackdoor.checks import check_float

    check_float("--k-factor", k_factor, 0.0, low_open=True)
    chosen = parse_defences(defences)
    check_out_dir(out)
    with step_status() as on_step:
        result = run_audit(
            config,
            chosen,
            names,
            data,
            out=out,
            k_factor=k_factor,
            detection_baseline=detection_baseline,
            test_data=test_data,
            split_seed=split_seed,
            on_step=on_step,
            victim_preset=victim_preset,
        )
    from ehrbackdoor.experiments.readable import audit_text

    typer.echo(audit_text(result), nl=False)
    if "space_note" in result:
        typer.echo(f"note: {result['space_note']}")
    typer.echo(f"wrote {out / AUDIT_FILE}")


def register(app: typer.Typer) -> None:
    app.command("attack")(attack)
    app.command("audit")(audit)
