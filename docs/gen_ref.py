"""Generate the command-line and keys references when the site is built (the mkdocs-gen-files plugin runs this file).

The command-line reference walks the click commands behind the typer app `medtune.cli.main:app`: every command and
subcommand with its help, arguments and options. The keys reference reads the configuration schema
`medtune.config.schema.Config`: every key with its type, default and description, grouped by the sections of
`SECTION_KEYS`, with the tasks a key serves where the code records them (`SEGMENT_DEFAULTS`, and the registered
components of each task in `medtune.runs.resolve.registries`). Nothing here is written by hand, so a new command,
option or key appears on the next build; `tests/docs/test_docs.py` calls `cli_markdown` and `keys_markdown`.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from medtune.cli._help import EPILOG, is_flag

CLI_PAGE = "reference/cli.md"
KEYS_PAGE = "reference/keys.md"

SECTION_TITLES = {
    "data": "Data: where the images are, how to read, split and store them",
    "model": "Model: the network",
    "optimisation": "Optimisation: what learns, how fast, on which loss",
    "schedule": "Schedule: epochs, learning-rate schedule, which weights are kept",
    "augmentation": "Augmentation",
    "run": "Run: the task, devices, threads and what a run writes",
}


def text(value: str) -> str:
    """`value` made safe for a Markdown table cell: pipes, angle brackets and stars escaped, one line."""
    value = " ".join(value.split())
    return value.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def code(value: str) -> str:
    """`value` as inline code in a table cell (a pipe inside is escaped, backticks are avoided)."""
    value = value.replace("|", "\\|")
    return f"`` {value} ``" if "`" in value else f"`{value}`"


# --- the command line -----------------------------------------------------------------------------------------


def command_tree() -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """Every visible command below ``medtune`` as ``(path, command, context)``, groups before their commands."""
    from medtune.cli.main import command as root_command

    root = root_command()  # what --help shows: placeholders and exit codes (medtune.cli._help.polish)
    root_ctx = root.context_class(root, info_name="medtune")

    def walk(group: Any, ctx: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
        for name, command in group.commands.items():
            if command.hidden:
                continue
            sub_ctx = command.context_class(command, info_name=name, parent=ctx)
            yield (*path, name), command, sub_ctx
            if hasattr(command, "commands"):
                yield from walk(command, sub_ctx, (*path, name))

    yield from walk(root, root_ctx, ())


def anchor(path: tuple[str, ...]) -> str:
    """The heading id of a command on the reference page: ``queue-add`` for ``medtune queue add``."""
    return "-".join(path)


def help_text(command: Any) -> str:
    """The command's whole help, as its docstring or ``help=`` gives it (click's ``\\b`` markers dropped)."""
    return inspect.cleandoc(command.help or "").replace("\b\n", "").replace("\b", "")


def short_help(command: Any) -> str:
    """The first sentence of the command's help."""
    whole = " ".join(help_text(command).split())
    return re.split(r"(?<=\.)\s+(?=[A-Z`])", whole, maxsplit=1)[0]


def type_name(param: Any, ctx: Any) -> str:
    """A parameter's type as ``--help`` shows it (``path``, ``int range``, ``list[str]``)."""
    display = getattr(param, "display_type", None)
    if callable(display):  # typer >= 0.25 describes its own types
        return display(ctx).strip("<>")
    kind = getattr(param, "type", None)
    return getattr(kind, "name", "text") if kind is not None else "text"


def default_text(param: Any) -> str:
    """A parameter's default for the table: blank when it has none or is a flag that is off."""
    default = param.default
    if default is None or default == () or callable(default) or (getattr(param, "is_flag", False) and not default):
        return ""
    if isinstance(default, (list, tuple)):
        return code(",".join(map(str, default)))
    return code(str(default))


def option_names(param: Any) -> str:
    """``--out``, ``-o`` (and ``--no-tta`` for a flag pair) as inline code."""
    names = sorted(param.opts, key=lambda name: (not name.startswith("--"), name))
    names += list(getattr(param, "secondary_opts", ()) or ())
    return ", ".join(code(name) for name in names)


def param_help(param: Any) -> str:
    """The parameter's help with what ``--help`` adds: required, repeatable, the environment variable."""
    notes = []
    if param.required:
        notes.append("Required.")
    if getattr(param, "multiple", False) and "repeatable" not in (param.help or "").lower():
        notes.append("Repeatable.")
    if getattr(param, "envvar", None):
        envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
        notes.append("Environment variable: " + ", ".join(code(name) for name in envvars) + ".")
    return " ".join([text(getattr(param, "help", None) or ""), *notes]).strip()


def params_tables(command: Any, ctx: Any) -> list[str]:
    """The arguments table and the options table of one command (``--help`` itself left out)."""
    arguments = [p for p in command.params if p.param_type_name == "argument" and not getattr(p, "hidden", False)]
    options = [p for p in command.params if p.param_type_name == "option" and not getattr(p, "hidden", False)]
    lines: list[str] = []
    if arguments:
        lines += ["**Arguments**", "", "| argument | type | description |", "|---|---|---|"]
        for param in arguments:
            name = param.metavar or param.name.upper() + (" ..." if param.nargs == -1 else "")
            lines.append(f"| {code(name)} | {code(type_name(param, ctx))} | {param_help(param)} |")
        lines.append("")
    if options:
        lines += ["**Options**", "", "| option | type | default | description |", "|---|---|---|---|"]
        for param in options:
            kind = "flag" if is_flag(param) else type_name(param, ctx)
            lines.append(f"| {option_names(param)} | {code(kind)} | {default_text(param)} | {param_help(param)} |")
        lines.append("")
    return lines


def usage(path: tuple[str, ...], command: Any) -> str:
    """The usage line: ``medtune export [OPTIONS] [RUN]`` (optional arguments in brackets, ``...`` for many)."""
    pieces = ["medtune", *path, "[OPTIONS]"]
    if hasattr(command, "commands"):
        pieces.append("COMMAND [ARGS]...")
    for param in command.params:
        if param.param_type_name != "argument" or getattr(param, "hidden", False):
            continue
        name = param.metavar or param.name.upper() + ("..." if param.nargs == -1 else "")
        pieces.append(name if param.required or name.startswith("[") else f"[{name}]")
    return " ".join(pieces)


def command_section(path: tuple[str, ...], command: Any, ctx: Any) -> list[str]:
    """The reference section of one command: heading, usage, help, arguments, options, subcommands."""
    level = "#" * (len(path) + 1)
    lines = [f"{level} medtune {' '.join(path)} {{#{anchor(path)}}}", ""]
    lines += ["```text", usage(path, command), "```", "", help_text(command), ""]
    subcommands = [name for name, sub in getattr(command, "commands", {}).items() if not sub.hidden]
    if subcommands:
        lines += ["Subcommands: " + ", ".join(f"[`{name}`](#{anchor((*path, name))})" for name in subcommands), ""]
    return lines + params_tables(command, ctx)


def overview(tree: list[tuple[tuple[str, ...], Any, Any]]) -> list[str]:
    """A table of every command with its first sentence."""
    lines = ["| command | what it does |", "|---|---|"]
    for path, command, _ in tree:
        lines.append(f"| [`medtune {' '.join(path)}`](#{anchor(path)}) | {text(short_help(command))} |")
    return [*lines, ""]


def conventions() -> list[str]:
    """The rule that decides key or option, and each shared concept with its one spelling (`CONCEPTS`, which
    ``tests/cli/test_conventions.py`` checks every command against)."""
    from medtune.cli._spelling import CONCEPTS, REMOVED_IN

    lines = ["## One spelling per concept {#conventions}", "",
             "A setting of the configuration schema (how data is read, how the network is built, trained and applied)",
             "is written `KEY=VALUE` in every command that reads it; an option (`--name`) is about the command alone:",
             "where its output goes, in which form, and choices only it makes. Arguments come in one order: the data",
             "first, then the run that gives the features (`DATA [RUN] [KEY=VALUE]...`); commands on a trained run",
             "take the RUN first. The old spellings still work, with a line naming the new one, until medtune",
             f"{REMOVED_IN}.",
             "", "| concept | spelling | commands | old spelling |", "|---|---|---|---|"]  # fmt: skip
    for concept in CONCEPTS:
        old = ", ".join(code(o) for o in concept.old)
        where = text(", ".join(concept.commands))
        lines.append(f"| {text(concept.name)} | {code(concept.spelling)} | {where} | {old} |")
    return [*lines, ""]


def cli_markdown() -> str:
    """The whole command-line reference page."""
    tree = list(command_tree())
    lines = [
        "# Command line",
        "",
        "Generated from the command definitions each time the site is built: what `medtune COMMAND --help` prints.",
        "Settings (`key=value` arguments, or the same keys in a YAML file given with `--config`) are listed in the",
        f"[keys reference](keys.md) and by `medtune keys`. {EPILOG} Global options: `medtune --version`,",
        "`medtune --install-completion` (bash, zsh, fish or PowerShell: commands, options and choices complete).",
        "",
        *overview(tree),
        *conventions(),
    ]
    for path, command, ctx in tree:
        lines += command_section(path, command, ctx)
    return "\n".join(lines).rstrip() + "\n"


def command_paths() -> list[str]:
    """Every visible command as typed: ``medtune queue add``."""
    return ["medtune " + " ".join(path) for path, _, _ in command_tree()]


# --- the configuration keys -----------------------------------------------------------------------------------


def annotation_text(annotation: Any) -> str:
    """A key's type in words: ``int``, ``one of a, b``, ``list of str``, ``float or unset``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        parts = [annotation_text(arg) for arg in args if arg is not type(None)]
        literal = [part.removeprefix("one of ") for part in parts if part.startswith("one of ")]
        parts = [part for part in parts if not part.startswith("one of ")]
        if literal:
            parts.append("one of " + ", ".join(literal))
        joined = " or ".join(parts)
        return f"{joined} or unset" if type(None) in args else joined
    if origin is list:
        return f"list of {annotation_text(args[0])} (a,b,c)" if args else "list"
    return getattr(annotation, "__name__", str(annotation))


def bounds_text(field: Any) -> str:
    """The field's numeric bounds (``>= 0``, ``< 1``), from pydantic's constraints."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    found = []
    for item in field.metadata:
        for attribute, sign in signs.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value:,}")
    return ", ".join(found)


def default_value(field: Any) -> str:
    """The key's default as it would be typed (``unset`` for None)."""
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return code(str(value).lower())
    if isinstance(value, list):
        return code(",".join(map(str, value)))
    return code(f"{value:g}" if isinstance(value, float) else str(value))


def component_names() -> dict[str, dict[str, list[str]]]:
    """For each registered task, the keys that name a registered component and the names each accepts."""
    from medtune.runs.resolve import registries
    from medtune.tasks import TASKS

    return {task: {key: reg.names() for key, reg in registries(task).items()} for task in TASKS.names()}


def key_tasks(components: dict[str, dict[str, list[str]]] | None) -> dict[str, str]:
    """What the code records about the tasks of each key: the components a task accepts, segment's defaults."""
    from medtune.config.schema import SEGMENT_DEFAULTS

    notes: dict[str, list[str]] = {}
    tasks = list(components or {})
    keys = {key for names in (components or {}).values() for key in names}
    for key in sorted(keys):
        users = [task for task in tasks if key in components[task]]
        choices: dict[tuple[str, ...], list[str]] = {}
        for task in users:
            choices.setdefault(tuple(components[task][key]), []).append(task)
        if len(users) < len(tasks):
            notes.setdefault(key, []).append("only " + ", ".join(users))
        for names, owners in choices.items():
            who = "" if len(choices) == 1 else " (" + ", ".join(owners) + ")"
            notes.setdefault(key, []).append("registered" + who + ": " + ", ".join(f"`{n}`" for n in names))
    for key, value in SEGMENT_DEFAULTS.items():
        notes.setdefault(key, []).append(f"segment's default: `{value}`")
    if tasks:
        notes.setdefault("task", []).append("registered: " + ", ".join(f"`{task}`" for task in tasks))
    notes.setdefault("monitor", []).extend(monitor_notes())
    return {key: "; ".join(parts) for key, parts in notes.items()}


def monitor_notes() -> list[str]:
    """The validation metrics ``monitor=`` accepts: a segmenter's, and every other task's."""
    from medtune.config.values import EPOCH_METRICS, SEGMENT_METRICS

    segment = ", ".join(f"`val_{name}`" for name in SEGMENT_METRICS)
    others = ", ".join(f"`val_{name}`" for name in EPOCH_METRICS)
    return [f"segment: {segment}", f"the other tasks: {others}"]


def key_row(key: str, field: Any, notes: dict[str, str]) -> str:
    """One table row: key, type (with bounds), default, meaning, tasks."""
    kind = annotation_text(field.annotation)
    bounds = bounds_text(field)
    kind = text(f"{kind}, {bounds}" if bounds else kind)
    meaning = text(field.description or "")
    return f"| <span id='{key}'></span>`{key}` | {kind} | {default_value(field)} | {meaning} | {notes.get(key, '')} |"


def keys_markdown(with_components: bool = True) -> str:
    """The whole keys reference page (`with_components`: list each task's registered components, which imports
    the training modules; without them the page is the same less those notes)."""
    from medtune.config.schema import SECTION_KEYS, Config

    notes = key_tasks(component_names() if with_components else None)
    lines = [
        "# Keys",
        "",
        "Generated from the configuration schema (`medtune.config.Config`) each time the site is built. Every key is",
        "given as `key=value` on the command line (`medtune train DATA epochs=8 lr=1e-3`), as a key of a YAML file",
        "given with `--config` (the command line wins over the file, the file over the defaults), or as a keyword",
        "argument in Python (`medtune.train(data=..., epochs=8)`). An unknown key is refused with the closest names.",
        "",
        "The keys are grouped by the section of the configuration they belong to. The last column says what the",
        "code records about tasks: the registered names a key accepts (for each task where they differ), the keys",
        "only some tasks use, and the defaults that `task=segment` changes. Where a key serves one kind of run only",
        "and the code keeps no record of it, its meaning says so (multi-label, gradual, DICOM...).",
        "",
    ]
    for section, keys in SECTION_KEYS.items():
        lines += [f"## {SECTION_TITLES.get(section, section.title())} {{#section-{section}}}", ""]
        lines += ["| key | type | default | meaning | tasks |", "|---|---|---|---|---|"]
        lines += [key_row(key, Config.model_fields[key], notes) for key in keys]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- the build ----------------------------------------------------------------------------------------------------


def write_pages(open_file: Callable[..., Any], pages: dict[str, Callable[[], str]]) -> None:
    """Write each generated page through `open_file` (mkdocs-gen-files' ``open``)."""
    for page, render in pages.items():
        with open_file(page, "w") as handle:
            handle.write(render())


if __name__ == "<run_path>":  # run by mkdocs-gen-files during `mkdocs build`
    import mkdocs_gen_files

    write_pages(mkdocs_gen_files.open, {CLI_PAGE: cli_markdown, KEYS_PAGE: keys_markdown})
    mkdocs_gen_files.set_edit_path(CLI_PAGE, "gen_ref.py")
    mkdocs_gen_files.set_edit_path(KEYS_PAGE, "gen_ref.py")
