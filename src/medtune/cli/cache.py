"""``medtune cache list|clean``: what the cache holds (image stores, feature caches, predicted masks, converted
weights) and removing what is not in use."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from medtune.cli._common import JsonOption, console, json_mode

cache_app = typer.Typer(help="Show or clean medtune's cache: image stores, features, masks, weights.",
                        no_args_is_help=True)  # fmt: skip


def _bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _age(seconds: float) -> str:
    for unit, span in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.0f}{unit} ago"
    return "now"


@cache_app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """List the cache's entries, most recently used first, with size and whether in use."""
    from medtune._paths import cache_dir
    from medtune.runs.cache import list_cache

    entries = list_cache()
    if as_json:
        with json_mode(True) as emit:
            emit({"cache": str(cache_dir()), "entries": [
                {"kind": e.kind, "entry": e.path.name, "path": str(e.path), "bytes": e.size, "last_used": e.last_used,
                 "in_use": e.in_use, "leftover": e.leftover} for e in entries]})  # fmt: skip
        return
    table = Table(title=f"medtune cache: {cache_dir()}")
    for column in ("kind", "entry", "size", "last used", "state"):
        table.add_column(column)
    now = time.time()
    for e in entries:
        state = "in use" if e.in_use else "leftover of a killed build" if e.leftover else ""
        table.add_row(e.kind, e.path.name, _bytes(e.size), _age(now - e.last_used), state)
    console.print(table)
    console.print(f"{len(entries)} entries, {_bytes(sum(e.size for e in entries))}")


@cache_app.command("clean")
def clean_command(
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Remove entries unused for this long: 30d, 12h, 90m, 2w.")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Remove every entry that is not in use.")] = False,
) -> None:
    """Remove cache entries no process uses (rebuilt when needed) and leftovers of killed builds."""
    from medtune.runs.cache import clean_cache, parse_age

    removed, busy = clean_cache(parse_age(older_than) if older_than else None, everything)
    console.print(f"removed {len(removed)} entries ({_bytes(sum(e.size for e in removed))})")
    for entry in busy:
        console.print(f"kept {entry.kind}/{entry.path.name}: a process is using it")
