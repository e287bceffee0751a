"""``medtune queue add|run|status|retry|cancel``, ``medtune sweep`` and ``medtune leaderboard``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from medtune.cli._common import JsonOption, console, json_mode, print_config, split_arguments
from medtune.errors import ConfigError

queue_app = typer.Typer(
    help="Queue experiments and run them unattended: add, run, status, retry, cancel.", no_args_is_help=True
)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="MEDTUNE_STORAGE",
        help="Database URL: sqlite:///path.db (default runs/queue.db) or postgresql://user@host:5432/db.",
        show_default=False,
    ),
]
StudyOption = Annotated[list[str] | None, typer.Option("--study", "-s", help="Only this study (repeatable).")]


def _storage(url: str | None, heartbeat: int | None = None, grace: int | None = None) -> Any:
    from medtune.experiments.storage import GRACE, HEARTBEAT, QueueStorage

    return QueueStorage(url, heartbeat or HEARTBEAT, grace or GRACE)


def _split(arguments: list[str]) -> tuple[list[str], str | None, list[str]]:
    """YAML files, the one DATA argument, and ``key=value`` settings."""
    files, data, settings = split_arguments(arguments, yaml_files=True)
    if len(data) > 1:
        raise ConfigError(f"give at most one DATA argument, got {data}; settings are written key=value")
    for file in files:
        if not Path(file).is_file():
            raise ConfigError(f"configuration file {file} not found")
    return files, (data[0] if data else None), settings


@queue_app.command("add")
def add_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE.yaml... | DATA [KEY=VALUE]...",
            help="YAML files (one experiment each), or DATA, and key=value settings for all.",
        ),
    ],
    study: Annotated[str, typer.Option("--study", "-s", help="Study (group of experiments) to add to.")] = "queue",
    storage: StorageOption = None,
) -> None:
    """Queue experiments: one per YAML file (or one from DATA), with the keys given."""
    from medtune.config.merge import parse_overrides
    from medtune.experiments import add_experiments, experiment_values

    files, data, settings = _split(arguments)
    overrides = parse_overrides(settings)
    if data:
        overrides["data"] = data
    experiments = [experiment_values(f, overrides) for f in files] or [experiment_values(None, overrides)]
    db = _storage(storage)
    ids = add_experiments(db, experiments, study)
    console.print(f"queued {len(ids)} experiment(s) in study {study!r}: ids {_ids(ids)}", highlight=False)
    console.print(f"run them with: medtune queue run{_storage_flag(storage)}", highlight=False)


def sweep_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[segment] [DATA] [KEY=VALUE]...",
            help="DATA, then key=value (fixed), key=a,b,c (swept) or key=LOW..HIGH[:log] (searched).",
        ),
    ] = None,
    search: Annotated[
        int | None,
        typer.Option("--search", help="Queue N trials of a model-based search (Optuna TPE, with pruning)."),
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", "-s", help="Study name (default sweep-1, sweep-2...).")
    ] = None,
    storage: StorageOption = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML file of keys; lists in it are swept too.")
    ] = None,
    show_config: Annotated[
        bool, typer.Option("--print-config", help="Print the fixed and swept keys (YAML) and exit.")
    ] = False,
) -> None:
    """Queue a grid of every combination of the swept values, or N trials of a search.

    Example: medtune sweep data.npz epochs=6 optimizer=adamw,adam,sgd lr=1e-3,1e-2. Segmenters: medtune sweep
    segment IMAGES masks=MASKS loss=dice,jaccard,bce arch=unet,fpn (or task: segment in the YAML).
    """
    from medtune.experiments import add_sweep
    from medtune.experiments.queue import parse_sweep, read_experiment_yaml

    arguments = arguments or []
    segment = bool(arguments) and arguments[0] == "segment" and not Path(arguments[0]).exists()
    files, data, settings = _split(arguments[1:] if segment else arguments)
    files += [str(config_file)] if config_file else []
    if len(files) > 1:
        raise ConfigError(f"a sweep takes one YAML file, got {len(files)}; queue several with `medtune queue add`")
    yaml_base = read_experiment_yaml(files[0]) if files else {}
    if segment or "task=segment" in settings:
        yaml_base["task"] = "segment"
    base, dims = parse_sweep(settings, yaml_base.get("task", "classify"))
    base = {**yaml_base, **base}
    if data:
        base["data"] = data
    if show_config:
        print_config({"fixed": base, "swept": {d.key: d.to_dict() for d in dims}})
    db = _storage(storage)
    name, ids = add_sweep(db, base, dims, study, search)
    what = f"{len(ids)} search trials" if search else f"a grid of {len(ids)} experiments"
    console.print(f"queued {what} in study {name!r}: ids {_ids(ids)}", highlight=False)
    console.print(
        f"run them with: medtune queue run --workers 2{_storage_flag(storage)}; then: medtune leaderboard -s {name}",
        highlight=False,
    )


@queue_app.command("run")
def run_command(
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, max=64, help="Worker processes on this machine.")
    ] = 1,
    study: StudyOption = None,
    forever: Annotated[bool, typer.Option("--forever", help="Keep waiting for new experiments.")] = False,
    heartbeat: Annotated[int, typer.Option("--heartbeat", min=1, help="Seconds between heartbeats.")] = 10,
    grace: Annotated[
        int, typer.Option("--grace", min=2, help="Seconds of silence after which a worker's experiment is taken back.")
    ] = 60,
    name: Annotated[str | None, typer.Option("--name", help="This worker's name in logs.", hidden=True)] = None,
    storage: StorageOption = None,
) -> None:
    """Run queued experiments until none is left (queued, running, finished or failed).

    Start the same command on other machines (with a postgresql:// --storage) to share the work; a worker that
    dies has its experiment taken back after --grace seconds, and it resumes from its last checkpoint.
    """
    db = _storage(storage, heartbeat, grace)  # creates the tables once, before any worker starts
    if workers == 1:
        _run_one(db, study or [], forever, name)
        return
    _run_many(db.url, workers, study or [], forever, heartbeat, grace)


def _run_one(db: Any, studies: list[str], forever: bool, name: str | None) -> None:
    from medtune.experiments.worker import Worker, WorkerOptions, install_sigterm

    install_sigterm()
    options = WorkerOptions(studies=studies, forever=forever)
    if name:
        options.name = name
    worker = Worker(db, options, log=lambda line: print(line, flush=True))
    summary = worker.run()
    parts = [f"{len(v)} {k}" for k, v in vars(summary).items() if v]
    print(f"[{options.name}] done: " + (", ".join(parts) or "nothing was queued"), flush=True)


def _run_many(url: str, workers: int, studies: list[str], forever: bool, heartbeat: int, grace: int) -> None:
    """Start `workers` worker processes (`medtune.experiments.pool`) and wait for all."""
    from medtune.experiments.pool import run_workers

    def announce(pool: Any, gpus: list[str]) -> None:
        placed = f", GPUs {', '.join(gpus)} in turn" if gpus else ""
        pids = [p.pid for p in pool.processes]
        console.print(f"started {workers} workers ({pool.threads} CPU thread(s) each{placed}): pids {pids}")

    codes = run_workers(url, workers, studies, forever, heartbeat, grace, announce)
    bad = [f"w{i + 1} exited {c}" for i, c in enumerate(codes) if c]
    if bad:
        console.print(f"[yellow]warning:[/] {', '.join(bad)}; see `medtune queue status`", highlight=False)
        raise typer.Exit(1)


@queue_app.command("status")
def status_command(study: StudyOption = None, storage: StorageOption = None, as_json: JsonOption = False) -> None:
    """List experiments with their state, settings, progress, worker and error."""
    db = _storage(storage)
    trials = db.trials(db.study_ids(study) if study else None)
    rows = [_status_row(study_name, trial) for study_name, trial in trials]
    if as_json:
        with json_mode(True) as emit:
            emit(rows)
        return
    if not trials:
        console.print("the queue is empty: add experiments with `medtune queue add` or `medtune sweep`")
        return
    table = Table(title=f"experiments in {_shown_url(db.url)}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("id", "study", "state", "settings", "epoch", "best", "worker", "minutes", "error / run"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("id", "epoch", "best") else "left")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        table.add_row(
            str(row["id"]), row["study"], _coloured(row["state"]), row["settings"],
            f"{row['epochs_done']}/{row['epochs']}" if row["epochs_done"] or row["state"] == "running" else "",
            f"{row['best']:.4f}" if row["best"] is not None else "", row["worker"] or "",
            "" if row["minutes"] is None else f"{row['minutes']:.1f}", row["error"] or _relative(row["run"]),
        )  # fmt: skip
    _print_wide(table)
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)


def _status_row(study_name: str, trial: Any) -> dict[str, Any]:
    """One experiment of `medtune queue status` (a table row, or a JSON record with ``--json``)."""
    from medtune.experiments.queue import describe, elapsed_minutes, state_of

    state = state_of(trial)
    attrs = trial.user_attrs
    swept = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    values = {**(attrs.get("config") or {}), **swept}
    keys = list(swept) or [k for k in values if k != "data"]
    steps = trial.intermediate_values
    best = trial.value if trial.value is not None else (max(steps.values()) if steps else None)
    note = attrs.get("error", "").strip().splitlines()[-1:] if state in ("failed", "pruned", "cancelled") else []
    return {
        "id": trial._trial_id, "study": study_name, "state": state, "settings": describe(values, keys) or "defaults",
        "values": values, "epochs_done": len(steps), "epochs": values.get("epochs") or "auto", "best": best,
        "worker": (attrs.get("worker") or "").rsplit(":", 1)[0] if state == "running" else None,
        "minutes": elapsed_minutes(trial, until_now=True), "error": note[0] if note else None, "run": attrs.get("run"),
    }  # fmt: skip


def _relative(path: str | None) -> str:
    """A run directory relative to the current folder when it lies below it."""
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _coloured(state: str) -> str:
    colour = {"finished": "green", "running": "cyan", "failed": "red", "pruned": "yellow", "cancelled": "dim"}
    return f"[{colour[state]}]{state}[/]" if state in colour else state


@queue_app.command("cancel")
def cancel_command(
    ids: Annotated[list[int], typer.Argument(help="Experiment ids (see `medtune queue status`).")],
    storage: StorageOption = None,
) -> None:
    """Cancel queued experiments; a running one is stopped by its worker within a heartbeat."""
    from medtune.experiments import cancel

    db = _storage(storage)
    for trial_id in ids:
        what = cancel(db, trial_id)
        console.print(f"{trial_id}: {'cancelled' if what == 'cancelled' else 'its worker stops it shortly'}")


@queue_app.command("retry")
def retry_command(
    ids: Annotated[list[int], typer.Argument(help="Experiment ids (see `medtune queue status`).")],
    storage: StorageOption = None,
) -> None:
    """Queue failed, pruned or cancelled experiments again (each resumes from its checkpoint)."""
    from medtune.experiments import retry

    db = _storage(storage)
    for trial_id in ids:
        console.print(f"{trial_id}: queued again as {retry(db, trial_id)}")


def leaderboard_command(
    metric: Annotated[
        str,
        typer.Option("--metric", "-m", help="Rank by: auto (val_dice for segmenters, else val_auc), test_auc..."),
    ] = "auto",
    fmt: Annotated[
        Literal["table", "csv", "md", "xlsx"],
        typer.Option("--format", "-f", help="table, csv, md or xlsx (a sheet per study)."),
    ] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of printing.")] = None,
    study: StudyOption = None,
    speed: Annotated[
        bool, typer.Option("--speed/--no-speed", help="Measure prediction speed (images/s) on this machine.")
    ] = True,
    storage: StorageOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rank the experiments by a metric, with test metrics, time, size and speed.

    The keys that differ, the best validation and the test metrics with intervals, epochs, time, size and
    prediction speed.
    """
    from medtune.experiments.leaderboard import (
        leaderboard_frame,
        to_markdown,
        write_leaderboard,
    )

    if fmt == "xlsx" and out is None:
        raise ConfigError("--format xlsx writes a file: add --out leaderboard.xlsx")
    db = _storage(storage)
    frame = leaderboard_frame(db, metric, study, speed)
    if as_json:
        with json_mode(True) as emit:
            emit({"metric": frame.attrs.get("metric", metric), "experiments": frame.to_dict(orient="records")})
        return
    if out is not None:
        path = write_leaderboard(frame, fmt, out)
        console.print(f"leaderboard of {len(frame)} experiment(s) written to {path}", highlight=False)
        return
    if fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt == "md":
        sys.stdout.write(to_markdown(frame))
    elif frame.empty:
        console.print("no experiments yet: add some with `medtune queue add` or `medtune sweep`")
    else:
        _print_leaderboard(frame, frame.attrs.get("metric", metric))


def _print_leaderboard(frame: Any, metric: str) -> None:
    from medtune.experiments.leaderboard import display_frame

    shown = (
        display_frame(frame, compact=True, metric=metric)
        .astype(str)
        .fillna("")
        .replace({"None": "", "nan": "", "<NA>": ""})
    )
    table = Table(
        title=f"leaderboard, ranked by {metric} (test metrics with 95% bootstrap intervals)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in shown.columns:
        table.add_column(str(column).replace(" [95% CI]", ""), no_wrap=column != "error", overflow="fold")
    for row in shown.itertuples(index=False):
        table.add_row(*row)
    _print_wide(table)


def _print_wide(table: Table) -> None:
    """Print without cutting a value short: a table wider than the terminal wraps its lines instead."""
    needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
    (Console(width=needed) if needed > console.width else console).print(table)


def _ids(ids: list[int]) -> str:
    return (
        f"{ids[0]}-{ids[-1]}" if len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1)) else ", ".join(map(str, ids))
    )


def _storage_flag(url: str | None) -> str:
    return f" --storage {url}" if url and not os.environ.get("MEDTUNE_STORAGE") else ""


def _shown_url(url: str) -> str:
    from medtune.experiments.storage import hide_password

    return hide_password(url)
