"""One spelling per concept on the command line, and the old spellings that keep working for one release.

The rule: a setting of the configuration schema (``medtune keys`` lists them: how data is read, how the network is
built, trained and applied) is written ``KEY=VALUE`` in every command that reads it; an option (``--name``) is
about this command alone: where its output goes, in which form, and command-only choices (``--method``,
``--metric``, ``--study``). `CONCEPTS` is the table the documentation prints and ``tests/cli/test_conventions.py``
checks every command against; `respell` turns a deprecated spelling into the current one before the arguments are
parsed, with a line that names the new spelling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

#: The release that drops the old spellings below.
REMOVED_IN = "0.3"


class Concept(NamedTuple):
    """A concept that several commands share, its one spelling and the commands that take it."""

    name: str
    spelling: str
    commands: tuple[str, ...]
    old: tuple[str, ...] = ()


CONCEPTS: tuple[Concept, ...] = (
    Concept("masks (folder or segmentation run)", "masks=DIR", ("train", "evaluate", "predict", "explain", "report",
            "segment train", "segment evaluate"), ("--masks",)),
    Concept("path column of a CSV", "path=COLUMN", ("train", "evaluate", "predict", "probe", "embed", "index",
            "data audit", "data summary"), ("--path-column",)),
    Concept("test-time augmentation", "tta=true", ("train", "evaluate", "predict", "segment predict"),
            ("--tta", "--no-tta")),
    Concept("CSV paths outside their folder", "outside_paths=true", ("train", "evaluate", "predict"),
            ("--outside-paths",)),
    Concept("label map (YAML)", "label_map=FILE", ("train", "evaluate", "crossdomain"), ("--label-map",)),
    Concept("images per forward pass", "batch_size=N", ("train", "predict", "explain", "segment predict"),
            ("--batch-size",)),
    Concept("mask post-processing", "postprocess=lungs", ("segment train", "segment predict"), ("--postprocess",)),
    Concept("write the report page", "report=false", ("train", "ensemble"), ("--report", "--no-report")),
    Concept("method (CAM or probe)", "--method", ("explain", "report", "probe"), ("method=", "-m (explain)")),
    Concept("metric to rank by", "--metric / -m", ("leaderboard", "export"), ()),
    Concept("study (group of experiments)", "--study / -s", ("probe", "queue add", "queue run", "queue status",
            "sweep", "tune", "leaderboard", "export"), ()),
    Concept("configuration file (YAML of keys)", "--config / -c", ("train", "demo", "evaluate", "predict", "explain",
            "calibrate", "probe", "embed", "index", "crossdomain", "tune", "sweep", "data summary", "data shortcuts",
            "data audit", "segment train", "segment evaluate", "segment predict"), ("sweep FILE.yaml",)),
    Concept("output (file or folder; - is standard output for text)", "--out / -o", ("train", "demo", "evaluate",
            "predict", "explain", "report", "export", "probe", "embed", "index", "similar", "leaderboard",
            "crossdomain", "ensemble", "data summary", "data shortcuts", "data audit", "segment train",
            "segment evaluate", "segment predict"), ("--json FILE (data summary, data shortcuts)",)),
    Concept("machine-readable output on standard output", "--json", ("train", "demo", "evaluate", "queue status",
            "cache list", "similar", "leaderboard", "probe", "keys", "data audit", "data summary", "data shortcuts",
            "segment train"), ()),
    Concept("data, then the model source", "DATA [RUN] [KEY=VALUE]...", ("probe", "embed", "index", "data audit"),
            ("embed/index SOURCE DATA",)),
    Concept("print the resolved configuration and exit", "--print-config", ("train", "demo", "evaluate", "predict",
            "explain", "calibrate", "probe", "embed", "index", "crossdomain", "tune", "sweep", "data summary",
            "data shortcuts", "data audit", "segment train", "segment evaluate", "segment predict"), ()),
)  # fmt: skip


class Respelling(NamedTuple):
    """An old option of `commands` and what it becomes: `build` turns its value (None for a flag) into arguments."""

    commands: tuple[str, ...]
    old: str
    takes_value: bool
    build: Callable[[str | None], list[str]]
    shown: str


def _as_key(commands: tuple[str, ...], old: str, key: str, fixed: str | None = None) -> Respelling:
    if fixed is not None:
        return Respelling(commands, old, False, lambda _: [f"{key}={fixed}"], f"{key}={fixed}")
    return Respelling(commands, old, True, lambda value: [f"{key}={value}"], f"{key}=VALUE")


def _as_option(commands: tuple[str, ...], old: str, option: str) -> Respelling:
    return Respelling(commands, old, True, lambda value: [option, str(value)], f"{option} VALUE")


RESPELLINGS: tuple[Respelling, ...] = (
    _as_key(("predict", "explain", "report", "segment evaluate"), "--masks", "masks"),
    _as_key(("predict",), "--path-column", "path"),
    _as_key(("predict",), "--outside-paths", "outside_paths", "true"),
    _as_key(("predict", "evaluate", "segment predict"), "--tta", "tta", "true"),
    _as_key(("predict", "evaluate", "segment predict"), "--no-tta", "tta", "false"),
    _as_key(("predict", "explain", "segment predict"), "--batch-size", "batch_size"),
    _as_key(("segment predict",), "--postprocess", "postprocess"),
    _as_key(("crossdomain",), "--label-map", "label_map"),
    _as_key(("ensemble",), "--report", "report", "true"),
    _as_key(("ensemble",), "--no-report", "report", "false"),
    _as_option(("explain",), "-m", "--method"),
)


def command_path(argv: list[str], groups: dict[str, set[str]]) -> tuple[str, int]:
    """The command named by `argv` (``"segment predict"``) and where its own arguments start."""
    if not argv:
        return "", 0
    if argv[0] in groups and len(argv) > 1 and argv[1] in groups[argv[0]]:
        return f"{argv[0]} {argv[1]}", 2
    return argv[0], 1


def respell(argv: list[str], groups: dict[str, set[str]], warn: Callable[[str], None]) -> list[str]:
    """`argv` with every deprecated spelling of its command replaced by the current one; `warn` hears each."""
    command, start = command_path(argv, groups)
    rules = {r.old: r for r in RESPELLINGS if command in r.commands}
    out, rest = argv[:start], argv[start:]
    i = 0
    while i < len(rest):
        token = rest[i]
        name, eq, inline = token.partition("=")
        rule = rules.get(name if name.startswith("-") else "")
        if rule is None:
            out.append(token)
            i += 1
            continue
        value: str | None = None
        if rule.takes_value:
            value, i = (inline, i + 1) if eq else ((rest[i + 1] if i + 1 < len(rest) else None), i + 2)
            if value is None:
                out.append(token)
                continue
        else:
            i += 1
        new = rule.build(value)
        warn(f"`{command} {name}{'' if value is None else ' ' + value}` is now written `{' '.join(new)}`; the old "
             f"spelling goes in medtune {REMOVED_IN}")  # fmt: skip
        out.extend(new)
    return _respell_positionals(command, out, start, warn)


def _respell_positionals(command: str, argv: list[str], start: int, warn: Callable[[str], None]) -> list[str]:
    """``probe ... method=X`` (a key only probe knew) is ``--method X``; ``sweep FILE.yaml`` is ``--config FILE``;
    ``data summary/shortcuts --json FILE.json`` is ``--out FILE.json``."""
    out = argv[:start]
    rest = argv[start:]
    for i, token in enumerate(rest):
        before = rest[i - 1] if i else ""
        if command == "probe" and token.startswith("method=") and not before.startswith("-"):
            new = ["--method", token.split("=", 1)[1]]
        elif command == "sweep" and token.lower().endswith((".yaml", ".yml")) and not before.startswith("-"):
            new = ["--config", token]
        elif command in ("data summary", "data shortcuts") and before == "--json" and token.endswith(".json"):
            out[-1] = "--out"
            warn(f"`{command} --json {token}` is now written `--out {token}` (--json prints to standard output); "
                 f"the old spelling goes in medtune {REMOVED_IN}")  # fmt: skip
            out.append(token)
            continue
        else:
            out.append(token)
            continue
        warn(f"`{command} {token}` is now written `{' '.join(new)}`; the old spelling goes in medtune {REMOVED_IN}")
        out.extend(new)
    return out
