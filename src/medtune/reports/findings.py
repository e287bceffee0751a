"""The report sections of a multi-label run: headline cards, ROC and precision-recall curves per finding, the
per-label table with thresholds, and the most confident false positives with their class activation maps.

Single-label sections without a multi-label meaning (confusion matrix, reliability diagram) are replaced by a note
that says why they are not shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from medtune.data.table import split_labels
from medtune.errors import DataError
from medtune.reports.mistakes import predicted_class_cams
from medtune.reports.page import Section, card_maker, create_plot, format_interval, format_value, html_table, shorten
from medtune.reports.plots import Tile, plot_findings_pr, plot_findings_roc, plot_tiles, top_findings
from medtune.reports.results import RunResults

#: At most this many findings get a ROC and a precision-recall curve (the most frequent); all are in the table.
CURVES_SHOWN = 8


def findings_headline(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The headline numbers of a multi-label run: name, formatted value, and its interval (empty when none)."""
    intervals = metrics.get("intervals", {})
    card = card_maker(metrics)

    defined = sum(v.get("auc") is not None for v in metrics["per_class"].values())
    return [
        card(f"ROC AUC (macro, {defined} labels)", metrics["macro"]["auc"], intervals.get("auc")),
        card("ROC AUC (micro)", metrics["micro"]["auc"], intervals.get("micro_auc")),
        card("exact-match accuracy", metrics["accuracy"], intervals.get("accuracy")),
        card("balanced accuracy (label mean)", metrics["balanced_accuracy"], intervals.get("balanced_accuracy")),
        card("F1 (macro, at thresholds)", metrics["macro"]["f1"], intervals.get("f1")),
        card("images evaluated", metrics["n"]),
    ]


def findings_sections(results: RunResults, metrics: dict[str, Any], mistakes: int, method: str,
                      layer: str | None = None, masks: Any = None) -> list[Section]:  # fmt: skip
    """ROC and precision-recall curves, the per-label table, the most confident false positives (when `mistakes`)
    and a note on the single-label sections left out."""
    targets, probs = results.scores()
    classes = results.classes
    shown = top_findings(targets, CURVES_SHOWN)
    split = ", ".join(metrics.get("split", ["test"]))
    which = f"the {len(shown)} most frequent findings" if len(shown) < len(classes) else "every finding"
    roc = Section(
        "roc",
        "ROC curves",
        f"On the {split} split ({metrics['n']} images), {which} with positive and negative images, each against its "
        f"absence; AUC with its {round(100 * metrics.get('confidence', 0.95))}% bootstrap interval. Every label is "
        "in the table below.",
        half=True,
    )
    pr = Section("pr", "Precision-recall curves", "Average precision per finding; dotted: its prevalence.", half=True)
    if shown:
        roc.plots.append(
            create_plot("roc", plot_findings_roc(targets, probs, classes, shown, metrics), "ROC per finding")
        )
        pr.plots.append(
            create_plot("pr", plot_findings_pr(targets, probs, classes, shown), "precision-recall per finding")
        )
    else:
        roc.notes.append("No finding has both positive and negative images in the evaluated split.")
    sections = [roc, pr, per_label_section(metrics)]
    if mistakes > 0:
        sections.append(false_positives_section(results, mistakes, method, layer))
    sections.append(left_out_section(masks is not None))
    return sections


def per_label_section(metrics: dict[str, Any]) -> Section:
    """Prevalence, AUC with its interval, average precision, threshold and the precision / recall / F1 it gives,
    one row per label, then the macro and micro rows."""
    bounds = metrics.get("intervals", {}).get("per_class", {})
    rows = []
    for name, values in metrics["per_class"].items():
        rows.append({
            "label": name,
            "images": values["support"],
            "prevalence": format_value(values["prevalence"]),
            "ROC AUC": format_interval(values["auc"], bounds.get(name, {}).get("auc")),
            "average precision": format_value(values.get("average_precision")),
            "threshold": format_value(values["threshold"]),
            "precision": format_value(values["precision"]),
            "recall (sensitivity)": format_interval(values["recall"], bounds.get(name, {}).get("recall")),
            "specificity": format_value(values.get("specificity")),
            "F1": format_interval(values["f1"], bounds.get(name, {}).get("f1")),
        })  # fmt: skip
    intervals = metrics.get("intervals", {})
    for average, auc_interval in (("macro", intervals.get("auc")), ("micro", intervals.get("micro_auc"))):
        values = metrics[average]
        rows.append({
            "label": f"{average} average", "images": metrics["n"], "prevalence": "",
            "ROC AUC": format_interval(values["auc"], auc_interval),
            "average precision": format_value(values.get("average_precision")), "threshold": "",
            "precision": format_value(values["precision"]), "recall (sensitivity)": format_value(values["recall"]),
            "specificity": "",
            "F1": format_interval(values["f1"], intervals.get("f1")) if average == "macro"
            else format_value(values["f1"]),
        })  # fmt: skip
    method = metrics.get("threshold_method")
    chosen = (
        f"Thresholds were chosen per label on the validation split ({'Youden J' if method == 'youden' else 'best F1'})"
        if method
        else "No thresholds were chosen (0.5 for every label)"
    )
    section = Section(
        "per-class",
        "Per-label results",
        f"{chosen}; a label is predicted when its probability reaches its threshold. Precision, recall and F1 are at "
        f"that threshold; AUC and average precision do not depend on it. Exact-match accuracy "
        f"{format_value(metrics['accuracy'])}, label accuracy (1 - Hamming loss) "
        f"{format_value(metrics.get('label_accuracy'))}, "
        f"sample-averaged F1 {format_value(metrics.get('samples', {}).get('f1'))}, mean binary log loss "
        f"{format_value(metrics.get('log_loss'))}. Brackets hold the bootstrap interval.",
    )
    section.tables.append(html_table(pd.DataFrame(rows)))
    section.notes.extend(metrics.get("warnings", []))
    return section


def confident_false_positives(
    predictions: pd.DataFrame, classes: Sequence[str], thresholds: dict[str, float], count: int
) -> pd.DataFrame:
    """The `count` most confident (image, finding) pairs predicted at their threshold that the image does not
    have, taken per finding in turn (each finding's most confident one first, then each one's second...) so that a
    frequent finding does not fill the page: ``id``, ``label`` (the true findings), ``finding``, ``probability``,
    ``threshold``."""
    pairs = []
    for name in classes:
        column = predictions[f"prob_{name}"]
        absent = ~predictions["label"].map(lambda v, name=name: name in split_labels(v))
        wrong = predictions[absent & (column.round(6) >= thresholds[name])]
        pairs.append(
            pd.DataFrame(
                {
                    "id": wrong["id"],
                    "label": wrong["label"].fillna(""),
                    "finding": name,
                    "probability": wrong[f"prob_{name}"],
                    "threshold": thresholds[name],
                }
            )
        )
    found = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()
    if found.empty:
        return found
    found = found.sort_values("probability", ascending=False, kind="stable")
    found["turn"] = found.groupby("finding").cumcount()
    found = found.sort_values(["turn", "probability"], ascending=[True, False], kind="stable")
    return found.drop(columns="turn").head(count).reset_index(drop=True)


def false_positives_section(results: RunResults, count: int, method: str, layer: str | None = None) -> Section:
    """The most confident false positives as thumbnails with their map for the wrongly flagged finding: the
    multi-label counterpart of the most confident mistakes."""
    section = Section(
        "mistakes",
        "Most confident false positives",
        f"The {count} findings flagged with the highest probability in images that do not have them, as the network "
        f"saw them, each with its {method} map for that finding (red: where its evidence lies).",
        wide_plots=True,
    )
    if results.predictions is None:
        section.notes.append("No predictions.csv yet.")
        return section
    thresholds = results.metrics.get("thresholds") or dict.fromkeys(results.classes, 0.5)
    wrong = confident_false_positives(results.predictions, results.classes, thresholds, count)
    if wrong.empty:
        section.notes.append("No false positive on the evaluated split.")
        return section
    try:
        tiles = _false_positive_tiles(results, wrong, method, layer)
    except (DataError, OSError) as exc:  # the data is unreadable; a bad --method or --layer is an error
        section.notes.append(
            f"The images could not be shown: {exc}. If the data has moved, set data: in "
            f"{results.run.config_file} to its new place and run `medtune report {results.run.path}` again."
        )
        return section
    figure = plot_tiles(tiles, f"{len(tiles)} most confident false positives (finding, probability; true findings)")
    section.plots.append(create_plot("mistakes", figure, "most confident false positives with their maps"))
    listing = wrong.assign(label=wrong["label"].replace("", "(no finding)"), probability=wrong["probability"].round(3))
    section.tables.append(html_table(listing.rename(columns={"label": "true findings", "finding": "flagged"})))
    return section


def _false_positive_tiles(results: RunResults, wrong: pd.DataFrame, method: str, layer: str | None) -> list[Tile]:
    from medtune.cams import create_overlay

    images, heat = predicted_class_cams(results, wrong.assign(predicted=wrong["finding"]), method, layer)
    tiles = []
    for image, cam, row in zip(images, heat, wrong.itertuples(index=False), strict=True):
        image = image[..., : int(results.config["channels"])]  # without a mask channel
        caption = f"{row.finding} {row.probability:.2f}\ntrue: {shorten(row.label or 'no finding', 22)}"
        tiles.append(Tile(image, caption, create_overlay(image, cam)))
    return tiles


def left_out_section(masks: bool = False) -> Section:
    """Why the single-label sections are not on a multi-label page."""
    notes = [
        "Confusion matrix: findings are not exclusive, so an image has no single predicted class to cross with a "
        "true one; each label's true and false positives at its threshold are in the per-label table.",
        "Reliability diagram: it bins the top-class confidence of a softmax; each label here has its own sigmoid "
        "probability (mean binary log loss in the per-label section).",
    ]
    if masks:
        notes.append(
            "Share of the map inside masks: it explains each image's predicted class; a multi-label image has "
            "several findings or none. Use `medtune explain RUN IMAGES --target FINDING --masks FOLDER`."
        )
    return Section("left-out", "Not shown for multi-label runs", notes=notes)


def finding_counts(split: pd.DataFrame) -> pd.DataFrame:
    """Images per finding (rows, with a ``(no finding)`` row) and split (columns), and the images per split.

    >>> frame = pd.DataFrame({"label": ["A|B", None, "A"], "split": ["train", "train", "val"]})
    >>> finding_counts(frame).to_dict("list")
    {'finding': ['A', 'B', '(no finding)', 'images'], 'train': [1, 1, 1, 2], 'val': [1, 0, 0, 1], 'total': [2, 1, 1, 3]}
    """
    names = split["label"].map(lambda v: split_labels(v) or ["(no finding)"])
    long = split.assign(finding=names).explode("finding")
    counts = pd.crosstab(long["finding"], long["split"])
    order = [s for s in ("train", "val", "test") if s in counts.columns]
    found = sorted(n for n in counts.index if n != "(no finding)")
    counts = counts.reindex(index=[*found, *(["(no finding)"] if "(no finding)" in counts.index else [])])
    counts = counts[order].fillna(0).astype(int)
    counts.loc["images"] = split["split"].value_counts().reindex(order).fillna(0).astype(int)
    counts["total"] = counts.sum(axis=1)
    counts.loc["images", "total"] = len(split)
    return counts.rename_axis(index="finding", columns=None).reset_index()
