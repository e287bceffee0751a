"""What the Python API gives back: small typed objects with ``.to_frame()`` (pandas), a readable ``repr`` and a
table in Jupyter (``_repr_html_``).

`Predictions` (one `Prediction` per image) come from `medtune.predict` and `medtune.load`'s predictor;
`EvaluationResult` from `medtune.evaluate`; `TrainingResult` from `medtune.train`. The last two extend the
library's own `Evaluation` and `TrainResult`, so code written against those keeps working.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from medtune.apply.evaluate import Evaluation
from medtune.fitting.train import TrainResult

#: Rows shown by ``repr`` and in Jupyter before the rest is summarised.
SHOWN = 10
#: Classes a prediction's ``repr`` shows, most probable first.
SHOWN_CLASSES = 4
#: Numbers of metrics.json that describe the evaluation rather than score it.
_META = ("n", "confidence", "n_bootstrap", "image_size")


@dataclass(frozen=True)
class Prediction:
    """One image's answer.

    Attributes:
        file: the image file, or ``array[i]`` / ``image[i]`` for the i-th image given in memory.
        label: the predicted class (None when unreadable, or withheld by the guard with ``reject=True``).
        confidence: the probability of `label` (None for multi-label runs and unreadable images).
        probabilities: every class's probability, in the run's class order (empty when unreadable).
        labels: multi-label runs: the findings at or above their thresholds (None for single-label runs).
        in_distribution: the guard's verdict (None when the run has no guard or the image was unreadable).
        error: why the image could not be read (None when it was).
    """

    file: str
    label: str | None
    confidence: float | None
    probabilities: dict[str, float]
    labels: tuple[str, ...] | None = None
    in_distribution: bool | None = None
    error: str | None = None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"Prediction({self.file!r}: unreadable: {self.error})"
        answer = "|".join(self.labels) if self.labels is not None else self.label
        top = sorted(self.probabilities.items(), key=lambda item: -item[1])
        shown = top if len(top) <= SHOWN_CLASSES else top[:SHOWN_CLASSES]
        more = f", {len(top) - len(shown)} more" if len(top) > len(shown) else ""
        shares = ", ".join(f"{name} {p:.3f}" for name, p in shown) + more
        flag = "" if self.in_distribution is not False else ", unlike the training images"
        return f"Prediction({self.file!r}: {answer} ({shares}){flag})"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _row_prediction(row: Mapping[str, Any], classes: tuple[str, ...]) -> Prediction:
    error = _text(row.get("error"))
    labels = row.get("labels")
    confidence = row.get("confidence")
    verdict = row.get("in_distribution")
    return Prediction(
        file=str(row["file"]),
        label=_text(row.get("label")),
        confidence=None if confidence is None or pd.isna(confidence) else float(confidence),
        probabilities={} if error else {c: float(row[f"prob_{c}"]) for c in classes},
        labels=tuple(n for n in labels.split("|") if n) if isinstance(labels, str) else None,
        in_distribution=verdict if isinstance(verdict, bool) else None,
        error=error,
    )


@dataclass(frozen=True, eq=False)
class Predictions:
    """The answers for a set of images, in input order: iterate for `Prediction` objects, index with ``[i]`` (one
    image) or ``["column"]`` (a column, as in pandas), or take the whole table with `to_frame`.

    Attributes:
        frame: one row per image, as ``medtune predict`` writes them: ``file``, ``label`` (multi-label:
            ``labels``), ``confidence``, ``prob_<class>``, ``error``, and the guard's ``guard_score`` and
            ``in_distribution`` when the run has a guard.
        classes: the run's classes, in output order.
        model: the run or exported model that answered.
    """

    frame: pd.DataFrame
    classes: tuple[str, ...]
    model: str

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Prediction]:
        return (_row_prediction(row, self.classes) for row in self.frame.to_dict("records"))

    @overload
    def __getitem__(self, key: int) -> Prediction: ...
    @overload
    def __getitem__(self, key: str) -> pd.Series: ...
    def __getitem__(self, key: int | str) -> Prediction | pd.Series:
        if isinstance(key, str):
            return self.frame[key]
        return _row_prediction(self.frame.iloc[key].to_dict(), self.classes)

    def to_frame(self) -> pd.DataFrame:
        """A copy of the table: one row per image."""
        return self.frame.copy()

    @property
    def attrs(self) -> dict[str, Any]:
        """What the prediction added beside the rows: ``calibration``, ``guard`` (counts) and ``warnings``."""
        return self.frame.attrs

    @property
    def labels(self) -> list[str | None]:
        """Each image's predicted class (multi-label: its ``|``-joined findings); None where unreadable."""
        column = "labels" if "labels" in self.frame else "label"
        return [_text(v) for v in self.frame[column]]

    @property
    def probabilities(self) -> np.ndarray:
        """``(N, K)`` float32 class probabilities in the order of `classes` (NaN rows for unreadable images)."""
        return self.frame[[f"prob_{c}" for c in self.classes]].to_numpy(dtype=np.float32)

    @property
    def errors(self) -> dict[str, str]:
        """The images that could not be read, with why."""
        failed = self.frame[self.frame["error"].notna()]
        return dict(zip(failed["file"].astype(str), failed["error"].astype(str), strict=True))

    def _summary(self) -> str:
        counts = pd.Series([v for v in self.labels if v is not None], dtype=object).value_counts()
        answers = ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"
        failed = f"; {len(self.errors)} unreadable" if self.errors else ""
        return f"{len(self)} image(s) predicted by {self.model}: {answers}{failed}"

    def __repr__(self) -> str:
        lines = [f"Predictions({self._summary()})"]
        lines += [f"  {p!r}" for p in list(self)[:SHOWN]]
        if len(self) > SHOWN:
            lines.append(f"  ... {len(self) - SHOWN} more (.to_frame() holds them all)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        shown = self.frame.head(SHOWN).to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4f}")
        more = f"<p>... {len(self) - SHOWN} more rows: <code>.to_frame()</code></p>" if len(self) > SHOWN else ""
        return f"<div><p><b>Predictions</b>: {html.escape(self._summary())}</p>{shown}{more}</div>"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def metrics_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The headline numbers of a ``metrics.json`` as a table: ``metric``, ``value`` and the bootstrap interval's
    ``low`` and ``high`` (NaN where there is none). Averages over classes are named ``macro_auc``,
    ``micro_auc``, ``weighted_f1``..."""
    intervals = metrics.get("intervals", {})
    rows = []
    for name, value in metrics.items():
        if name not in _META and _finite(value):
            rows.append((name, value, intervals.get(name)))
        elif name in ("macro", "micro", "weighted") and isinstance(value, Mapping):
            for key, number in value.items():
                bounds = intervals.get(key if name == "macro" else f"{name}_{key}") if name != "weighted" else None
                if _finite(number):
                    rows.append((f"{name}_{key}", number, bounds))
    return pd.DataFrame(
        [(n, float(v), *(b if isinstance(b, list | tuple) and len(b) == 2 else (None, None))) for n, v, b in rows],
        columns=["metric", "value", "low", "high"],
    ).astype({"low": float, "high": float})


def per_class_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per class (multi-label: per finding) with its numbers and their intervals (``auc_low``...)."""
    bounds = metrics.get("intervals", {}).get("per_class", {})
    rows = []
    for name, values in metrics.get("per_class", {}).items():
        row: dict[str, Any] = {"class": name, **values}
        for key, pair in bounds.get(name, {}).items():
            row[f"{key}_low"], row[f"{key}_high"] = pair
        rows.append(row)
    return pd.DataFrame(rows)


def _headline(metrics: Mapping[str, Any]) -> str:
    """``auc 0.951 [0.930, 0.969], accuracy 0.872 [...]``: the first numbers of `metrics_frame`."""
    frame = metrics_frame(metrics)
    order = ("macro_auc", "accuracy", "balanced_accuracy", "dice", "iou")
    shown = frame[frame["metric"].isin(order)].set_index("metric").reindex([o for o in order if o in set(frame.metric)])
    parts = []
    for name, row in shown.iterrows():
        bounds = "" if pd.isna(row["low"]) else f" [{row['low']:.3f}, {row['high']:.3f}]"
        parts.append(f"{str(name).removeprefix('macro_')} {row['value']:.3f}{bounds}")
    return ", ".join(parts)


def _metrics_html(title: str, metrics: Mapping[str, Any]) -> str:
    number = lambda v: f"{v:.4f}"  # noqa: E731
    head = metrics_frame(metrics).to_html(index=False, na_rep="", float_format=number)
    classes = per_class_frame(metrics)
    per_class = classes.to_html(index=False, na_rep="", float_format=number) if len(classes) else ""
    warnings = "".join(f"<p>warning: {html.escape(str(w))}</p>" for w in metrics.get("warnings", []))
    return f"<div><p><b>{html.escape(title)}</b></p>{head}{per_class}{warnings}</div>"


def _split_of(metrics: Mapping[str, Any]) -> str:
    return ", ".join(metrics.get("split") or []) or "all"


@dataclass(frozen=True, repr=False)
class EvaluationResult(Evaluation):
    """`medtune.evaluate`'s answer: ``metrics`` (the content of ``metrics.json``) and ``out`` (the folder holding
    it and ``predictions.csv``), with the tables a notebook wants."""

    def to_frame(self) -> pd.DataFrame:
        """The headline metrics: ``metric``, ``value``, ``low``, ``high`` (`metrics_frame`)."""
        return metrics_frame(self.metrics)

    def per_class(self) -> pd.DataFrame:
        """One row per class with precision, recall, F1, AUC, support and their intervals."""
        return per_class_frame(self.metrics)

    def predictions(self) -> pd.DataFrame:
        """The evaluated images' rows (``predictions.csv``)."""
        return pd.read_csv(Path(self.out) / "predictions.csv")

    def _title(self) -> str:
        return f"Evaluation on {self.metrics.get('n')} images ({_split_of(self.metrics)})"

    def __repr__(self) -> str:
        return f"EvaluationResult({self._title()}: {_headline(self.metrics)}; out={str(self.out)!r})"

    def _repr_html_(self) -> str:
        return _metrics_html(f"{self._title()}, written to {self.out}", self.metrics)


@dataclass(frozen=True, repr=False)
class TrainingResult(TrainResult):
    """`medtune.train`'s answer: ``run`` (the `Run` directory), ``metrics`` (its test evaluation), ``resumed``,
    ``report`` and ``report_error``, with the tables a notebook wants."""

    @classmethod
    def of(cls, result: TrainResult) -> TrainingResult:
        """The same result, typed for the Python API."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(result)})

    @property
    def path(self) -> Path:
        """The run directory (give it to `medtune.load`, `medtune.evaluate`, `medtune.report`...)."""
        return self.run.path

    def to_frame(self) -> pd.DataFrame:
        """The headline test metrics: ``metric``, ``value``, ``low``, ``high`` (`metrics_frame`)."""
        return metrics_frame(self.metrics)

    def history(self) -> pd.DataFrame:
        """One row per epoch (``history.csv``): losses, metrics, learning rate and time."""
        return pd.read_csv(self.run.history_file)

    def evaluation(self) -> EvaluationResult:
        """The run's test evaluation as `medtune.evaluate` gives it."""
        return EvaluationResult(self.metrics, self.run.path)

    def _title(self) -> str:
        verb = "resumed and finished" if self.resumed else "finished"
        return f"run {verb}: {self.run.path}; {_split_of(self.metrics)} split, {self.metrics.get('n')} images"

    def __repr__(self) -> str:
        report = f"report={str(self.report)!r}" if self.report else f"no report: {self.report_error or 'report=false'}"
        return f"TrainingResult({self._title()}: {_headline(self.metrics)}; {report})"

    def _repr_html_(self) -> str:
        link = f"<p>report: {html.escape(str(self.report))}</p>" if self.report else ""
        return _metrics_html(self._title(), self.metrics) + link
