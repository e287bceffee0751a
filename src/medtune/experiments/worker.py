"""A queue worker: claim a queued experiment, train it in its run directory, record the outcome, repeat.

- Each experiment is claimed by exactly one worker (`QueueStorage.claim`), in one transaction with its first
  heartbeat and the worker's token for this claim.
- While it trains, a thread records a heartbeat every few seconds. The same thread notices when the experiment
  was cancelled, or taken back from this worker (it went silent longer than the grace period), and stops the
  training at the next batch.
- Before each claim a worker takes back the experiments of workers that went silent (killed, machine lost): they
  are queued again as they were and resume from their last checkpoint in the same run directory. After
  `max_recoveries` such losses an experiment is failed instead, so a trial that kills its worker cannot loop.
- A worker interrupted with Ctrl-C or SIGTERM puts its experiment back in the queue at once.
- A worker only records an outcome while it still owns the experiment, so nothing is finished twice.
- With an empty queue a worker waits while experiments are still running elsewhere (one of those workers may
  die and leave work behind), and stops once nothing is queued or running (``forever`` keeps it polling).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L

from medtune.config import Config
from medtune.config.merge import validate_config
from medtune.errors import MedtuneError
from medtune.experiments.queue import describe, search_space
from medtune.experiments.storage import Outages, QueueStorage
from medtune.tasks import task_of_meta


class TrialStopped(Exception):
    """Raised inside training when the experiment was cancelled or is no longer this worker's."""


class BudgetSpent(TrialStopped):
    """Raised inside training when the study's time budget (``medtune tune --budget``) is spent."""


@dataclass
class WorkerOptions:
    """How a worker behaves.

    Attributes:
        studies: only claim experiments of these studies (all when empty).
        forever: keep polling an empty queue instead of stopping.
        max_recoveries: how often an experiment may be taken back from a silent worker before it fails.
        poll: seconds between looks at an empty queue.
        name: how this worker names itself in logs and in the database.
    """

    studies: list[str] = field(default_factory=list)
    forever: bool = False
    max_recoveries: int = 3
    poll: float = 2.0
    name: str = "worker"


@dataclass
class WorkerSummary:
    """What one worker did: experiment ids by outcome."""

    finished: list[int] = field(default_factory=list)
    pruned: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)


class _Heartbeat(threading.Thread):
    """Beat every `interval` seconds; set `stop` when the experiment is cancelled or no longer ours."""

    def __init__(self, storage: QueueStorage, trial_id: int, token: str) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{trial_id}")
        self.storage, self.trial_id, self.token = storage, trial_id, token
        self.stop = threading.Event()
        self.reason: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.storage.heartbeat):
            try:
                self.storage.beat(self.trial_id)
                trial = self.storage.rdb.get_trial(self.trial_id)
            except Exception:  # a database hiccup: try again at the next beat; the grace period covers a few
                continue
            if trial.state.name != "RUNNING" or trial.user_attrs.get("worker") != self.token:
                self.reason = "lost"
            elif trial.user_attrs.get("queue_state") == "cancel_requested":
                self.reason = "cancelled"
            if self.reason:
                self.stop.set()
                return

    def close(self) -> None:
        self._done.set()
        self.join(timeout=5)


class _TrialCallback(L.Callback):
    """Report each epoch's validation metric to Optuna, prune when the study's pruner says so, and stop at the
    next batch when the heartbeat thread asks.

    As `medtune.fitting.callbacks.HistoryWriter` does, an epoch is reported only once its checkpoint is on disk
    (kept as state in that checkpoint, reported when the next epoch starts or training ends): a cancel that
    arrives right after a report never finds the reported epoch without its ``last.ckpt``."""

    def __init__(
        self,
        trial: Any,
        monitor: str,
        prune: bool,
        stop: threading.Event,
        db: Any = None,
        deadline: float | None = None,
    ) -> None:
        self.trial, self.monitor, self.prune, self.stop, self.deadline = trial, monitor, prune, stop, deadline
        self.db = db or (lambda call, what: call())  # the worker's retry while the database is unreachable
        values = self.db(lambda: trial.storage.get_trial(trial._trial_id).intermediate_values, "resuming a trial")
        self.reported = max(values) if values else -1  # a resumed trial reports only epochs it has not
        self.pending: tuple[int, float] | None = None
        self.clock: tuple[float, int] | None = None  # when this process's training started, at which epoch

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.stop.is_set():
            raise TrialStopped
        if self.deadline is not None and time.time() > self.deadline:
            raise BudgetSpent(f"stopped at epoch {trainer.current_epoch + 1}: the study's time budget was spent")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and math.isfinite(float(value)):
            self.pending = (trainer.current_epoch, float(value))  # saved in this epoch's checkpoint

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report()
        if self.clock is None:
            self.clock = (time.time(), trainer.current_epoch)
        elif self.deadline is not None:
            self._check_time_left(trainer.current_epoch, int(trainer.max_epochs or 0))

    def _check_time_left(self, epoch: int, epochs: int) -> None:
        """Stop a trial that cannot finish before the deadline, as soon as its epochs' pace says so: its weights
        could never be chosen (only finished trials are), and the time goes to trials that can."""
        started, first = self.clock or (time.time(), epoch)
        pace = (time.time() - started) / max(1, epoch - first)
        left = self.deadline - time.time() if self.deadline is not None else math.inf
        if (epochs - epoch) * pace > left:
            raise BudgetSpent(
                f"stopped after epoch {epoch}: {epochs - epoch} more epochs at {pace:.0f} s each would end after "
                f"the study's deadline ({max(0.0, left):.0f} s left)"
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report()

    def state_dict(self) -> dict[str, Any]:
        return {"pending": list(self.pending) if self.pending else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pending = state_dict.get("pending")
        self.pending = (int(pending[0]), float(pending[1])) if pending else None

    def _report(self) -> None:
        import optuna

        pending, self.pending = self.pending, None
        if pending is None or pending[0] <= self.reported:
            return
        epoch, value = pending
        self.db(lambda: self.trial.report(value, epoch), f"reporting epoch {epoch + 1}")
        self.reported = epoch
        if self.prune and self.db(self.trial.should_prune, "asking the pruner"):
            raise optuna.TrialPruned(f"{self.monitor} {value:.4f} at epoch {epoch + 1} is clearly worse")


class Worker:
    """Claims and runs experiments until the queue is empty (see the module docstring).

    Args:
        storage: the experiment database.
        options: which studies, how long to wait, how to name itself.
        log: where progress lines go (default: print with the worker's name).
    """

    def __init__(self, storage: QueueStorage, options: WorkerOptions | None = None, log: Any = None) -> None:
        self.storage = storage
        self.options = options or WorkerOptions()
        self._log = log
        self.summary = WorkerSummary()
        self.outages = Outages(storage.url, storage.grace)

    def _db(self, call: Any, what: str) -> Any:
        """A database request, retried with backoff while the database is unreachable (a server restart)."""
        return self.outages.retry(call, what, self.say)

    def say(self, message: str) -> None:
        line = f"[{self.options.name}] {time.strftime('%H:%M:%S')} {message}"
        if self._log:
            self._log(line)
        else:
            print(line, flush=True)

    def run(self) -> WorkerSummary:
        """Work until nothing is queued or running (or forever); returns what this worker did."""
        idle_since: float | None = None
        while True:
            study_ids = self._db(lambda: self.storage.study_ids(self.options.studies), "listing the studies")
            if self.outages.settled():  # after an outage, heartbeats are current again only a grace period later
                self._db(lambda ids=study_ids: self.recover(ids), "taking back experiments of silent workers")
            token = self._token()  # one per claim; a retried claim keeps it, and finds its trial if it went through
            trial_id = self._db(lambda ids=study_ids, t=token: self.storage.claim(ids, t), "claiming an experiment")
            if trial_id is not None:
                idle_since = None
                self.run_trial(trial_id, token)
                continue
            running = self._db(lambda ids=study_ids: self.storage.count("RUNNING", ids), "counting running experiments")
            if not running and not self.options.forever:
                return self.summary
            if idle_since is None:
                idle_since = time.monotonic()
                if running:
                    self.say(f"queue empty; waiting while {running} experiment(s) run elsewhere")
            time.sleep(self.options.poll)

    def recover(self, study_ids: list[int]) -> None:
        """Queue again the experiments whose worker went silent (or fail them after too many losses)."""
        for trial_id in self.storage.stale(study_ids):
            trial = self.storage.rdb.get_trial(trial_id)
            losses = int(trial.user_attrs.get("recovered", 0))
            if losses >= self.options.max_recoveries:
                error = (
                    f"its worker stopped answering {losses + 1} times (killed, out of memory, machine lost); see "
                    f"the run directory, then `medtune queue retry {trial_id}`"
                )
                if self.storage.fail_running(trial_id, error):
                    self.say(f"#{trial_id} failed: its worker was lost {losses + 1} times")
                continue
            if self.storage.requeue(trial_id):
                self.storage.rdb.set_trial_user_attr(trial_id, "recovered", losses + 1)
                self.summary.recovered.append(trial_id)
                self.say(f"#{trial_id} taken back from silent worker {trial.user_attrs.get('worker')}; queued again")

    def run_trial(self, trial_id: int, token: str) -> str:
        """Run one experiment claimed with `token` to its end; returns its outcome."""
        import optuna

        from medtune.runs import Run

        storage, rdb = self.storage, self.storage.rdb
        frozen, study_name, study_attrs, trial = self._db(lambda: self._prepare(trial_id), f"starting #{trial_id}")
        attrs, search = frozen.user_attrs, bool(frozen.user_attrs.get("search"))
        heartbeat = _Heartbeat(storage, trial_id, token)
        heartbeat.start()
        outcome = "failed"
        try:
            values, swept = _trial_values(attrs, study_name, study_attrs, trial)
            config = validate_config(values)
            run_dir = Path(attrs.get("run") or _run_dir(attrs, study_name, frozen.number, config))
            self._db(lambda: rdb.set_trial_user_attr(trial_id, "run", str(run_dir)), f"starting #{trial_id}")
            label = describe(values, [d.key for d in swept]) if swept else run_dir.name
            resumed = " (resuming)" if Run(run_dir).last_checkpoint.is_file() else ""
            self.say(f"#{trial_id} {study_name}: started {label}{resumed} in {run_dir}")
            callback = _TrialCallback(
                trial, config.monitor, search, heartbeat.stop, self._db, study_attrs.get("deadline")
            )
            result = _train(config, run_dir, callback, f"[{self.options.name} #{trial_id}] ")
            if self._finish(trial_id, token, "COMPLETE", result["best"], {"result": result}):
                outcome = "finished"
                self.say(f"#{trial_id} finished: best {config.monitor} {result['best']:.4f}")
        except optuna.TrialPruned as exc:
            last = self._db(lambda: trial.storage.get_trial(trial_id).intermediate_values, f"recording #{trial_id}")
            value = last[max(last)] if last else None
            if self._finish(trial_id, token, "PRUNED", value, {"error": str(exc)}):
                outcome = "pruned"
                self.say(f"#{trial_id} pruned: {exc}")
        except BudgetSpent as exc:
            last = self._db(lambda: trial.storage.get_trial(trial_id).intermediate_values, f"recording #{trial_id}")
            if self._finish(trial_id, token, "PRUNED", last[max(last)] if last else None, {"error": str(exc)}):
                outcome = "pruned"
                self.say(f"#{trial_id} {exc}")
        except TrialStopped:
            if heartbeat.reason == "cancelled":
                if self._finish(trial_id, token, "FAIL", None, {"queue_state": "cancelled", "error": "cancelled"}):
                    outcome = "cancelled"
                    self.say(f"#{trial_id} cancelled; its run directory keeps the last checkpoint")
            else:
                outcome = "lost"
                self.say(f"#{trial_id} was taken back by another worker after this one went silent; stopped")
        except (KeyboardInterrupt, SystemExit):
            if self._db(lambda: self._owned(trial_id, token) and storage.requeue(trial_id), f"queueing #{trial_id}"):
                self.say(f"#{trial_id} interrupted: queued again; it resumes from its last checkpoint")
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, MedtuneError) else _traceback_tail(exc)
            if self._finish(trial_id, token, "FAIL", None, {"error": message}):
                self.say(f"#{trial_id} failed: {message.splitlines()[-1] if message else type(exc).__name__}")
        finally:
            heartbeat.close()
        getattr(self.summary, outcome).append(trial_id)
        return outcome

    def _prepare(self, trial_id: int) -> tuple[Any, str, dict[str, Any], Any]:
        """The claimed trial (its claim counted), its study's name and attributes, and the Optuna trial."""
        import optuna

        rdb = self.storage.rdb
        frozen = rdb.get_trial(trial_id)
        self._count_claim(trial_id, frozen.user_attrs)
        study_name = self.storage.study_of(trial_id)
        study_attrs = rdb.get_study_user_attrs(rdb.get_study_id_from_name(study_name))
        sampler, pruner = _search_parts(study_attrs) if frozen.user_attrs.get("search") else (None, None)
        study = self.storage.study(study_name, sampler=sampler, pruner=pruner)
        study.get_trials(deepcopy=False)  # Optuna's storage cache must know the trial before it takes parameters
        return frozen, study_name, study_attrs, optuna.Trial(study, trial_id)

    def _token(self) -> str:
        """A new claim token: who claims (host, process, name) and a random part. `QueueStorage.claim` writes it as
        the experiment's ``worker`` attribute; the worker owns the experiment while it is still there."""
        return f"{socket.gethostname()}:{os.getpid()}:{self.options.name}:{uuid.uuid4().hex[:8]}"

    def _count_claim(self, trial_id: int, attrs: dict[str, Any]) -> None:
        rdb = self.storage.rdb
        rdb.set_trial_user_attr(trial_id, "claims", int(attrs.get("claims", 0)) + 1)
        if "first_start" not in attrs:
            rdb.set_trial_user_attr(trial_id, "first_start", time.time())

    def _owned(self, trial_id: int, token: str) -> bool:
        trial = self.storage.rdb.get_trial(trial_id)
        return trial.state.name == "RUNNING" and trial.user_attrs.get("worker") == token

    def _finish(self, trial_id: int, token: str, state: str, value: float | None, attrs: dict[str, Any]) -> bool:
        """Record the outcome if this worker still owns the experiment; False (and nothing written) if not. Retried
        while the database is unreachable: a retry after a write that went through finds the experiment finished
        and writes nothing again."""
        return self._db(lambda: self._finish_now(trial_id, token, state, value, attrs), f"recording #{trial_id}")

    def _finish_now(self, trial_id: int, token: str, state: str, value: float | None, attrs: dict[str, Any]) -> bool:
        if not self._owned(trial_id, token):
            self.say(f"#{trial_id} is no longer this worker's (taken back after a silence); its outcome is dropped")
            return False
        for key, item in attrs.items():
            self.storage.rdb.set_trial_user_attr(trial_id, key, item)
        values = [float(value)] if value is not None and math.isfinite(value) else None
        return self.storage.rdb.set_trial_state_values(trial_id, _state(state), values)


def _trial_values(
    attrs: dict[str, Any], study_name: str, study_attrs: dict[str, Any], trial: Any
) -> tuple[dict[str, Any], list[Any]]:
    """The keys of a claimed trial: the experiment's, with the study's swept dimensions suggested for it; and those
    dimensions."""
    values = dict(attrs["config"])
    swept = search_space(study_attrs) if study_attrs.get("kind") in ("grid", "search") else []
    for dim in swept:  # in order: a dimension searched only for some values of another comes after it
        if dim.applies(values):
            values[dim.key] = dim.suggest(trial)
    if values.get("logger") == "mlflow" and not values.get("tracking_experiment"):
        values["tracking_experiment"] = study_name  # the trials of a study join one MLflow experiment
    return values, swept


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]


def _search_parts(study_attrs: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """TPE (a model-based search; the first 5 trials are random) and a pruner that stops only trials clearly
    behind: below the 25th percentile of finished trials at the same epoch, once 5 have finished, after epoch 2.
    A study of ``medtune tune`` (``pruner: hyperband``) prunes by Hyperband over epochs instead (Li et al. 2018;
    brackets of successive halving from 1 epoch to its ``max_epochs``, keeping a third at each rung)."""
    import optuna

    found = study_attrs or {}
    if found.get("pruner") == "hyperband":
        # group=True: the multivariate model works per set of parameters that occur together (mixup only in the
        # trials with task=classify) instead of falling back to independent draws for a conditional space
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate and group
            sampler = optuna.samplers.TPESampler(n_startup_trials=5, constant_liar=True, multivariate=True, group=True)
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(found["max_epochs"]))
        return sampler, pruner
    sampler = optuna.samplers.TPESampler(n_startup_trials=5, constant_liar=True)
    pruner = optuna.pruners.PercentilePruner(75.0, n_startup_trials=5, n_warmup_steps=2, n_min_trials=3)
    return sampler, pruner


def _run_dir(attrs: dict[str, Any], study: str, number: int, config: Config) -> Path:
    from medtune.runs.run import RUNS_DIR, default_run_name

    root = Path(attrs.get("root") or Path.cwd() / RUNS_DIR)
    return root / study / f"{number:03d}-{default_run_name(config)}"


def _train(config: Config, run_dir: Path, callback: _TrialCallback, prefix: str) -> dict[str, Any]:
    """Train (or resume) in `run_dir`; a run that already finished (its worker died before recording it) is
    only read back, never trained twice. A trial stopped on purpose (pruned, cancelled, out of budget, taken back)
    is marked KILLED with why in its tracked MLflow run, not FAILED as an error would be."""
    import optuna

    from medtune.fitting.tracking import mark_stopped
    from medtune.fitting.train import train_and_report as train
    from medtune.runs import Run

    run = Run(run_dir)
    if not (run.finished and run.config_file.is_file()):
        try:
            train(config, out=run_dir, progress=False, callbacks=[callback], log_prefix=prefix)
        except (optuna.TrialPruned, TrialStopped) as exc:
            mark_stopped(config, run, str(exc) or type(exc).__name__)
            raise
    return summarize_run(run, config.monitor)


def summarize_run(run: Any, monitor: str) -> dict[str, Any]:
    """What the leaderboard shows of a finished run, kept in the database so that workers on other machines
    need no shared disk: the best validation epoch, test metrics with intervals, size and time."""
    import json

    from medtune.config import monitor_mode
    from medtune.runs import read_history
    from medtune.runs.run import EPOCH_BASE
    from medtune.runs.trained import network_state, read_checkpoint_file

    history = read_history(run.history_file)
    column = history[monitor].astype(float)
    kept = run.kept_epoch
    if kept is not None and (history["epoch"] == kept).any():
        best_row = history[history["epoch"] == kept].iloc[0]
    else:
        best_row = history.loc[column.idxmin() if monitor_mode(monitor) == "min" else column.idxmax()]
    metrics = json.loads(run.metrics_file.read_text(encoding="utf-8"))
    unread = run.read_config().get("read_test") is False  # a tune trial: its end-of-training scores are validation's
    test = {} if unread else {**task_of_meta(metrics).test_summary(metrics), "n": metrics.get("n")}
    state = network_state(read_checkpoint_file(run.best_checkpoint))
    return {
        "monitor": monitor,
        "best": float(best_row[monitor]),
        "best_epoch": int(best_row["epoch"]),  # counted from 1, as history.csv (read by read_history) holds it
        "epoch_base": EPOCH_BASE,
        "val": {k: float(best_row[k]) for k in history.columns if k.startswith("val_")},
        "test": test,
        "epochs": len(history),
        "train_seconds": float(history["seconds"].sum()),
        "params": int(sum(t.numel() for name, t in state.items() if not name.endswith(_BUFFERS))),
        "weights_bytes": int(sum(t.numel() * t.element_size() for t in state.values())),
    }


#: Batch-norm statistics: saved with the weights but not parameters.
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _traceback_tail(exc: BaseException, lines: int = 12) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    return "\n".join(text[-lines:])


def install_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a stopped worker puts its experiment back in the queue."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
