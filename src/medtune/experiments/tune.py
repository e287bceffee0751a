"""``medtune tune DATA --budget 30m``: spend a time budget on a search, and return one run.

The search is a study on the experiment queue (so ``--workers N`` and workers on other machines sharing a
PostgreSQL ``--storage`` take part, as for ``medtune sweep --search``): Optuna's multivariate TPE sampler proposes
settings, and Hyperband (successive halving over epochs, from 1 to ``--max-epochs``) stops the trials that fall
behind at each rung. What it searches (`tune_space`): the packaged backbones, the working size, learning rate,
weight decay, label smoothing, augmentation preset and strength, mixup / cutmix (timm's; not for graded trials), frozen
stages and layer-wise learning-rate decay, and ``task=ordinal`` when the labels are grades; keys given on the command
line are fixed instead.

Choices are made on validation only. Candidates are ranked by the validation log loss of their probabilities
(``val_nll``, the best epoch of each): on small or saturated validation splits (RetinaMNIST's 120 images,
PneumoniaMNIST's validation AUC of 0.996 by epoch 3) accuracy and AUC tie between many candidates while the log
loss still separates them, and unlike the training loss it does not change with the label smoothing the search
varies. Trials run with ``read_test=false``: the test split is read once, by the final model.

The budget is wall-clock time from the start of ``tune``, the final step included; an interrupted ``tune`` (Ctrl-C,
a killed worker) run again continues the same study with what is left of its budget (kept in the study). At the end
the best trial, or the mean of the best trials where that lowers the validation log loss, becomes one run
(``runs/<study>/result``: ``medtune ensemble`` for a mean), evaluated once on the test split, with its guard,
report and ``tune.json`` (every trial, the choice and why).

>>> result = tune("pneumoniamnist.npz", budget="30m")  # doctest: +SKIP
>>> result.metrics["macro"]["auc"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medtune.errors import ConfigError, DataError
from medtune.experiments.queue import Dimension, _attrs, _enqueue, experiment_values
from medtune.experiments.storage import QueueStorage

#: The packaged ImageNet backbones (no hub at run time).
BACKBONES = ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
#: Working sizes searched (with the source size where it lies between them).
SIZES = (64, 96, 128)
#: Settings of every trial: ranked by validation log loss, the test split left unread, nothing slow at the end.
TRIAL_KEYS = {"monitor": "val_nll", "read_test": False, "report": False, "guard": False}
#: Share of the budget (at least a minute) kept for the final step: the ensemble, the test split, guard, report.
RESERVE = 0.05


@dataclass(frozen=True)
class TuneResult:
    """What `tune` returns.

    Attributes:
        run: the result's run directory (``runs/<study>/result``).
        study: the study's name.
        metrics: the result's test metrics (``metrics.json``).
        summary: ``tune.json``: the trials, the choice and why.
    """

    run: Path
    study: str
    metrics: dict[str, Any]
    summary: dict[str, Any]


def parse_budget(text: str | float) -> float:
    """Seconds in a budget: ``30m``, ``2h``, ``1h30m``, ``90s`` or a number of seconds.

    >>> parse_budget("1h30m"), parse_budget("90s"), parse_budget(600)
    (5400.0, 90.0, 600.0)
    """
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
        if not parts or not any(parts.groups()):
            raise ConfigError(f"--budget {text!r}: give a time such as 30m, 2h, 1h30m or 90s")
        hours, minutes, secs = (float(g) if g else 0.0 for g in parts.groups())
        seconds = 3600 * hours + 60 * minutes + secs
    if seconds < 60:
        raise ConfigError(f"--budget {text!r}: give at least a minute (a trial trains for at least one epoch)")
    return seconds


def installed_backbones() -> tuple[str, ...]:
    """The packaged backbones whose weights are installed (Lite1 and Lite2 come with ``medtune[weights]``)."""
    from medtune.models.weights import PACKAGED_WEIGHTS

    return tuple(name for name in BACKBONES if PACKAGED_WEIGHTS.get(name).installed())


def tune_space(fixed: Mapping[str, Any], classes: tuple[str, ...], source_size: int | None) -> list[Dimension]:
    """The searched dimensions, minus the keys the user fixed; ``task`` only when `classes` are grades (three or
    more consecutive whole numbers)."""
    sizes = sorted({*SIZES, *([source_size] if source_size and SIZES[0] < source_size < SIZES[-1] else [])})
    dims = [
        Dimension("backbone", installed_backbones()),
        Dimension("image_size", tuple(sizes)),
        Dimension("lr", None, 1e-4, 1e-2, log=True),
        Dimension("weight_decay", None, 1e-6, 1e-1, log=True),
        Dimension("label_smoothing", None, 0.0, 0.2),
        Dimension("augment", ("none", "flip", "medical")),
        Dimension("augment_strength", None, 0.5, 2.0),
        Dimension("freeze", (0, 1, 2)),
        Dimension("lr_decay", None, 0.5, 1.0),
    ]
    if (
        len(classes) >= 3
        and all(c.isdigit() for c in classes)
        and sorted(map(int, classes))
        == list(range(int(min(classes, key=int)), int(min(classes, key=int)) + len(classes)))
    ):
        dims.append(Dimension("task", ("classify", "ordinal")))
    if fixed.get("task", "classify") == "classify" and fixed.get("loss", "cross-entropy") == "cross-entropy":
        mixes = [Dimension("mixup", (0.0, 0.2, 0.4)), Dimension("cutmix", (0.0, 1.0))]  # mixed labels: classify only
        dims += [replace(d, when=("task", "classify")) if any(x.key == "task" for x in dims) else d for d in mixes]
    return [d for d in dims if d.key not in fixed]


def tune(
    data: str | Path,
    keys: Mapping[str, Any] | None = None,
    budget: str | float = "30m",
    workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    max_epochs: int = 8,
    log: Callable[[str], None] = print,
) -> TuneResult:
    """Search for `budget`, then make the best trial (or the mean of the best) one run evaluated on the test split.

    Args:
        data: the data (a folder, CSV/TSV manifest or ``.npz``).
        keys: settings fixed for every trial (``{"image_size": 64}``: not searched).
        budget: wall-clock time for everything (`parse_budget`).
        workers: worker processes on this machine (more machines: ``medtune queue run --study NAME`` on each).
        storage: the queue's database URL (default: ``MEDTUNE_STORAGE`` or ``runs/queue.db``).
        study: the study's name (default ``tune-<data>``); an existing one is continued.
        max_epochs: the epochs of a trial that is never stopped (Hyperband's largest rung).
        log: where progress lines go.

    Raises:
        ConfigError: a bad budget or key, or a study of that name that is not a tuning study.
        DataError: no trial finished within the budget.
    """
    started = time.time()
    seconds = parse_budget(budget)
    db = QueueStorage(storage)
    values = experiment_values(None, {**(keys or {}), **TRIAL_KEYS, "data": str(data), "epochs": max_epochs})
    name = study or f"tune-{Path(data).stem or Path(data).name}"
    optuna_study = _open_study(db, name, values, keys or {}, max_epochs)
    spent = float(optuna_study.user_attrs.get("spent", 0.0))
    left = seconds - spent
    deadline = started + left - max(60.0, RESERVE * seconds)
    if spent:
        log(f"continuing study {name!r}: {len(optuna_study.trials)} trials so far, {spent / 60:.1f} minutes spent")
    log(f"study {name!r}: {left / 60:.1f} of {seconds / 60:.1f} minutes left; searching until "
        f"{time.strftime('%H:%M:%S', time.localtime(deadline))}")  # fmt: skip
    clock = _Clock(optuna_study, spent, started)  # a tune killed with -9 leaves what it spent, to 15 s
    try:
        optuna_study.set_user_attr("deadline", deadline)
        clock.start()
        _search(db, name, values, workers, deadline, log)
    finally:
        clock.stop.set()
        optuna_study.set_user_attr("spent", spent + time.time() - started)
    from medtune.experiments.tune_result import make_result

    run, metrics, summary = make_result(db, name, log)
    optuna_study.set_user_attr("spent", spent + time.time() - started)
    return TuneResult(run, name, metrics, summary)


class _Clock(threading.Thread):
    """Records the time this ``tune`` has spent in its study every `every` seconds (a killed process runs no
    ``finally``); failures to write are left to the next tick."""

    def __init__(self, study: Any, spent: float, started: float, every: float = 15.0) -> None:
        super().__init__(name="tune-clock", daemon=True)
        self.study, self.spent, self.started, self.every = study, spent, started, every
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            with contextlib.suppress(Exception):  # the database may be briefly away; the next tick writes it
                self.study.set_user_attr("spent", self.spent + time.time() - self.started)


def _open_study(db: QueueStorage, name: str, values: dict[str, Any], fixed: Mapping[str, Any], epochs: int) -> Any:
    """Create the tuning study (its space from the data), or load it to continue."""
    if name in db.study_names():
        found = db.study(name)
        if found.user_attrs.get("pruner") != "hyperband":
            raise ConfigError(f"study {name!r} exists and is not a tuning study; choose another --study name")
        return found
    from medtune.config import load_config
    from medtune.runs import read_dataset_table

    table = read_dataset_table(load_config(overrides=dict(values)))
    source = _source_size(table)
    space = tune_space(fixed, tuple(table.classes), source)
    attrs = {"kind": "search", "space": {d.key: d.to_dict() for d in space}, "monitor": "val_nll",
             "pruner": "hyperband", "max_epochs": epochs}  # fmt: skip
    created = db.create_study(name, "minimize", attrs)
    _enqueue(db, name, _attrs(values, search=True), default_params(space, source))  # the default recipe first
    return created


def default_params(space: list[Dimension], source_size: int | None) -> dict[str, Any]:
    """medtune's default recipe as values of the searched dimensions: the first trial of every study, so the
    result is never chosen from worse than what ``medtune train`` gives (a working size not searched becomes the
    nearest searched one).

    >>> space = tune_space({}, ("a", "b"), 28)
    >>> params = default_params(space, 28)
    >>> params["backbone"], params["image_size"], params["lr"], params["mixup"]
    ('tf_efficientnet_lite0', 64, 0.002, 0.0)
    """
    from medtune.config import Config
    from medtune.models import resolve_preprocessing
    from medtune.runs.resolve import size_for

    params = {}
    for dim in space:
        default = Config.model_fields[dim.key].default
        if dim.key == "image_size":  # medtune train's automatic size, capped by the default backbone's own size
            backbone = resolve_preprocessing(Config.model_fields["backbone"].default, 3).input_size[-1]
            automatic = size_for(source_size or backbone, backbone)
            default = min(dim.choices, key=lambda size: abs(size - automatic))
        elif dim.choices is not None and default not in dim.choices:
            continue  # the sampler draws it
        elif dim.choices is None and not (dim.low <= default <= dim.high):
            default = min(max(default, dim.low), dim.high)
        params[dim.key] = default
    return params


def _source_size(table: Any) -> int | None:
    """The median longer side of the first images (None when none can be read)."""
    from medtune.runs.resolve import median_side

    try:
        side = median_side(table)
    except (OSError, ValueError, DataError):
        return None
    return None if side is None else int(side)


def _search(
    db: QueueStorage, name: str, values: dict[str, Any], workers: int, deadline: float, log: Callable[[str], None]
) -> None:
    """Keep search slots queued and workers running until the deadline; then cancel what is still queued. An
    interruption (Ctrl-C) leaves the queue as it is: the interrupted trial was queued again by its worker, and the
    next ``tune`` resumes it from its last checkpoint."""
    ids = db.study_ids([name])
    while time.time() < deadline:
        waiting = db.count("WAITING", ids)
        for _ in range(max(0, 2 * workers - waiting)):
            _enqueue(db, name, _attrs(values, search=True))
        _run_workers(db, name, workers, log)
    for _, trial in db.trials(ids):
        if trial.state.name == "WAITING":
            db.cancel_waiting(trial._trial_id)


def _run_workers(db: QueueStorage, name: str, workers: int, log: Callable[[str], None]) -> None:
    if workers == 1:
        from medtune.experiments.worker import Worker, WorkerOptions

        Worker(db, WorkerOptions(studies=[name], name="tune"), log=log).run()
        return
    from medtune.experiments.pool import run_workers

    run_workers(db.url, workers, [name], False, db.heartbeat, db.grace)
