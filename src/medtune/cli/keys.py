"""``medtune keys [KEY...] [--task T]``: every configuration key with its type, default and meaning, from the schema."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from medtune.cli._common import JsonOption, console, json_mode
from medtune.config.schema import SECTION_KEYS, SEGMENT_DEFAULTS, Config
from medtune.errors import ConfigError

#: Keys only one task reads: a segmenter has no classes to weigh, sample or mix, and no head or guard.
TASK_ONLY = {
    "classify": ("head", "threshold", "class_weights", "sampler", "mixup", "cutmix", "guard", "shortcut_check"),
    "segment": ("arch", "postprocess"),
}


def type_text(annotation: Any) -> str:
    """A key's type as people write it: ``int``, ``auto|1|3``, ``float or empty``, ``list of text``.

    >>> type_text(Literal["auto", 1, 3]), type_text(int | None), type_text(list[str] | None)
    ('auto|1|3', 'int or empty', 'list of text or empty')
    """
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(v) for v in typing.get_args(annotation))
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        parts = [a for a in typing.get_args(annotation) if a is not type(None)]
        text = " or ".join(type_text(a) for a in parts)
        return f"{text} or empty" if len(parts) < len(typing.get_args(annotation)) else text
    if origin is list:
        return f"list of {type_text(typing.get_args(annotation)[0])}"
    names = {str: "text", bool: "true|false", int: "int", float: "float"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _range(field: Any) -> str:
    bounds = []
    for rule in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(rule, attr, None) is not None:
                bounds.append(f"{sign} {getattr(rule, attr)}")
    return ", ".join(bounds)


def describe_key(key: str, task: str = "classify") -> dict[str, Any]:
    """One key: its section, type, allowed range, default (for `task`) and meaning."""
    field = Config.model_fields[key]
    default = SEGMENT_DEFAULTS.get(key, field.default) if task == "segment" else field.default
    section = next(name for name, keys in SECTION_KEYS.items() if key in keys)
    return {"key": key, "section": section, "type": type_text(field.annotation), "range": _range(field),
            "default": default, "meaning": field.description or ""}  # fmt: skip


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def keys_command(
    names: Annotated[
        list[str] | None, typer.Argument(metavar="[KEY]...", help="Keys to describe (default: all).")
    ] = None,
    task: Annotated[
        Literal["classify", "segment"],
        typer.Option("--task", help="Defaults as this task resolves them, and only the keys it reads."),
    ] = "classify",
    as_json: JsonOption = False,
) -> None:
    """List the configuration keys (KEY=VALUE): type, default and meaning of each.

    Every command that takes keys reads them the same way: on the command line as KEY=VALUE, in a YAML file given
    with --config, or as keyword arguments in Python.
    """
    from medtune._registry import suggest

    hidden = TASK_ONLY["classify" if task == "segment" else "segment"]
    known = [k for keys in SECTION_KEYS.values() for k in keys if k not in hidden]
    unknown = [n for n in names or [] if n.replace("-", "_") not in known]
    if unknown:
        hints = "; ".join(f"no key {n!r}.{suggest(n, known)}" for n in unknown)
        raise ConfigError(f"{hints} (`medtune keys` lists them all)")
    chosen = [describe_key(k, task) for k in ([n.replace("-", "_") for n in names] if names else known)]
    if as_json:
        with json_mode(True) as emit:
            emit(chosen)
        return
    if names:
        for found in chosen:
            _print_one(found)
        return
    table = Table(title=f"configuration keys (task={task}): KEY=VALUE, or in --config YAML", title_justify="left")
    for column in ("key", "type", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for section in SECTION_KEYS:
        table.add_row(f"[bold]{section} keys[/]", "", "", "", end_section=False)
        for found in (f for f in chosen if f["section"] == section):
            table.add_row(found["key"], found["type"], _shown(found["default"]), found["meaning"])
    console.print(table)


def _print_one(found: dict[str, Any]) -> None:
    ranged = f" ({found['range']})" if found["range"] else ""
    console.print(f"[bold]{found['key']}[/] ({found['section']})", highlight=False)
    console.print(f"  type:    {found['type']}{ranged}", highlight=False)
    console.print(f"  default: {_shown(found['default'])}", highlight=False)
    console.print(f"  meaning: {found['meaning']}", highlight=False, soft_wrap=True)
    example = _shown(found["default"]) if found["default"] is not None else "..."
    console.print(f"  e.g.     medtune train DATA {found['key']}={example}", highlight=False)
