"""The ``medtune`` command line: a thin layer that turns arguments into a `Config` and calls the library."""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from medtune._version import __version__
from medtune.cli._help import polish
from medtune.cli._spelling import respell
from medtune.cli.audit import audit_command
from medtune.cli.cache import cache_app
from medtune.cli.calibrate import calibrate_command
from medtune.cli.crossdomain import crossdomain_command
from medtune.cli.data import data_app
from medtune.cli.embed import embed_command
from medtune.cli.ensemble import ensemble_command
from medtune.cli.evaluate import evaluate_command
from medtune.cli.explain import explain_command
from medtune.cli.export import export_command
from medtune.cli.guard import guard_command
from medtune.cli.keys import keys_command
from medtune.cli.predict import predict_command
from medtune.cli.probe import probe_command
from medtune.cli.queue import leaderboard_command, queue_app, sweep_command
from medtune.cli.report import report_command
from medtune.cli.segment import segment_app
from medtune.cli.serve import serve_command
from medtune.cli.similar import index_command, similar_command
from medtune.cli.train import demo_command, train_command
from medtune.cli.tune import tune_command
from medtune.errors import ConfigError, MedtuneError

app = typer.Typer(
    name="medtune",
    help="Labelled medical images to a trained, evaluated and explained classifier.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
data_app.command("audit")(audit_command)
app.command("train")(train_command)
app.command("demo")(demo_command)
app.command("keys")(keys_command)
app.command("evaluate")(evaluate_command)
app.command("predict")(predict_command)
app.command("calibrate")(calibrate_command)
app.command("guard")(guard_command)
app.command("explain")(explain_command)
app.command("report")(report_command)
app.command("export")(export_command)
app.command("serve")(serve_command)
app.add_typer(segment_app, name="segment")
app.add_typer(queue_app, name="queue")
app.add_typer(cache_app, name="cache")
app.command("sweep")(sweep_command)
app.command("tune")(tune_command)
app.command("leaderboard")(leaderboard_command)
app.command("crossdomain")(crossdomain_command)
app.command("ensemble")(ensemble_command)
app.command("embed")(embed_command)
app.command("probe")(probe_command)
app.command("index")(index_command)
app.command("similar")(similar_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medtune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """medtune: transfer learning for medical images, from the command line."""


@cache
def command() -> Any:
    """The click command behind `app`, built once, with its help polished (`medtune.cli._help.polish`)."""
    return polish(typer.main.get_command(app))


def _groups() -> dict[str, set[str]]:
    return {name: set(sub.commands) for name, sub in command().commands.items() if hasattr(sub, "commands")}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a `MedtuneError` prints its message (no traceback) and sets the exit code
    (`medtune.cli._help.EXIT_CODES`): 0 all well, 1 refused, 2 usage or configuration, 3 some inputs failed,
    130 interrupted. A deprecated spelling is rewritten to the current one with a line on standard error.
    """
    err = Console(stderr=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = respell(argv, _groups(), lambda line: err.print(f"[yellow]deprecated:[/] {escape(line)}",
                                                                   highlight=False, soft_wrap=True))  # fmt: skip
        code = command().main(args=argv, prog_name="medtune", standalone_mode=False)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except MedtuneError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted")
        return 130
    except Exception as exc:  # usage errors carry their own exit code and message
        import click
        from typer.exceptions import TyperException

        # newer typer vendors click: its usage errors derive from TyperException, not from click's ClickException
        if isinstance(exc, (click.ClickException, TyperException)) and hasattr(exc, "show"):
            exc.show()
            return exc.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
