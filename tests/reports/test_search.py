"""The report's search section, from a ``tune.json`` as ``medtune tune`` writes it."""

from __future__ import annotations

import json

from medtune.reports.search import plot_trials, search_section


def _trial(number, state, value, minute, **params):
    start = "2026-12-06T10:00:00"
    return {"number": number, "state": state, "value": value, "params": params, "epochs": 2, "run": None,
            "started": start, "finished": f"2026-12-06T10:{minute:02d}:00", "note": None}  # fmt: skip


def _summary(trials):
    return {"study": "tune-x", "criterion": "validation log loss", "trials": trials,
            "chosen": {"runs": ["r"], "params": trials[0]["params"], "why": "the best alone"}}  # fmt: skip


def test_no_section_for_a_run_not_made_by_tune(tmp_path):
    assert search_section(tmp_path) is None
    (tmp_path / "tune.json").write_text("{not json")
    assert search_section(tmp_path) is None


def test_section_lists_every_trial_best_first_and_the_chosen_settings(tmp_path):
    trials = [_trial(0, "complete", 0.31, 5, lr=0.001234567), _trial(1, "pruned", 0.52, 3, lr=0.01),
              _trial(2, "complete", 0.2, 9, lr=0.0004), _trial(3, "running", None, 0, lr=0.002)]  # fmt: skip
    trials[3]["finished"] = None
    (tmp_path / "tune.json").write_text(json.dumps(_summary(trials)))
    section = search_section(tmp_path)
    assert section is not None and section.id == "search"
    assert "4 trials" in section.intro and "2 complete" in section.intro and "1 pruned" in section.intro
    chosen, table = section.tables
    assert "0.001235" in chosen  # searched floats shown to 4 significant digits
    assert table.index(">2<") < table.index(">0<") < table.index(">1<")  # by validation log loss, unfinished last
    assert len(section.plots) == 1


def test_plot_marks_pruned_trials_and_the_best_so_far():
    trials = [_trial(0, "complete", 0.4, 2), _trial(1, "pruned", 0.9, 3), _trial(2, "complete", 0.3, 7)]
    axes = plot_trials(trials).axes[0]
    labels = axes.get_legend_handles_labels()[1]
    assert "complete (2)" in labels and "pruned (1)" in labels and "best finished so far" in labels
    best = next(line for line in axes.get_lines() if line.get_label() == "best finished so far")
    assert list(best.get_ydata()) == [0.4, 0.3] and list(best.get_xdata()) == [2.0, 7.0]
