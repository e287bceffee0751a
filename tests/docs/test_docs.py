"""docs/gen_ref.py, which generates the command-line and keys references of the documentation site when it is
built: every configuration key has a description to show, and the generated pages cover every command, option and
key. The commands and keys are read here independently of the generator, so a command or key it missed fails."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def gen_ref() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_ref", REPO / "docs" / "gen_ref.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cli_page(gen_ref) -> str:
    return gen_ref.cli_markdown()


@pytest.fixture(scope="module")
def cli_sections(cli_page) -> dict[str, str]:
    """The command-line reference's sections by heading (``medtune queue add``), each with its text."""
    parts = re.split(r"^#{2,4} (medtune [^{\n]*?) \{#[\w-]+\}$", cli_page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def visible_commands() -> dict[str, object]:
    """Every command and group below ``medtune`` that ``--help`` lists, by its typed path."""
    import typer

    from medtune.cli.main import app

    found: dict[str, object] = {}

    def walk(group: object, path: str) -> None:
        for name, command in group.commands.items():
            if not command.hidden:
                found[f"{path} {name}"] = command
                if hasattr(command, "commands"):
                    walk(command, f"{path} {name}")

    walk(typer.main.get_command(app), "medtune")
    return found


def test_every_key_has_a_description():
    from medtune.config.schema import Config

    missing = [key for key, field in Config.model_fields.items() if not (field.description or "").strip()]
    assert not missing, f"give these keys a description= in config/schema.py (the keys reference shows it): {missing}"


def test_the_cli_reference_has_every_command_with_its_arguments_and_options(cli_sections):
    commands = visible_commands()
    assert set(cli_sections) == set(commands)
    for path, command in commands.items():
        section = cli_sections[path]
        assert f"medtune {path.removeprefix('medtune ')} [OPTIONS]" in section
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            if param.param_type_name == "option":
                assert f"`{param.opts[0]}`" in section, f"{path}: option {param.opts[0]} missing"
            else:
                shown = param.metavar or param.name.upper()
                assert shown in section, f"{path}: argument {param.name} missing"


def test_the_cli_reference_opens_with_a_table_of_every_command(gen_ref, cli_page):
    table = cli_page.split("\n## ", 1)[0]
    for path in visible_commands():
        assert f"[`{path}`](#" in table, path
    assert gen_ref.command_paths() == list(visible_commands())


def test_the_keys_reference_has_every_key_once_with_its_default_and_meaning(gen_ref):
    from medtune.config.schema import SECTION_KEYS, SEGMENT_DEFAULTS, Config

    page = gen_ref.keys_markdown(with_components=False)  # the registries import the training modules: slow
    rows = {line.split("`", 2)[1]: line for line in page.splitlines() if line.startswith("| <span id=")}
    assert sorted(rows) == sorted(Config.model_fields)
    assert sum(line.startswith("| <span id=") for line in page.splitlines()) == len(Config.model_fields)
    for key, field in Config.model_fields.items():
        assert gen_ref.text(field.description) in rows[key], key
    for key, value in SEGMENT_DEFAULTS.items():
        assert f"segment's default: `{value}`" in rows[key]
    for section in SECTION_KEYS:
        assert f"{{#section-{section}}}" in page


def test_the_keys_reference_says_which_tasks_accept_which_components(gen_ref):
    components = {  # as medtune.runs.resolve.registries(task) gives them, for each registered task
        "classify": {"optimizer": ["sgd", "adamw"], "head": ["linear"], "loss": ["cross-entropy", "focal"]},
        "ordinal": {"optimizer": ["sgd", "adamw"], "head": ["linear"], "loss": ["cross-entropy", "focal"]},
        "segment": {"optimizer": ["sgd", "adamw"], "arch": ["unet"], "loss": ["dice", "bce"]},
    }
    notes = gen_ref.key_tasks(components)
    assert notes["optimizer"] == "registered: `sgd`, `adamw`"
    assert notes["head"] == "only classify, ordinal; registered: `linear`"
    assert notes["arch"] == "only segment; registered: `unet`"
    assert notes["loss"].startswith("registered (classify, ordinal): `cross-entropy`, `focal`; registered (segment):")
    assert notes["task"] == "registered: `classify`, `ordinal`, `segment`"


def test_a_row_without_a_description_and_escaped_cells(gen_ref):
    class Field:
        annotation, description, metadata = int | None, None, []

        def get_default(self, call_default_factory: bool) -> object:
            return None

    row = gen_ref.key_row("new_key", Field(), {})
    assert row.startswith("| <span id='new_key'></span>`new_key` | int or unset | unset |")
    assert gen_ref.text("a|b <c> *d*") == "a\\|b &lt;c&gt; \\*d\\*"
