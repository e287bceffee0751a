"""Run tracking on Lightning's loggers: ``logger=tensorboard`` or ``logger=mlflow`` (``csv``, the default, is
``history.csv`` alone).

A tracked run records

- the resolved configuration (MLflow: the run's parameters; TensorBoard: its hparams, with the final metrics),
- each epoch's train and validation metrics, the learning rate and the seconds, at step = the epoch counted from 1,
  as ``history.csv`` holds it (logged when ``history.csv`` gets the row: once the epoch's checkpoint is on disk),
- the kept epoch (metric ``kept_epoch``; MLflow tags ``kept`` and ``kept_reason``, as ``kept.json`` says them),
- the final evaluation: ``test_auc``, ``test_auc_low``, ``test_auc_high``... (``final_val_*`` with
  ``read_test=false``, where the end of training is scored on the validation split),
- MLflow: ``report.html`` with its plots (``report/*.png``), ``metrics.json``, ``kept.json``, ``history.csv`` and
  ``config.yaml`` as artifacts. TensorBoard's event files sit in ``RUN/tensorboard``, beside the report.

The MLflow store. Unless ``tracking_uri=`` or the ``MLFLOW_TRACKING_URI`` environment variable names one, a run logs
to ``sqlite:///mlflow.db`` in the folder that holds it (``runs/mlflow.db``; a study's trials:
``runs/STUDY/mlflow.db``), its artifacts in ``mlartifacts/`` beside it. MLflow 3 keeps its file store
(``file:./mlruns``) in maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``; its SQLite store
needs SQLAlchemy and Alembic, which medtune installs anyway (the experiment queue's Optuna storage), so it works
after ``pip install 'medtune[tracking]'`` (mlflow-skinny) with nothing else set. Workers of one study share that
file: creating its tables and the study's experiment happens under a file lock (`medtune._locks.building`).

A resumed run logs to the same MLflow run (``RUN/tracking.json`` keeps its id) and the same TensorBoard folder.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune._io import write_json
from medtune._version import __version__
from medtune.config import Config, monitor_mode
from medtune.errors import ConfigError, MissingDependencyError
from medtune.runs import Run, read_history
from medtune.tasks import task_of_meta

#: The MLflow experiment of a run that names none (trials of a study join the study's: `medtune.experiments.worker`).
DEFAULT_EXPERIMENT = "medtune"
#: What each logger needs beyond medtune's core, by the module it imports.
_NEEDS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
#: Files of a finished run logged as MLflow artifacts (the report's are logged once it is written).
_ARTIFACTS = ("metrics.json", "kept.json", "history.csv", "config.yaml")


def check_tracking(config: Config) -> None:
    """Refuse, before any work, a logger whose package is missing and MLflow keys given without ``logger=mlflow``.

    Raises:
        MissingDependencyError: ``logger=tensorboard|mlflow`` without the tracking extra.
        ConfigError: ``tracking_uri=`` or ``tracking_experiment=`` with another logger.
    """
    if config.logger != "mlflow":
        given = [f"{key}={getattr(config, key)!r}" for key in ("tracking_uri", "tracking_experiment")
                 if getattr(config, key)]  # fmt: skip
        if given:
            them = "them" if len(given) > 1 else "it"
            raise ConfigError(f"{' and '.join(given)}: read by logger=mlflow only, and logger={config.logger}; add "
                              f"logger=mlflow, or leave {them} out")  # fmt: skip
    if config.logger == "csv":
        return
    module = _NEEDS[config.logger]
    try:
        __import__(module)
    except ImportError:
        raise MissingDependencyError(
            f"logger={config.logger} needs the {module} package: pip install 'medtune[tracking]' (or logger=csv, "
            "the default: history.csv only)"
        ) from None
    given = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if config.logger == "mlflow" and given:
        _quiet()
        _client(given)  # a store MLflow refuses is said before any work


def mlflow_store(config: Config, run: Run) -> tuple[str, str | None]:
    """The MLflow store a run logs to, and where a new experiment keeps its artifacts (None: the store decides).

    ``tracking_uri=``, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the folder that holds the run with
    ``mlartifacts/`` beside it (SQLite: MLflow 3 refuses its file store by default; see the module docstring).
    """
    given = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if given:
        return given, None
    folder = run.path.resolve().parent
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "mlartifacts").as_uri()


@dataclass
class Tracker:
    """One run's Lightning logger (`lightning.pytorch.loggers.TensorBoardLogger` or ``MLFlowLogger``).

    Attributes:
        logger: the Lightning logger.
        kind: ``tensorboard`` or ``mlflow``.
        created: True when this process started the tracked run (False: a resumed run goes on logging to it).
        logged_through: the last epoch logged (a resumed run's checkpoint may hold an epoch's row logged before).
    """

    logger: Any
    kind: str
    created: bool = True
    logged_through: int = 0

    def log_config(self, config: Config) -> None:
        """The resolved configuration, once per tracked run (MLflow refuses to change a parameter's value)."""
        if self.kind == "mlflow" and self.created:
            self.logger.log_hyperparams(config.model_dump(mode="json"))

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One ``history.csv`` row: its metrics at step = its epoch (from 1), each epoch once."""
        epoch = int(row["epoch"])
        if epoch <= self.logged_through:
            return
        values = {k: float(v) for k, v in row.items() if k != "epoch" and _number(v)}
        self.logger.log_metrics(values, step=epoch)
        self.logged_through = epoch

    def log_outcome(self, config: Config, run: Run, metrics: dict[str, Any]) -> None:
        """The kept epoch, the final evaluation and (MLflow) the run's files, at step = the kept epoch."""
        epoch, kept, reason = kept_epoch(run, config.monitor)
        final = {**final_metrics(metrics), **({"kept_epoch": float(epoch)} if epoch is not None else {})}
        if self.kind == "tensorboard":
            self.logger.log_hyperparams(config.model_dump(mode="json"), metrics=final, step=epoch)
            if reason:
                self.logger.experiment.add_text("kept", f"epoch {epoch} ({kept}): {reason}", epoch)
            return
        self.logger.log_metrics(final, step=epoch or 0)
        client, run_id = self.logger.experiment, self.logger.run_id
        for key, value in (("kept", kept), ("kept_reason", reason)):
            if value:
                client.set_tag(run_id, key, value[:5000])
        for name in _ARTIFACTS:
            if (run.path / name).is_file():
                client.log_artifact(run_id, str(run.path / name))

    def log_report(self, page: Path) -> None:
        """The report page and its plots (``report/*.png`` beside it) as MLflow artifacts."""
        if self.kind != "mlflow":
            return
        client, run_id = self.logger.experiment, self.logger.run_id
        client.log_artifact(run_id, str(page))
        plots = page.with_suffix("")
        if plots.is_dir():
            client.log_artifacts(run_id, str(plots), plots.name)

    def close(self, status: str = "success") -> None:
        """End the tracked run: ``success`` (MLflow: FINISHED), ``failed`` (FAILED) or ``KILLED`` (interrupted)."""
        self.logger.finalize(status)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def kept_epoch(run: Run, monitor: str) -> tuple[int | None, str, str]:
    """The epoch (from 1) whose weights the run kept, which (``best`` or ``last``) and why: ``kept.json``, else (a
    segmenter or multi-label run) the best validation epoch by `monitor`."""
    kept = run.read_kept()
    if kept is not None:
        return int(kept["epoch"]), str(kept["kept"]), str(kept["reason"])
    history = read_history(run.history_file)
    if monitor not in history or history[monitor].dropna().empty:
        return None, "", ""
    values = history[monitor]
    best = values.idxmin() if monitor_mode(monitor) == "min" else values.idxmax()
    return int(history.loc[best, "epoch"]), "best", f"the best {monitor} on validation"


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The headline metrics of ``metrics.json`` (`medtune.tasks.Task.test_summary`) as flat numbers:
    ``test_auc``, ``test_auc_low``, ``test_auc_high``... (``final_val_*`` when the validation split was scored)."""
    split = "_".join(metrics.get("split") or ["test"])
    prefix = "test_" if split == "test" else f"final_{split}_"
    flat: dict[str, float] = {}
    for name, value in task_of_meta(metrics).test_summary(metrics).items():
        value, low, high = [*value, None, None][:3] if isinstance(value, list) else (value, None, None)
        for suffix, number in (("", value), ("_low", low), ("_high", high)):
            if _number(number):
                flat[f"{prefix}{name}{suffix}"] = float(number)
    return flat


def open_tracker(config: Config, run: Run, log_prefix: str = "") -> Tracker | None:
    """The tracker of a run (None with ``logger=csv``), started: a new tracked run, or the one a resumed run began
    (its status set back to running). Says in one line where it logs.

    Raises:
        ConfigError: the MLflow store cannot be opened (the message names ``tracking_uri`` and MLflow's reason).
    """
    if config.logger == "csv":
        return None
    _quiet()
    if config.logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(run.path, name="", version=run.tensorboard_dir.name, default_hp_metric=False)
        print(f"{log_prefix}tracking with TensorBoard in {run.tensorboard_dir} (tensorboard --logdir "
              f"{run.path.parent})", file=sys.stderr)  # fmt: skip
        return Tracker(logger, "tensorboard")
    tracker = _open_mlflow(config, run)
    client, run_id = tracker.logger.experiment, tracker.logger.run_id
    if tracker.created:
        tracker.log_config(config)
    else:  # a resumed run: running again, its epochs logged so far not logged twice
        client.update_run(run_id, status="RUNNING")
        tracker.logged_through = max((m.step for m in client.get_metric_history(run_id, "seconds")), default=0)
    print(f"{log_prefix}tracking with MLflow: run {tracker.logger.run_id} of experiment "
          f"{config.tracking_experiment or DEFAULT_EXPERIMENT!r} in {mlflow_store(config, run)[0]}",
          file=sys.stderr)  # fmt: skip
    return tracker


def reopen_tracker(config: Config, run: Run) -> Tracker | None:
    """The MLflow run a finished run logged to, as ``RUN/tracking.json`` names it (to add its report), or None."""
    if config.logger != "mlflow" or not run.tracking_file.is_file():
        return None
    _quiet()
    return _open_mlflow(config, run)


def mark_stopped(config: Config, run: Run, why: str) -> None:
    """Mark a run's MLflow run KILLED with tag ``stopped`` saying why (a trial pruned or cancelled on purpose: not
    the FAILED of an error); nothing for other loggers."""
    tracker = reopen_tracker(config, run)
    if tracker is not None:
        client, run_id = tracker.logger.experiment, tracker.logger.run_id
        client.set_tag(run_id, "stopped", why[:5000])
        client.set_terminated(run_id, "KILLED")


def _open_mlflow(config: Config, run: Run) -> Tracker:
    """An ``MLFlowLogger`` on the run's store: the run ``tracking.json`` names when it is in the same store, else a
    new one (named after the run's folder) in the experiment, created when missing."""
    import json

    from lightning.pytorch.loggers import MLFlowLogger

    uri, artifacts = mlflow_store(config, run)
    experiment = config.tracking_experiment or DEFAULT_EXPERIMENT
    saved = json.loads(run.tracking_file.read_text(encoding="utf-8")) if run.tracking_file.is_file() else {}
    run_id = saved.get("run_id") if saved.get("tracking_uri") == uri else None
    client = _client(uri)
    try:
        with _store_lock(uri):  # workers of one study create the study's experiment once
            if run_id is not None and not _exists(client, run_id):
                run_id = None
            if run_id is None and client.get_experiment_by_name(experiment) is None:
                client.create_experiment(experiment, artifact_location=artifacts)
        tags = {"medtune.run": str(run.path.resolve()), "medtune.version": __version__}
        logger = MLFlowLogger(experiment_name=experiment, run_name=run.path.name, tracking_uri=uri, tags=tags,
                              run_id=run_id, artifact_location=artifacts)  # fmt: skip
        with _global_uri_kept():
            record = {"logger": "mlflow", "tracking_uri": uri, "experiment": experiment, "run_id": logger.run_id}
    except Exception as exc:  # MLflow's own errors (an unreachable server, a store it cannot write)
        raise _refusal(uri, exc) from exc
    write_json(run.tracking_file, record)
    return Tracker(logger, "mlflow", created=run_id is None)


def _client(uri: str) -> Any:
    """An ``MlflowClient`` on `uri`, its store opened (a new SQLite store's tables created under its lock)."""
    from mlflow.tracking import MlflowClient

    try:
        with _store_lock(uri):
            client = MlflowClient(uri)
            client.search_experiments(max_results=1)
    except Exception as exc:  # MLflow's own errors (a refused file store, an unknown scheme)
        raise _refusal(uri, exc) from exc
    return client


def _refusal(uri: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"tracking_uri={uri!r}: MLflow cannot log there ({str(exc).splitlines()[0]}); give sqlite:///PATH.db or an "
        "http(s):// server, or leave tracking_uri and MLFLOW_TRACKING_URI unset for sqlite:///mlflow.db beside the run"
    )


@contextmanager
def _global_uri_kept() -> Iterator[None]:
    """Undo what the MLFlowLogger's first use does to the process: ``mlflow.set_tracking_uri`` of its store, which
    also sets ``MLFLOW_TRACKING_URI``; left set, the next run of the process (a notebook's, the queue's next trial)
    would log to this run's store instead of its own, and your own ``mlflow.log_*`` calls too."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None: unset again, as it was


def _exists(client: Any, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except Exception:  # deleted from the store, or another store's id
        return False


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold a local SQLite store's lock file (`medtune._locks.building`); nothing for other stores."""
    from medtune._locks import building

    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with building(path, "the MLflow store"):
        yield


def _quiet() -> None:
    """MLflow's and Alembic's start-up notes (creating and upgrading the store's tables) stay out of the log."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def tracked(config: Config, run: Run, log_prefix: str = "") -> Iterator[Tracker | None]:
    """The run's tracker (None with ``logger=csv``, and in every distributed process but the first) for the body,
    ended as the body ends: ``success``, ``KILLED`` on an interruption, ``failed`` on an error."""
    from lightning.pytorch.utilities import rank_zero_only

    tracker = open_tracker(config, run, log_prefix) if getattr(rank_zero_only, "rank", 0) == 0 else None
    try:
        yield tracker
    except (KeyboardInterrupt, SystemExit):
        if tracker is not None:
            tracker.close("KILLED")
        raise
    except BaseException:
        if tracker is not None:
            tracker.close("failed")
        raise
    if tracker is not None:
        tracker.close("success")
