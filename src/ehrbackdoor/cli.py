"""Command-line interface: a thin layer over the documented Python API.

Every command parses its options, calls one library function and prints or writes what it returns.
Errors in user input are shown as one clear message (exit code 2), not a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from ehrbackdoor.data.errors import DataFormatError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Backdoor attacks on machine-learning models of electronic health records.",
)
data_app = typer.Typer(no_args_is_help=True, help="Synthesise, fetch, inspect and export data.")
app.add_typer(data_app, name="data")

err = Console(stderr=True)
F = TypeVar("F", bound=Callable)


def _print_error(msg: str) -> None:
    """One red 'error:' prefix; the message itself is printed literally (no markup)."""
    err.print(Text.assemble(("error: ", "bold red"), msg), soft_wrap=True, highlight=False)


def friendly_errors(fn: F) -> F:
    """Turn input errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DataFormatError, ValueError, KeyError, FileNotFoundError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            _print_error(msg)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ data
@data_app.command("synth")
@friendly_errors
def data_synth(
    out: Annotated[Path, typer.Option(help="Directory to write (MIMIC-III benchmark format).")],
    stays: Annotated[int, typer.Option(min=10, help="Number of ICU stays.")] = 2000,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed writes the same files.")
    ] = 0,
) -> None:
    """Write a synthetic cohort in the MIMIC-III in-hospital-mortality benchmark layout."""
    from ehrbackdoor.data.load import load_cohort
    from ehrbackdoor.data.synthetic import generate_synthetic

    path = generate_synthetic(out, n_stays=stays, seed=seed, progress=True)
    s = load_cohort(path).summary()
    typer.echo(
        f"wrote {s['n_stays']} stays ({s['n_positive']} deaths, {s['n_events']} events, "
        f"hourly-grid missing rate {s['grid_missing_rate']:.2f}) to {path}"
    )


@data_app.command("fetch")
@friendly_errors
def data_fetch(
    source: Annotated[str, typer.Argument(help="Data set to fetch: physionet2012.")],
    out: Annotated[Path, typer.Option(help="Directory to download and extract into.")],
    sets: Annotated[str, typer.Option(help="Comma-separated challenge sets.")] = "a,b,c",
    base_url: Annotated[str | None, typer.Option(help="Mirror base URL.")] = None,
) -> None:
    """Download a public data set, verify its SHA-256 checksums and extract it safely."""
    from ehrbackdoor.data.fetch import DEFAULT_URL, FetchError, fetch_physionet2012

    if source != "physionet2012":
        raise ValueError(f"unknown source {source!r}; available: physionet2012")
    try:
        path = fetch_physionet2012(
            out,
            sets=[s.strip() for s in sets.split(",") if s.strip()],
            base_url=base_url or DEFAULT_URL,
        )
    except FetchError as e:
        _print_error(str(e))
        raise typer.Exit(1) from None
    typer.echo(f"PhysioNet 2012 data ready in {path}")


@data_app.command("info")
@friendly_errors
def data_info(
    path: Annotated[Path, typer.Argument(help="Data directory or cohort file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the stratified split reported.")] = 0,
) -> None:
    """Summarise a data source: stays, deaths, events, missingness, split sizes, cleaning."""
    from ehrbackdoor.data.info import data_info as compute_info

    info = compute_info(path, seed=seed)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from ehrbackdoor.data.info import render_info

    Console().print(render_info(info))


@data_app.command("export")
@friendly_errors
def data_export(
    path: Annotated[Path, typer.Argument(help="Data directory or cohort file.")],
    out: Annotated[Path, typer.Option(help="Output .npz file.")],
    representation: Annotated[str, typer.Option(help="grid or features.")] = "grid",
    layout: Annotated[str, typer.Option(help="Grid layout: ordinal or benchmark.")] = "ordinal",
    impute: Annotated[str, typer.Option(help="Grid imputation: previous, normal, zero.")] = (
        "previous"
    ),
) -> None:
    """Write the preprocessed arrays of every stay: X, y, stay_id, columns."""
    from ehrbackdoor.data.export import export_arrays

    n, shape = export_arrays(path, out, representation=representation, layout=layout, impute=impute)
    typer.echo(f"wrote X {shape} for {n} stays to {out}")


# ----------------------------------------------------------------------------------------- train
@app.command("train")
@friendly_errors
def train(
    data: Annotated[Path, typer.Option(help="Training data (directory or cohort file).")],
    model: Annotated[str, typer.Option(help="Victim: lr, mlp, lstm, gru, grud, gbdt.")],
    out: Annotated[Path, typer.Option(help="Output directory (metrics.json, model/).")],
    test_data: Annotated[Path | None, typer.Option(help="Separate test data.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the victim's initialisation.")] = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 0,
    split_file: Annotated[Path | None, typer.Option(help="Reuse a saved splits.json.")] = None,
    bootstrap: Annotated[int, typer.Option(min=1, help="Bootstrap resamples for CIs.")] = 10_000,
) -> None:
    """Train one victim on clean data and write DIR/metrics.json plus the saved model."""
    from ehrbackdoor.pipeline import train_victim

    with _epoch_progress(model) as progress:
        result = train_victim(
            data,
            model,
            seed=seed,
            out=out,
            test_data=test_data,
            split_file=split_file,
            split_seed=split_seed,
            n_bootstrap=bootstrap,
            progress=progress,
        )
    t = result["test"]
    typer.echo(
        f"{model}: test AUROC {t['auroc']:.3f} [{t['auroc_ci'][0]:.3f}, {t['auroc_ci'][1]:.3f}], "
        f"AUPRC {t['auprc']:.3f} [{t['auprc_ci'][0]:.3f}, {t['auprc_ci'][1]:.3f}] "
        f"({result['train_seconds']:.1f} s); wrote {out / 'metrics.json'}"
    )


class _epoch_progress:
    """A rich progress bar fed by a victim's (epoch, validation AUPRC) callback."""

    def __init__(self, label: str) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._p = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self._label = label

    def __enter__(self):
        self._p.start()
        task = self._p.add_task(f"{self._label}: preparing data", total=None)

        def update(epoch: int, val_auprc: float) -> None:
            self._p.update(
                task, description=f"{self._label}: epoch {epoch}, val AUPRC {val_auprc:.3f}"
            )

        return update

    def __exit__(self, *exc) -> None:
        self._p.stop()


# ---------------------------------------------------------------------------------------- attack
VALUE_ATTACKS = ("temporal", "white-noise", "full-cov")


def trigger_params_from_options(attack: str, **opts) -> dict:
    """The constructor parameters of a trigger family picked out of the CLI options."""
    from ehrbackdoor.attacks import TRIGGERS

    if attack not in TRIGGERS:
        raise ValueError(f"unknown attack {attack!r}; expected one of {sorted(TRIGGERS)}")
    if attack in VALUE_ATTACKS:
        return {"strength": opts["strength"]}
    if attack == "fixed":
        return {"variable": opts["variable"], "value": opts["value"], "hours": opts["hours"]}
    if attack == "missing-vae":
        return {k: opts[k] for k in ("latent_dim", "n_candidates", "epochs") if opts.get(k)}
    if attack == "missing-block":
        return {"hours": opts["hours"]}
    return {}


@app.command("attack")
@friendly_errors
def attack(
    data: Annotated[Path, typer.Option(help="Training data (directory or cohort file).")],
    out: Annotated[Path, typer.Option(help="Output directory (results.json, trigger/, ...).")],
    attack: Annotated[str, typer.Option(help="Trigger family.")] = "temporal",
    strength: Annotated[float, typer.Option(help="Mahalanobis distance of value triggers.")] = 2.0,
    rate: Annotated[float, typer.Option(help="Share of training stays poisoned.")] = 0.02,
    target: Annotated[int, typer.Option(help="1 false alarm, 0 missed detection.")] = 1,
    apply: Annotated[
        str, typer.Option(help="observed/all (value), delete/exact (missing; observed = delete).")
    ] = "observed",
    selection: Annotated[str, typer.Option(help="non-target or any.")] = "non-target",
    models: Annotated[str, typer.Option(help="Comma-separated victims.")] = "lr,mlp,lstm,gru",
    seed: Annotated[int, typer.Option(help="Seed of trigger, poisoning and victims.")] = 0,
    test_data: Annotated[Path | None, typer.Option(help="Separate test data.")] = None,
    split_seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 0,
    bootstrap: Annotated[int, typer.Option(min=1, help="Bootstrap resamples for ASR CI.")] = 1000,
    variable: Annotated[str, typer.Option(help="fixed: variable to set.")] = "HR",
    value: Annotated[float | None, typer.Option(help="fixed: value (default 95th pct).")] = None,
    hours: Annotated[int, typer.Option(help="fixed / missing-block: last k hours.")] = 6,
    latent_dim: Annotated[int | None, typer.Option(help="missing-vae: latent size.")] = None,
    n_candidates: Annotated[
        int | None, typer.Option(help="missing-vae: patterns sampled to choose from.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="missing-vae: max VAE epochs.")] = None,
) -> None:
    """Poison the training data once, train every victim on it and report attack success.

    Value triggers (temporal, white-noise, full-cov, fixed) apply to `observed` values or `all`
    cells; missing-value triggers (missing-vae, missing-random, missing-block, missing-real)
    `delete` observations or make the mask `exact`.
    """
    from ehrbackdoor.pipeline import AttackConfig, run_attack

    params = trigger_params_from_options(
        attack,
        strength=strength,
        variable=variable,
        value=value,
        hours=hours,
        latent_dim=latent_dim,
        n_candidates=n_candidates,
        epochs=epochs,
    )
    config = AttackConfig(attack, target, rate, apply, selection, seed, params)
    names = [m.strip() for m in models.split(",") if m.strip()]
    with err.status("starting") as status:
        result = run_attack(
            config,
            names,
            data,
            out=out,
            test_data=test_data,
            split_seed=split_seed,
            n_bootstrap=bootstrap,
            on_step=lambda msg: status.update(msg),
        )
    Console().print(render_attack(result))
    if "stealth" in result:
        st = result["stealth"]
        typer.echo(
            f"stealth: pattern ELBO percentile {st['elbo'].get('pattern_percentile')}, "
            f"mean |missing-rate shift| {st['missing_rate']['mean_abs_shift']:.3f}, "
            f"clean stays carrying the trigger {st['clean_carrier_share']:.3f} "
            "(all measures in results.json under 'stealth')"
        )
    typer.echo(f"wrote {out / 'results.json'}")


def render_attack(result: dict):
    """Terminal table of an attack's results."""
    from rich.table import Table

    a = result["attack"]
    t = Table(
        title=f"{a['attack']} attack, target {a['target']}, rate {a['rate']}, "
        f"{result['n_poisoned']} of {result['n_train']} training stays poisoned"
    )
    for col in (
        "victim",
        "ASR [95% CI]",
        "clean AUROC",
        "baseline AUROC",
        "triggered AUROC",
        "clean AUPRC",
        "triggered AUPRC",
    ):
        t.add_column(col, justify="right")
    for name, m in result["models"].items():
        t.add_row(
            name,
            f"{m['asr']:.3f} [{m['asr_ci'][0]:.3f}, {m['asr_ci'][1]:.3f}]",
            f"{m['clean']['auroc']:.3f}",
            f"{m['clean_baseline']['auroc']:.3f}",
            f"{m['triggered']['auroc']:.3f}",
            f"{m['clean']['auprc']:.3f}",
            f"{m['triggered']['auprc']:.3f}",
        )
    return t


@app.command("audit")
@friendly_errors
def audit(
    data: Annotated[Path, typer.Option(help="Training data (directory or cohort file).")],
    out: Annotated[Path, typer.Option(help="Output directory (audit.json, scores.npz, ...).")],
    attack: Annotated[str, typer.Option(help="Trigger family.")] = "temporal",
    strength: Annotated[float, typer.Option(help="Mahalanobis distance of value triggers.")] = 2.0,
    rate: Annotated[float, typer.Option(help="Share of training stays poisoned.")] = 0.02,
    target: Annotated[int, typer.Option(help="1 false alarm, 0 missed detection.")] = 1,
    apply: Annotated[str, typer.Option(help="observed/all (value), delete/exact (missing).")] = (
        "observed"
    ),
    selection: Annotated[str, typer.Option(help="non-target or any.")] = "non-target",
    models: Annotated[str, typer.Option(help="Comma-separated victims.")] = "lr",
    defences: Annotated[str, typer.Option(help="all, data, model, reference or names.")] = "all",
    k_factor: Annotated[float, typer.Option(help="Remove k = factor x poisoned stays.")] = 1.5,
    seed: Annotated[int, typer.Option(help="Seed of trigger, poisoning, victims, detectors.")] = 0,
    test_data: Annotated[Path | None, typer.Option(help="Separate test data.")] = None,
    split_seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 0,
    variable: Annotated[str, typer.Option(help="fixed: variable to set.")] = "HR",
    value: Annotated[float | None, typer.Option(help="fixed: value (default 95th pct).")] = None,
    hours: Annotated[int, typer.Option(help="fixed/missing-block: last k hours.")] = 6,
) -> None:
    """Poison the training data, run poison detectors, retrain without the flagged stays."""
    from rich.table import Table

    from ehrbackdoor.defences import parse_defences
    from ehrbackdoor.pipeline import AttackConfig
    from ehrbackdoor.pipeline.audit import AUDIT_FILE, audit_rows, run_audit

    params = trigger_params_from_options(
        attack, strength=strength, variable=variable, value=value, hours=hours
    )
    config = AttackConfig(attack, target, rate, apply, selection, seed, params)
    names = [m.strip() for m in models.split(",") if m.strip()]
    with err.status("starting") as status:
        result = run_audit(
            config,
            parse_defences(defences),
            names,
            data,
            out=out,
            k_factor=k_factor,
            test_data=test_data,
            split_seed=split_seed,
            on_step=lambda msg: status.update(msg),
        )
    rows = audit_rows(result)
    t = Table(title=f"poison detection: {attack}, rate {rate}, target {target}")
    cols = list(rows[0]) if rows else []
    for c in cols:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()))
    Console().print(t)
    typer.echo(f"wrote {out / AUDIT_FILE}")


from ehrbackdoor.experiments.commands import register as _register_experiments  # noqa: E402

_register_experiments(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
