"""Experiments in the queue: adding them (one by one, as a grid, or as search slots), their state, cancel, retry.

An experiment is an Optuna trial. Its user attributes hold what a worker needs:

    config       the settings that differ from medtune's defaults (data and other paths made absolute)
    root         the folder under which its run directory is made (``<cwd>/runs`` of whoever queued it)
    run          its run directory, fixed when first claimed (so a resumed trial finds its checkpoint)
    queue_state  queued | cancel_requested | cancelled | retried
    search       true for a search slot: the worker asks the study's sampler for the swept values
    worker       who runs it now; claims and recovered count claims and heartbeat recoveries
    error        why it failed; result: its scores, size and time once finished

A grid's values are also Optuna parameters (``fixed_params``), so Optuna's own tools see them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.config import Config
from medtune.config.merge import parse_overrides, read_yaml, validate_config
from medtune.errors import ConfigError, DataError
from medtune.experiments.storage import QueueStorage, set_attr

#: Study that ``queue add`` uses when none is named.
DEFAULT_STUDY = "queue"
#: Keys whose value is a path: made absolute when queued, since workers may start elsewhere.
PATH_KEYS = ("data", "split_file", "weights", "cache_dir")
#: Keys whose values are lists: a sweep never splits them at commas.
LIST_KEYS = frozenset({"labels", "classes", "class_weights", "domains", "keep_classes"})
#: What `queue status` and the leaderboard call each (Optuna state, queue_state).
STATES = {"WAITING": "queued", "RUNNING": "running", "COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed"}


def experiment_values(file: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings of one experiment: YAML `file` < `overrides`, validated, reduced to what differs from the
    defaults, with paths absolute.

    Raises:
        ConfigError: an unknown key or a bad value (nothing is queued).
    """
    merged = read_experiment_yaml(file) if file else {}
    merged.update(overrides or {})
    from medtune.runs.resolve import check_names

    config = validate_config(merged)
    check_names(config)
    if not config.data:
        raise ConfigError("an experiment needs data: give DATA (a folder, CSV/TSV or .npz) or data: in the YAML")
    values = config.model_dump(mode="json", exclude_defaults=True)
    for key in PATH_KEYS:
        if values.get(key):
            values[key] = str(Path(values[key]).expanduser().resolve())
    if not Path(values["data"]).exists():
        raise DataError(f"data {values['data']} does not exist; give a folder, CSV/TSV manifest or .npz file")
    return values


def read_experiment_yaml(file: str | Path) -> dict[str, Any]:
    """A YAML experiment file; its ``data:`` is relative to the file's folder."""
    values = read_yaml(file)
    if values.get("data") and not Path(str(values["data"])).is_absolute():
        values["data"] = str(Path(file).parent / str(values["data"]))
    return values


def elapsed_minutes(trial: Any, until_now: bool = False) -> float | None:
    """Minutes from an experiment's first start to its end (to now when `until_now` and it has not ended)."""
    import time
    from datetime import UTC

    start = trial.user_attrs.get("first_start")
    if start is None or (trial.datetime_complete is None and not until_now):
        return None
    end = trial.datetime_complete.replace(tzinfo=UTC).timestamp() if trial.datetime_complete else time.time()
    return (end - float(start)) / 60


def direction_of(values: Mapping[str, Any]) -> str:
    from medtune.config import monitor_mode

    monitor = values.get("monitor", Config.model_fields["monitor"].default)
    return "minimize" if monitor_mode(monitor) == "min" else "maximize"


def _enqueue(
    storage: QueueStorage, study: str, attrs: Mapping[str, Any], params: Mapping[str, Any] | None = None
) -> int:
    """Queue one experiment (a WAITING trial) in `study`; returns its id."""
    import optuna

    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING,
        system_attrs={"fixed_params": dict(params or {})},
        user_attrs={"queue_state": "queued", **attrs},
    )
    return storage.rdb.create_new_trial(storage.rdb.get_study_id_from_name(study), template_trial=trial)


def _attrs(values: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"config": dict(values), "root": str(runs_root()), **extra}


def runs_root() -> Path:
    """Where run directories of queued experiments go: ``runs/`` under the current folder."""
    from medtune.runs.run import RUNS_DIR

    return (Path.cwd() / RUNS_DIR).resolve()


def add_experiments(
    storage: QueueStorage,
    experiments: Sequence[Mapping[str, Any]],
    study: str = DEFAULT_STUDY,
    root: str | Path | None = None,
) -> list[int]:
    """Queue experiments (each a dict from `experiment_values`) in `study`; returns their ids. Their run
    directories go under `root` (default ``runs/`` of the current folder)."""
    if not experiments:
        raise ConfigError("nothing to queue: give a YAML file or DATA with key=value settings")
    storage.create_study(study, direction_of(experiments[0]), {"kind": "queue"})
    where = {} if root is None else {"root": str(Path(root).resolve())}
    return [_enqueue(storage, study, {**_attrs(values), **where}) for values in experiments]


# -- sweeps ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """One swept key: a list of choices, or a numeric range (for ``--search``).

    Attributes:
        key: the configuration key.
        choices: the values of a list (None for a range).
        low, high, log, integer: the range.
        when: ``(key, value)``: searched only in trials where that key has that value (mixup only where
            ``task=classify``); the others keep the configuration's value.
    """

    key: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    when: tuple[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        found = {"when": list(self.when)} if self.when else {}
        if self.choices is not None:
            return {"choices": list(self.choices), **found}
        return {"low": self.low, "high": self.high, "log": self.log, "int": self.integer, **found}

    @classmethod
    def from_dict(cls, key: str, data: Mapping[str, Any]) -> Dimension:
        when = tuple(data["when"]) if data.get("when") else None
        if "choices" in data:
            return cls(key, tuple(data["choices"]), when=when)
        return cls(key, None, data["low"], data["high"], bool(data["log"]), bool(data["int"]), when)

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether this dimension is searched in a trial whose other settings are `values`."""
        return self.when is None or values.get(self.when[0]) == self.when[1]

    def suggest(self, trial: Any) -> Any:
        """The value for `trial`, drawn by its study's sampler (or the value already fixed for it)."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)


def parse_sweep(arguments: Sequence[str], task: str = "classify") -> tuple[dict[str, Any], list[Dimension]]:
    """Split sweep arguments into fixed ``key=value`` settings and swept dimensions.

    ``key=a,b,c`` sweeps a list (every combination in a grid; choices in a search); ``key=LOW..HIGH`` is a range
    for ``--search`` (``:log`` after it for a log scale). Keys that hold lists (classes, labels, class_weights)
    are never split at commas. Swept names are checked against the registries of `task` (a segmentation sweep's
    losses are smp's: ``loss=dice,jaccard,dice+bce``).

    >>> fixed, dims = parse_sweep(["epochs=3", "optimizer=adam,sgd", "lr=1e-4..1e-2:log"])
    >>> fixed, [d.to_dict() for d in dims]
    ({'epochs': 3}, [{'choices': ['adam', 'sgd']}, {'low': 0.0001, 'high': 0.01, 'log': True, 'int': False}])
    """
    fixed: list[str] = []
    dims: list[Dimension] = []
    for item in arguments:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ConfigError(f"cannot read {item!r}: a sweep takes key=value, key=a,b,c or key=LOW..HIGH")
        if key in LIST_KEYS or key not in Config.model_fields:
            fixed.append(item)  # validated (with suggestions for unknown keys) with the rest
            continue
        log = raw.endswith(":log")
        body = raw.removesuffix(":log")
        if ".." in body:
            dims.append(_range(key, body, log))
        elif "," in raw:
            values = [
                _typed(key, parse_overrides([f"{key}={part.strip()}"])[key], task)
                for part in raw.split(",")
                if part.strip()
            ]
            if len(set(map(repr, values))) != len(values):
                raise ConfigError(f"{key}={raw}: a value is listed twice")
            dims.append(Dimension(key, tuple(values)))
        else:
            fixed.append(item)
    return parse_overrides(fixed), dims


def _typed(key: str, value: Any, task: str = "classify") -> Any:
    """`value` as the key's type (YAML reads ``1e-3`` as text; the configuration wants a float)."""
    from pydantic import TypeAdapter, ValidationError

    from medtune.runs.resolve import check_name

    try:
        typed = TypeAdapter(Config.model_fields[key].annotation).validate_python(value)
        check_name(key, typed, task)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise ConfigError(f"{key}={value!r} in the sweep: {problem}") from None
    except ConfigError as exc:
        raise ConfigError(f"{key}={value!r} in the sweep: {exc}") from None
    return typed


def _range(key: str, body: str, log: bool) -> Dimension:
    low_text, _, high_text = body.partition("..")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise ConfigError(f"{key}={body}: a range is LOW..HIGH with numbers, e.g. lr=1e-4..1e-2:log") from None
    if not low < high:
        raise ConfigError(f"{key}={body}: LOW must be below HIGH")
    if log and low <= 0:
        raise ConfigError(f"{key}={body}:log: a log scale needs LOW > 0")
    annotation = Config.model_fields[key].annotation
    integer = annotation is int or (annotation == int | None)
    if integer and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"{key} takes whole numbers; got the range {body}")
    return Dimension(key, None, low, high, log, integer)


def grid(dims: Sequence[Dimension]) -> list[dict[str, Any]]:
    """Every combination of the swept lists, in order (the last key varies fastest)."""
    for dim in dims:
        if dim.choices is None:
            raise ConfigError(
                f"{dim.key}={dim.low}..{dim.high} is a range: a grid needs lists (key=a,b,c); add --search N to "
                "search ranges"
            )
    return [
        dict(zip([d.key for d in dims], combo, strict=True)) for combo in itertools.product(*(d.choices for d in dims))
    ]


def next_study_name(storage: QueueStorage, prefix: str = "sweep") -> str:
    taken = set(storage.study_names())
    return next(f"{prefix}-{n}" for n in itertools.count(1) if f"{prefix}-{n}" not in taken)


def add_sweep(
    storage: QueueStorage,
    base: Mapping[str, Any],
    dims: Sequence[Dimension],
    study: str | None = None,
    search: int | None = None,
) -> tuple[str, list[int]]:
    """Queue a grid (every combination of `dims`) or, with `search`, that many search slots.

    Every combination (for a search: both ends of every range, and every choice) is validated before anything is
    queued, so a bad value fails at once rather than in a worker.

    Returns:
        The study name and the queued ids.
    """
    if not dims:
        raise ConfigError("nothing is swept: give at least one key with several values (key=a,b) or a range")
    name = study or next_study_name(storage)
    if search is not None:
        if search < 1:
            raise ConfigError(f"--search {search}: give the number of trials, 1 or more")
        for dim in dims:
            for value in dim.choices if dim.choices is not None else (dim.low, dim.high):
                value = int(value) if dim.integer else value
                experiment_values(None, {**base, dim.key: value})
        values = experiment_values(None, base)
        space = {d.key: d.to_dict() for d in dims}
        storage.create_study(
            name, direction_of(values), {"kind": "search", "space": space, "monitor": _monitor(values)}
        )
        return name, [_enqueue(storage, name, _attrs(values, search=True)) for _ in range(search)]
    combos = grid(dims)
    experiments = [(experiment_values(None, {**base, **combo}), combo) for combo in combos]
    space = {d.key: d.to_dict() for d in dims}
    first = experiments[0][0]
    storage.create_study(name, direction_of(first), {"kind": "grid", "space": space, "monitor": _monitor(first)})
    return name, [_enqueue(storage, name, _attrs(values), combo) for values, combo in experiments]


def _monitor(values: Mapping[str, Any]) -> str:
    return str(values.get("monitor", Config.model_fields["monitor"].default))


def search_space(study_attrs: Mapping[str, Any]) -> list[Dimension]:
    return [Dimension.from_dict(k, v) for k, v in (study_attrs.get("space") or {}).items()]


# -- state, cancel, retry ----------------------------------------------------------------------------------------
def state_of(trial: Any) -> str:
    """queued, running, finished, pruned, failed, cancelled or retried."""
    queue_state = trial.user_attrs.get("queue_state")
    if trial.state.name == "FAIL" and queue_state in ("cancelled", "retried"):
        return queue_state
    if trial.state.name == "RUNNING" and queue_state == "cancel_requested":
        return "cancelling"
    return STATES[trial.state.name]


def cancel(storage: QueueStorage, trial_id: int) -> str:
    """Cancel a queued experiment, or ask the worker of a running one to stop.

    Returns:
        What happened: ``cancelled`` or ``stopping``.

    Raises:
        DataError: the experiment has already ended.
    """
    trial = storage.trial(trial_id)
    if trial.state.name == "WAITING":
        storage.rdb.set_trial_user_attr(trial_id, "queue_state", "cancelled")
        if storage.cancel_waiting(trial_id):
            return "cancelled"
        trial = storage.trial(trial_id)  # claimed meanwhile: stop it as a running one
    if trial.state.name == "RUNNING":
        storage.rdb.set_trial_user_attr(trial_id, "queue_state", "cancel_requested")
        return "stopping"
    raise DataError(f"experiment {trial_id} has already ended ({state_of(trial)}); there is nothing to cancel")


def retry(storage: QueueStorage, trial_id: int) -> int:
    """Queue a failed, pruned or cancelled experiment again, in the same run directory (it resumes from its last
    checkpoint when it has one).

    Returns:
        The id of the new queued experiment.

    Raises:
        DataError: the experiment is queued, running or finished.
    """
    trial = storage.trial(trial_id)
    state = state_of(trial)
    if state not in ("failed", "pruned", "cancelled"):
        hint = " (already retried as a new id: see `medtune queue status`)" if state == "retried" else ""
        raise DataError(f"experiment {trial_id} is {state}; only failed, pruned or cancelled ones can be retried{hint}")
    attrs = {k: v for k, v in trial.user_attrs.items() if k in ("config", "root", "run", "search")}
    attrs["retry_of"] = trial_id
    params = dict(trial.params) or storage.rdb.get_trial_system_attrs(trial_id).get("fixed_params", {})
    new_id = _enqueue(storage, storage.study_of(trial_id), attrs, params)
    if trial.state.name == "FAIL":
        with storage.transaction() as conn:  # the old row says where it went; Optuna refuses edits to ended trials
            set_attr(conn, trial_id, "queue_state", "retried")
            set_attr(conn, trial_id, "retried_as", new_id)
    return new_id


def describe(values: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """A short label: ``key=value`` pairs (the swept `keys`, else every non-default setting but the data)."""
    keys = keys if keys is not None else [k for k in values if k not in ("data",)]
    parts = []
    for key in keys:
        value = values.get(key, Config.model_fields[key].default if key in Config.model_fields else None)
        if isinstance(value, float) and not math.isnan(value):
            value = f"{value:.4g}"
        parts.append(f"{key}={value}")
    return " ".join(parts)
