"""``medtune report``: one self-contained HTML page per run, a comparison page for several runs, and a PNG per plot.

A page holds its plots as embedded PNG images and its style inline, with no script and no external file, so it
opens anywhere without a network and can be mailed as one file. The PNGs are also written beside the page
(``RUN/report/*.png``) for slides and papers. Sections live in `medtune.reports.sections` and
`medtune.reports.mistakes`, the page machinery in `medtune.reports.page`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medtune.errors import DataError, MedtuneError
from medtune.reports.guard import guard_section
from medtune.reports.mistakes import attention_section, mistakes_section
from medtune.reports.page import Section, create_plot, format_interval, format_value, html_table, write_page
from medtune.reports.plots import plot_history
from medtune.reports.results import RunResults, read_results
from medtune.reports.search import search_section
from medtune.reports.sections import (
    CURVES,
    config_section,
    config_value,
    data_section,
    evaluation_sections,
    evaluations_section,
    headline,
    training_section,
)
from medtune.runs.segmasks import is_segmentation_run


def create_report(run: str | os.PathLike, out: str | os.PathLike | None = None, mistakes: int = 12,
                  method: str = "gradcam", masks: str | os.PathLike | None = None,
                  layer: str | None = None) -> Path:  # fmt: skip
    """Write a run's report page (``RUN/report.html`` by default) and its plots (``RUN/report/*.png``).

    Args:
        run: the run directory.
        out: the page to write.
        mistakes: how many of the most confident mistakes to show (0: none).
        method: the class activation map of the mistakes (see ``medtune explain``).
        masks: a folder of masks named like the images (``lungseg/masks``), or a segmentation run that segments
            them: adds the share of each map inside its mask, for up to 64 evaluated images. A run trained with
            ``masks=SEG_RUN`` gets this section from its own segmenter without being asked.
        layer: the backbone layer of the maps (default: chosen as ``medtune explain`` chooses it).

    Returns:
        The page written.

    Raises:
        DataError: `run` is not a run directory or its files are unreadable.

    >>> create_report("runs/pneumoniamnist-tf_efficientnet_lite0")  # doctest: +SKIP
    PosixPath('runs/pneumoniamnist-tf_efficientnet_lite0/report.html')
    """
    from medtune.data.masks import check_mask_folder

    mask_folder = check_mask_folder(masks)  # a missing folder or a misspelt method fails before any work
    if mask_folder is None:
        own = read_results(run).config.get("masks")
        mask_folder = Path(own) if is_segmentation_run(own) else None
    if mistakes > 0 or mask_folder is not None:
        from medtune.cams import METHODS

        METHODS.get(method)
    results = read_results(run)
    probe_file = results.run.path / "probe.json"
    if probe_file.is_file():  # a probe on frozen features: no network to draw maps with, no epochs
        mistakes, mask_folder = 0, None
    sections = [_probe_section(probe_file) if probe_file.is_file() else training_section(results)]
    searched = search_section(results.run.path)  # made by medtune tune: how it was chosen, first
    if searched is not None:
        sections.insert(0, searched)
    shortcuts = results.run.read_shortcut_warnings()
    if shortcuts:  # the class-by-source check of training: read first
        sections.insert(0, Section("shortcuts", "Shortcut check", "Classes a network could tell by their source:",
                                   notes=shortcuts))  # fmt: skip
    if results.metrics is not None:
        sections += TASK_SECTIONS[results.task.report](results, results.metrics, mistakes, method, layer, mask_folder)
    else:
        sections.append(Section("evaluation", "Evaluation", notes=[
            f"Not evaluated yet: finish training, or run `medtune evaluate {results.run.path}`."]))  # fmt: skip
    found = (evaluations_section(results), guard_section(results), data_section(results), config_section(results))
    sections += [s for s in found if s]
    target = Path(out) if out else results.run.report_file
    cards = _cards(results)
    return write_page(target, "report.html", sections, title=f"{results.name}", results=results, cards=cards)


def _probe_section(path: Path) -> Section:
    """What a probe run is: the method, its chosen hyper-parameters and their cross-validated AUC."""
    import json

    facts = json.loads(path.read_text(encoding="utf-8"))
    params = ", ".join(f"{k}={v}" for k, v in facts.get("params", {}).items())
    return Section("training", "Probe", f"{facts.get('method')} on frozen {facts.get('source')} features "
                   f"(medtune probe): {params} chosen by a grouped grid search, cross-validated AUC "
                   f"{format_value(facts.get('cv_auc'))}, {format_value(facts.get('seconds'), 1)} s.")  # fmt: skip


def _cards(results: RunResults) -> list[tuple[str, str, str]]:
    if not results.metrics:
        return []
    return TASK_HEADLINES[results.task.report](results.metrics)


def _class_sections(
    results: RunResults, metrics: dict, mistakes: int, method: str, layer: str | None, mask_folder: Path | None
) -> list[Section]:
    """A single-label run: the evaluation sections, with its most confident mistakes and where it looks."""
    evaluation = evaluation_sections(results, metrics)
    if mistakes > 0:
        evaluation.insert(-1, mistakes_section(results, mistakes, method, layer))
    if mask_folder is not None:
        evaluation.insert(-1, attention_section(results, mask_folder, method, layer))
    return evaluation


def _finding_sections(
    results: RunResults, metrics: dict, mistakes: int, method: str, layer: str | None, mask_folder: Path | None
) -> list[Section]:
    from medtune.reports.findings import findings_sections

    return findings_sections(results, metrics, mistakes, method, layer, mask_folder)


def _segment_sections(
    results: RunResults, metrics: dict, mistakes: int, method: str, layer: str | None, mask_folder: Path | None
) -> list[Section]:
    from medtune.reports.segment import segment_sections

    return segment_sections(results, metrics, mistakes)


def _finding_cards(metrics: dict) -> list[tuple[str, str, str]]:
    from medtune.reports.findings import findings_headline

    return findings_headline(metrics)


def _segment_cards(metrics: dict) -> list[tuple[str, str, str]]:
    from medtune.reports.segment import segment_headline

    return segment_headline(metrics)


#: The evaluation sections and headline cards of a run's page, by its task's `report` (`medtune.tasks.Task`).
TASK_SECTIONS = {"classes": _class_sections, "findings": _finding_sections, "segment": _segment_sections}
TASK_HEADLINES = {"classes": headline, "findings": _finding_cards, "segment": _segment_cards}


def comparison_table(runs: Sequence[RunResults]) -> pd.DataFrame:
    """One row per run: the configuration keys that differ between runs, then its scores and time."""
    from medtune.runs.run import RUNTIME_KEYS

    keys = sorted({k for r in runs for k in r.config} - RUNTIME_KEYS - {"name"})
    differing = [k for k in keys if len({config_value(r.config.get(k)) for r in runs}) > 1]
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run": _label(r, runs)}
        row.update({k: config_value(r.config.get(k)) for k in differing})
        if "data" in row:  # the last two parts of the path say which data; the whole path is in each run's page
            row["data"] = "/".join(Path(row["data"]).parts[-2:])
        history, metrics = r.history, r.metrics or {}
        if not r.task.labelled:  # a segmenter: Dice, IoU and HD95
            row.update(_segment_scores(history, metrics))
            rows.append(row)
            continue
        best = history["val_auc"].max() if "val_auc" in history and not history.empty else None
        intervals = metrics.get("intervals", {})
        row.update({
            "epochs": len(history),
            "best val AUC": format_value(best),
            "test AUC": format_interval(metrics["macro"]["auc"], intervals.get("auc")) if metrics else "n/a",
            "test accuracy": format_interval(metrics.get("accuracy"), intervals.get("accuracy")) if metrics else "n/a",
            "balanced accuracy": format_value(metrics.get("balanced_accuracy")),
            "F1 (macro)": format_value(metrics["macro"]["f1"]) if metrics else "n/a",
            "ECE": format_value(metrics.get("ece")),
            "minutes": format_value(history["seconds"].sum() / 60, 1) if "seconds" in history else "n/a",
        })  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def _segment_scores(history: pd.DataFrame, metrics: dict[str, Any]) -> dict[str, str]:
    """A segmentation run's columns of the comparison table."""
    intervals = metrics.get("intervals", {})
    best = history["val_dice"].max() if "val_dice" in history and not history.empty else None
    return {
        "epochs": len(history),
        "best val Dice": format_value(best),
        **{f"test {name}": format_interval(metrics.get(key), intervals.get(key)) if metrics else "n/a"
           for key, name in (("dice", "Dice"), ("iou", "IoU"), ("hd95", "HD95 px"))},
        "minutes": format_value(history["seconds"].sum() / 60, 1) if "seconds" in history else "n/a",
    }  # fmt: skip


def create_comparison(runs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> Path:
    """Write a page comparing runs: their curves overlaid and a table of differing keys and scores.

    Args:
        runs: two or more run directories.
        out: the page (default ``comparison.html`` in the runs' common folder).

    Returns:
        The page written.
    """
    results = [read_results(r) for r in runs]
    if len(results) < 2:
        raise DataError("a comparison needs two or more runs; for one run, `medtune report RUN` writes its page")
    names = [_label(r, results) for r in results]
    histories = {_label(r, results): r.history for r in results if not r.history.empty}
    curves = Section("curves", "Training curves", "Train (dashed) and validation (solid) per epoch, a colour per run.")
    for metric, title in CURVES:
        if any(f"val_{metric}" in h for h in histories.values()):
            curves.plots.append(
                create_plot(f"curve_{metric}", plot_history(histories, metric, title), f"{title}, all runs")
            )
    table = Section("comparison", "Runs side by side", "Keys that differ between the runs, then the scores on each "
                    "run's evaluated split with bootstrap intervals.")  # fmt: skip
    table.tables.append(html_table(comparison_table(results)))
    common = Path(os.path.commonpath([str(r.run.path.resolve()) for r in results]))
    target = Path(out) if out else common / "comparison.html"
    title = "comparison of " + ", ".join(names)
    return write_page(target, "report.html", [table, curves], title=title, results=None, cards=[])


def _label(run: RunResults, runs: Sequence[RunResults]) -> str:
    same = [r for r in runs if r.name == run.name]
    return run.name if len(same) == 1 else f"{run.run.path.parent.name}/{run.name}"


def write_run_report(run: str | os.PathLike) -> tuple[Path | None, str | None]:
    """Write a finished run's report page as training does at its end; a failure is returned as text (the trained
    run itself is complete), never raised.

    Returns:
        The page, or None and why it could not be written.
    """
    try:
        return create_report(run), None
    except (MedtuneError, OSError) as exc:
        return None, f"the report could not be written ({exc}); run `medtune report {run}` after fixing it"
