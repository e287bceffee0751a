"""How ``--help`` reads: placeholders for free arguments, no type shown for flags, and the exit codes.

typer 0.29 shows every parameter's Python type (``<bool>`` beside a flag, ``<list[str]>`` beside ``DATA...``);
a flag takes no value and a placeholder already says what goes there, so `polish` drops both, and gives every
command the same epilog with the exit codes.
"""

from __future__ import annotations

import inspect
from typing import Any

#: The exit codes of every command (`medtune.cli.main.main`).
EXIT_CODES = {
    0: "all well",
    1: "refused (unusable data, a failed step)",
    2: "usage or configuration error",
    3: "some inputs failed (the others were done)",
    130: "interrupted",
}
EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."


def _no_type(ctx: Any) -> None:
    return None


def is_flag(param: Any) -> bool:
    """An option that takes no value (``--probs``, ``--tta/--no-tta``, ``--help``)."""
    descriptor = getattr(param, "type_descriptor", None)
    return param.param_type_name == "option" and descriptor is not None and descriptor.annotation is bool


def polish(command: Any) -> Any:
    """`command` and its subcommands with placeholders instead of types and the exit codes as epilog."""
    for sub in getattr(command, "commands", {}).values():
        polish(sub)
    command.epilog = EPILOG
    if command.help:  # a docstring's hard-wrapped lines, joined: the terminal wraps paragraphs itself
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    for param in command.params:
        if is_flag(param):
            param.display_type_rich = _no_type
        elif param.param_type_name == "argument":
            shown = param.metavar or param.name.upper() + ("..." if param.nargs != 1 else "")
            shown = shown if param.required or shown.startswith("[") else f"[{shown}]"
            param.metavar = shown
            param.display_type_rich = _no_type
            param._usage_display_name = lambda shown=shown: shown
    return command


def _help_without_type() -> None:
    """``--help`` itself is a flag: its type is not shown either (the option is made per call, so the class is
    taught once here)."""
    from typer.core import TyperOption

    original = TyperOption.display_type_rich
    if getattr(original, "_medtune", False):
        return

    def display(self: Any, ctx: Any) -> str | None:
        return None if is_flag(self) else original(self, ctx)

    display._medtune = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display  # type: ignore[method-assign]


_help_without_type()
