"""The leaderboard: a row per experiment, the keys that differ between them, ranked by a metric.

Scores come from the database (a worker stores them there when an experiment finishes), so the table works
for workers on other machines. Prediction speed is measured here, on this machine, for each finished run whose
directory is present (cached in ``RUN/speed.json`` per host and thread count): batches of 32 images at the
run's working size through the network in channels-last layout, as `medtune predict` runs it, the best of three
half-second rounds.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medtune._io import atomic_open, write_json
from medtune.config import Config, monitor_mode
from medtune.errors import ConfigError, DataError
from medtune.experiments.queue import elapsed_minutes, state_of
from medtune.experiments.storage import QueueStorage
from medtune.runs.run import EPOCH_BASE
from medtune.tasks import get_task

#: Metrics the leaderboard can rank by: the best validation epoch's, or the test split's.
#: Segmentation experiments (``task: segment``) are ranked by Dice (HD95: lowest first).
VAL_METRICS = ("val_auc", "val_acc", "val_balanced_acc", "val_f1", "val_loss", "val_nll", "val_dice", "val_iou")
TEST_NAMES = ("auc", "accuracy", "balanced_accuracy", "f1", "dice", "iou", "hd95")
TEST_METRICS = tuple(f"test_{name}" for name in TEST_NAMES)
METRICS = VAL_METRICS + TEST_METRICS
#: ``--metric auto``: the monitor every experiment chose its epochs by (val_dice for segmenters, val_nll for
#: ``medtune tune``), else val_auc.
AUTO_METRIC = "auto"
FORMATS = ("table", "csv", "md", "xlsx")
#: Configuration keys never shown as differing (they do not change what a run computes).
_HIDDEN = frozenset({"name", "workers", "cache_dir", "devices", "accelerator", "report"})
_ORDER = {"finished": 0, "running": 1, "pruned": 2, "queued": 3, "failed": 4, "cancelled": 5, "retried": 6}


def leaderboard_frame(
    storage: QueueStorage, metric: str = AUTO_METRIC, studies: Sequence[str] | None = None, speed: bool = True
) -> pd.DataFrame:
    """One row per experiment with numeric columns (intervals as ``_low`` / ``_high``), ranked by `metric`
    (finished experiments first, best first; the rest after them by id).

    Columns: ``id, study, rank, state``, then the configuration keys that differ between the rows, then ``best
    epoch``, the validation metrics of the best epoch, test metrics with intervals, ``epochs, wall_min, params,
    weights_mb, images_per_s``, the run directory and the error if any.
    """
    if metric not in (*METRICS, AUTO_METRIC):
        raise ConfigError(f"--metric {metric}: choose one of {', '.join((AUTO_METRIC, *METRICS))}")
    trials = storage.trials(storage.study_ids(studies) if studies else None)
    rows: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []
    for study, trial in trials:
        state = state_of(trial)
        if state == "retried":
            continue  # its retry has a row of its own
        attrs = trial.user_attrs
        configs.append(_full_config(attrs.get("config") or {}, trial.params))
        result = attrs.get("result") or {}
        row: dict[str, Any] = {"id": trial._trial_id, "study": study, "state": state, "probe": attrs.get("probe")}
        row.update(_scores(result, trial))
        row["epochs"] = result.get("epochs", len(trial.intermediate_values) or None)
        row["wall_min"] = _wall_minutes(trial)
        row["params"] = result.get("params")
        row["weights_mb"] = round(result["weights_bytes"] / 2**20, 2) if result.get("weights_bytes") else None
        run = attrs.get("run")
        row["images_per_s"] = _speed(Path(run)) if speed and run and state == "finished" else None
        row["run"] = run
        row["error"] = (attrs.get("error") or "").strip().splitlines()[-1:] or [""]
        row["error"] = row["error"][0] if state in ("failed", "pruned", "cancelled") else ""
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["id", "study", "rank", "state"])
    frame = pd.DataFrame(rows)
    unused = [c for c in frame if c.startswith(("val_", "test_", "probe")) and frame[c].isna().all()]
    frame = frame.drop(columns=unused)  # a classification board shows no Dice columns, and the reverse
    if metric == AUTO_METRIC:
        # the metric the experiments chose their epochs by, when they agree (a tune study's val_nll), else the task's
        monitors = {c.get("monitor") or get_task(c.get("task") or "classify").monitor for c in configs}
        metric = monitors.pop() if len(monitors) == 1 else "val_auc"
    if metric not in frame:
        frame[metric] = None
    keys = differing_keys(configs)
    settings = pd.DataFrame([{k: _show(k, c.get(k)) for k in keys} for c in configs], index=frame.index)
    frame = pd.concat([frame[["id", "study", "state"]], settings, frame.drop(columns=["id", "study", "state"])], axis=1)
    ranked = rank(frame, metric)
    ranked.attrs["metric"] = metric  # what `auto` chose
    return ranked


def best_run(storage: QueueStorage, metric: str = AUTO_METRIC, studies: Sequence[str] | None = None) -> Path:
    """The run directory of the leaderboard's top finished experiment by `metric`.

    Raises:
        DataError: no experiment has finished (in `studies`).
    """
    frame = leaderboard_frame(storage, metric, studies, speed=False)
    finished = frame[(frame["state"] == "finished") & frame["run"].notna()]
    if finished.empty:
        where = f" in {', '.join(studies)}" if studies else ""
        raise DataError(f"no finished experiment{where} to export; run `medtune queue run` first, or name a RUN")
    return Path(finished.iloc[0]["run"])


def rank(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Sort finished rows by `metric` (best first; lowest for a loss), the others after them; add ``rank``."""
    ascending = metric.endswith(("loss", "nll", "hd95"))
    finished = frame[frame["state"] == "finished"].sort_values(metric, ascending=ascending, na_position="last")
    others = frame[frame["state"] != "finished"].copy()
    others = others.assign(_o=others["state"].map(_ORDER).fillna(9)).sort_values(["_o", "id"]).drop(columns="_o")
    finished = finished.assign(rank=range(1, len(finished) + 1))
    out = pd.concat([finished, others], ignore_index=True)
    out.insert(2, "rank", out.pop("rank").astype("Int64"))
    return out


def differing_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Configuration keys whose value is not the same in every experiment (all swept keys among them)."""
    keys = [k for k in Config.model_fields if k not in _HIDDEN]
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1]


def _full_config(values: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    merged = {**values, **params}
    try:
        return Config(**merged).model_dump(mode="json")
    except Exception:
        return merged


def _show(key: str, value: Any) -> Any:
    if key == "data" and value:
        return "/".join(Path(value).parts[-2:])
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return float(f"{value:.4g}")  # a searched value: 0.008312, not 0.008312381880532084
    return value


def _best_epoch(result: dict[str, Any]) -> int | None:
    """The kept epoch of a finished experiment, counted from 1: results recorded before ``epoch_base`` counted
    from 0."""
    if result.get("best_epoch") is None:
        return None
    return int(result["best_epoch"]) + (0 if result.get("epoch_base") == EPOCH_BASE else 1)


def _scores(result: dict[str, Any], trial: Any) -> dict[str, Any]:
    val = result.get("val") or {}
    out: dict[str, Any] = {"best_epoch": _best_epoch(result)}
    for key in VAL_METRICS:
        out[key] = val.get(key)
    monitor = result.get("monitor") or (trial.user_attrs.get("config") or {}).get("monitor", "val_auc")
    if not result and trial.intermediate_values and trial.state.name in ("PRUNED", "RUNNING"):
        best = min if monitor_mode(monitor) == "min" else max
        out[monitor] = best(trial.intermediate_values.values())  # its best so far (the metric it reports)

    test = result.get("test") or {}
    for name in TEST_NAMES:
        value, low, high = (test.get(name) or [None, None, None])[:3]
        out[f"test_{name}"], out[f"test_{name}_low"], out[f"test_{name}_high"] = value, low, high
    return out


def _wall_minutes(trial: Any) -> float | None:
    minutes = elapsed_minutes(trial)
    return None if minutes is None else round(minutes, 2)


def _speed(run: Path, batch: int = 32, seconds: float = 0.5, rounds: int = 3) -> float | None:
    """Images per second of the run's best network on this machine (cached in ``RUN/speed.json``): the best of
    `rounds` rounds of at least `seconds` each."""
    import torch

    from medtune.runs import Run
    from medtune.runs.resolve import network_channels
    from medtune.runs.trained import load_network

    cache_file = Run(run).speed_file
    key = f"{socket.gethostname()}/threads={torch.get_num_threads()}/batch={batch}"
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8")) if cache_file.is_file() else {}
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]["images_per_s"]
    if not Run(run).best_checkpoint.is_file():
        return None
    trained = load_network(run)
    model = trained.inference_model().eval()
    size = trained.config.image_size
    images = torch.randint(0, 256, (batch, network_channels(trained.config), size, size), dtype=torch.uint8)
    rates = []
    with torch.inference_mode():
        model(images)  # warm-up: first-call allocations
        for _ in range(rounds):  # the best round, as timeit does: the others met interference, not the network
            done, started = 0, time.perf_counter()
            while done < 2 * batch or time.perf_counter() - started < seconds:
                model(images)
                done += batch
            rates.append(done / (time.perf_counter() - started))
    rate = round(max(rates), 1)
    cache[key] = {"images_per_s": rate, "size": size, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    with contextlib.suppress(OSError):  # a read-only run directory: measured again next time
        write_json(cache_file, cache)
    return rate


# -- output ------------------------------------------------------------------------------------------------------
#: Columns a terminal table leaves out (they are in the CSV, Markdown and spreadsheet).
_WIDE = ("val_acc", "val_balanced_acc", "val_f1", "val_loss", "val_iou", "test_balanced_accuracy", "test_f1", "run")


def display_frame(frame: pd.DataFrame, compact: bool = False, metric: str = AUTO_METRIC) -> pd.DataFrame:
    """Numbers formatted for reading: intervals joined into ``0.950 [0.930, 0.968]``, sizes rounded.

    Args:
        frame: from `leaderboard_frame`.
        compact: for a terminal: drop the study when there is one, and the secondary metrics (keeping `metric`).
    """
    out = frame.copy()
    if compact:
        drop = [c for c in _WIDE if c in out and c != metric]
        drop += [f"{c}_{end}" for c in drop if c.startswith("test_") for end in ("low", "high")]
        drop += ["rank", "best_epoch"]  # the order is the rank; epochs says how long it trained
        if out["study"].nunique() <= 1:
            drop.append("study")
        out = out.drop(columns=[c for c in drop if c in out])
    for name in TEST_NAMES:
        column = f"test_{name}"
        if column in out and f"{column}_low" in out:
            out[column] = [
                _interval(v, lo, hi, 2 if compact else 3)
                for v, lo, hi in zip(out[column], out[f"{column}_low"], out[f"{column}_high"], strict=True)
            ]
            out = out.drop(columns=[f"{column}_low", f"{column}_high"])
    for column in VAL_METRICS:
        if column in out:
            out[column] = [_num(v) for v in out[column]]
    if "params" in out:
        out["params"] = [f"{v / 1e6:.2f}M" if _present(v) else "" for v in out["params"]]
    for column in ("wall_min", "weights_mb", "images_per_s"):
        if column in out:
            out[column] = [_num(v, 1) for v in out[column]]
    for column in ("best_epoch", "epochs", "rank"):
        if column in out:
            out[column] = [str(int(v)) if _present(v) else "" for v in out[column]]
    out = out.drop(columns=[c for c in ("run",) if c in out])
    if "error" in out and not out["error"].astype(bool).any():
        out = out.drop(columns="error")
    return out.rename(columns=_SHORT if compact else _HEADERS)


_HEADERS = {
    "best_epoch": "best epoch",
    "val_auc": "val AUC",
    "val_acc": "val acc",
    "val_balanced_acc": "val bal.acc",
    "val_f1": "val F1",
    "val_loss": "val loss",
    "test_auc": "test AUC [95% CI]",
    "test_accuracy": "test acc [95% CI]",
    "test_balanced_accuracy": "test bal.acc [95% CI]",
    "test_f1": "test F1 [95% CI]",
    "val_dice": "val Dice",
    "val_iou": "val IoU",
    "test_dice": "test Dice [95% CI]",
    "test_iou": "test IoU [95% CI]",
    "test_hd95": "test HD95 px [95% CI]",
    "wall_min": "wall min",
    "weights_mb": "weights MB",
    "images_per_s": "images/s",
}


_SHORT = {
    **_HEADERS,
    "test_auc": "test AUC",
    "test_accuracy": "test acc",
    "test_dice": "test Dice",
    "test_iou": "test IoU",
    "test_hd95": "test HD95",
    "wall_min": "min",
    "weights_mb": "MB",
    "images_per_s": "img/s",
}


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA


def _num(value: Any, digits: int = 3) -> str:
    return f"{float(value):.{digits}f}" if _present(value) else ""


def _interval(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    if not _present(value):
        return ""
    if _present(low) and _present(high):
        return f"{value:.3f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{value:.3f}"


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    shown = display_frame(frame).astype(str).replace({"None": "", "nan": "", "<NA>": ""})
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def check_format(fmt: str, out: str | os.PathLike | None) -> None:
    """Refuse an unknown format, and xlsx without a file (it cannot be printed)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if fmt == "xlsx" and out is None:
        raise ConfigError("--format xlsx writes a file: add --out leaderboard.xlsx")


def write_leaderboard(frame: pd.DataFrame, fmt: str, out: str | os.PathLike | None) -> Path | None:
    """Write `frame` as CSV, Markdown or a spreadsheet (a sheet per study); returns the file (None: printed)."""
    check_format(fmt, out)
    if out is None:
        return None
    path = Path(out)
    if path.parent and not path.parent.is_dir():
        raise DataError(f"cannot write {path}: the folder {path.parent} does not exist")
    if fmt == "csv":
        with atomic_open(path, "w", encoding="utf-8", newline="") as f:
            frame.to_csv(f, index=False)
    elif fmt == "md":
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(to_markdown(frame))
    else:
        _write_xlsx(frame, path)
    return path


def _write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    """One sheet per study, numbers kept numeric (intervals in their own columns), the header frozen."""
    import re

    with atomic_open(path, "wb") as f, pd.ExcelWriter(f, engine="openpyxl") as writer:
        studies = list(dict.fromkeys(frame["study"])) if len(frame) else ["leaderboard"]
        used: set[str] = set()
        for study in studies:
            part = frame[frame["study"] == study] if len(frame) else frame
            keep = [c for c in part.columns if part[c].notna().any() or c in ("id", "study", "rank", "state")]
            configs = part[keep]
            name = re.sub(r"[\[\]:*?/\\]", "_", str(study))[:31] or "study"
            while name in used:
                name = name[:28] + f"-{len(used)}"
            used.add(name)
            configs.to_excel(writer, sheet_name=name, index=False)
            sheet = writer.sheets[name]
            sheet.freeze_panes = "A2"
            for cells in sheet.columns:
                width = max(len(str(c.value)) if c.value is not None else 0 for c in cells)
                sheet.column_dimensions[cells[0].column_letter].width = min(60, max(8, width + 2))
