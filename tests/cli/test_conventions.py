"""One spelling per concept across every command, help that reads well, completion, and the old spellings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing

import yaml

from medtune.cli._spelling import CONCEPTS, RESPELLINGS, respell
from medtune.cli.main import _groups, command
from medtune.config.schema import Config
from tests.conftest import REPO, medtune

#: Options named like a configuration key that mean something else, each with the reason it stays an option.
NOT_KEYS = {
    "split": "which split to score (the key split= names the CSV column holding the splits)",
    "workers": "processes that run experiments (the key workers= is processes that decode images)",
    "name": "the name a calibration is kept under (the key name= names a run)",
    "task": "medtune keys --task: whose keys to list (the issue's spelling; the key task= sets a run's task)",
}


def _commands():
    """Every command as (path, click command)."""
    found = []

    def walk(group, prefix):
        for name, sub in group.commands.items():
            path = f"{prefix} {name}".strip()
            if hasattr(sub, "commands"):
                walk(sub, path)
            else:
                found.append((path, sub))

    walk(command(), "")
    return found


def _options(cmd):
    return [p for p in cmd.params if p.param_type_name == "option"]


def test_no_concept_is_spelled_two_ways():
    old = {r.old for r in RESPELLINGS if r.old.startswith("--")}
    shorts: dict[str, set[str]] = {}
    for path, cmd in _commands():
        for option in _options(cmd):
            names = [*option.opts, *option.secondary_opts]
            assert not old & set(names), f"{path} still has the old spelling {old & set(names)}"
            long = ([n for n in names if n.startswith("--")] or names)[0].lstrip("-").replace("-", "_")
            if long in Config.model_fields:
                assert long in NOT_KEYS, f"{path}: --{long} is a configuration key; take it as {long}=VALUE"
            for short in (n for n in names if not n.startswith("--")):
                shorts.setdefault(short, set()).add(option.opts[0] if option.opts[0].startswith("--") else names[-1])
    two = {short: longs for short, longs in shorts.items() if len(longs) > 1}
    assert not two, f"a short option means two things: {two}"
    assert not [o for p, c in _commands() if p == "explain" for o in _options(c) if "-m" in o.opts]
    assert shorts["-m"] == {"--metric"} and shorts["-o"] == {"--out"} and shorts["-c"] == {"--config"}


def test_the_concept_table_names_exactly_the_commands_that_have_each_option():
    having: dict[str, set[str]] = {}
    for path, cmd in _commands():
        for option in _options(cmd):
            having.setdefault(option.opts[0], set()).add(path)
    for concept in CONCEPTS:
        option = concept.spelling.split(" ")[0]
        if option in ("--method", "--metric", "--study", "--config", "--json", "--print-config"):
            assert having[option] == set(concept.commands), f"{concept.name}: {option} is on {sorted(having[option])}"


def test_every_command_that_takes_keys_takes_config_and_print_config():
    for path, cmd in _commands():
        free = [p for p in cmd.params if p.param_type_name == "argument" and "KEY=VALUE" in (p.metavar or "")]
        names = {o.opts[0] for o in _options(cmd)}
        if free and path not in ("report", "ensemble", "queue add"):  # their keys are one or two switches
            assert {"--config", "--print-config"} <= names, f"{path} takes keys but not {{--config, --print-config}}"


def test_summaries_are_one_line_and_help_shows_placeholders_and_exit_codes():
    for path, cmd in _commands():
        summary = (cmd.help or "").split("\n\n")[0]
        assert summary and "\n" not in summary and len(summary) <= 90 and summary.endswith("."), (path, summary)
    shown = medtune("predict", "--help")
    assert shown.returncode == 0
    usage = " ".join(shown.stdout.split())
    assert "medtune predict [OPTIONS] RUN INPUT... [KEY=VALUE]..." in usage
    assert "<bool>" not in shown.stdout and "<list[str]>" not in shown.stdout and "arguments..." not in shown.stdout
    assert "Exit codes: 0 all well" in usage and "3 some inputs failed" in usage and "130 interrupted" in usage
    assert "DATA [KEY=VALUE]..." in " ".join(medtune("train", "--help").stdout.split())


def test_the_parser_s_choices_are_the_registered_ones():
    from medtune.cams.methods import METHODS
    from medtune.cli._common import CamMethod
    from medtune.cli.probe import PROBES
    from medtune.features.probe import METHODS as PROBE_METHODS

    assert set(typing.get_args(CamMethod)) == set(METHODS.names())
    assert set(PROBES) == {*PROBE_METHODS, "all"}


def test_choices_are_checked_by_the_parser(tmp_path):
    wrong = medtune("predict", tmp_path, "x.png", "--out", tmp_path / "p.json", "--format", "xml")
    assert wrong.returncode == 2 and "'xml' is not one of" in wrong.stderr
    checks = medtune("data", "audit", tmp_path, "--checks", "duplicates,leaks")
    assert checks.returncode == 2 and "'leaks'" in checks.stderr and "outliers" in checks.stderr
    assert not list(tmp_path.iterdir())


def test_completion_offers_choices_and_installs(tmp_path):
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_MEDTUNE_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split(" ")) - 1)}  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "medtune"], env=env, capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("medtune predict r x --format ") == ["auto", "json", "csv", "submission"]
    assert complete("medtune data audit x --checks duplicates,l") == ["duplicates,labels"]
    assert "predict" in complete("medtune pre")
    # a terminal's shell is detected (shellingham); under pytest there is none, so name it, as typer's own tests do
    env = {**os.environ, "HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    installed = subprocess.run([sys.executable, "-m", "medtune", "--install-completion", "bash"], env=env,
                               capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    assert "_MEDTUNE_COMPLETE" in (tmp_path / ".bash_completions" / "medtune.sh").read_text()
    assert "medtune.sh" in (tmp_path / ".bashrc").read_text()


def test_old_spellings_become_the_new_ones_with_a_line_naming_them():
    heard: list[str] = []
    groups = _groups()
    assert respell(["predict", "RUN", "a.png", "--tta", "--masks", "m/", "--path-column=file", "--out", "x.json"],
                   groups, heard.append) == ["predict", "RUN", "a.png", "tta=true", "masks=m/", "path=file", "--out",
                                             "x.json"]  # fmt: skip
    assert respell(["segment", "predict", "R", "i/", "--postprocess", "lungs", "--no-tta"], groups, heard.append) == [
        "segment", "predict", "R", "i/", "postprocess=lungs", "tta=false"]  # fmt: skip
    assert respell(["probe", "d.npz", "method=all"], groups, heard.append) == ["probe", "d.npz", "--method", "all"]
    assert respell(["explain", "R", "a.png", "-m", "scorecam", "-o", "c"], groups, heard.append)[3:5] == [
        "--method", "scorecam"]  # fmt: skip
    assert respell(["sweep", "base.yaml", "lr=1e-3,1e-2"], groups, heard.append) == [
        "sweep", "--config", "base.yaml", "lr=1e-3,1e-2"]  # fmt: skip
    assert respell(["data", "summary", "d/", "--json", "s.json"], groups, heard.append)[3:] == ["--out", "s.json"]
    assert respell(["train", "d/", "--masks", "m/"], groups, heard.append) == ["train", "d/", "--masks", "m/"]
    assert len(heard) == 9 and all("goes in medtune 0.3" in line for line in heard)
    assert heard[0] == "`predict --tta` is now written `tta=true`; the old spelling goes in medtune 0.3"


def test_keys_lists_every_key_with_type_default_and_meaning():
    one = medtune("keys", "lr")
    assert one.returncode == 0
    assert "type:    float (> 0.0, <= 10.0)" in one.stdout and "default: 0.002" in one.stdout
    assert "peak learning rate" in one.stdout
    listed = json.loads(medtune("keys", "--json").stdout)
    assert {k["key"] for k in listed} == set(Config.model_fields) - {"arch", "postprocess"}
    segment = {k["key"]: k for k in json.loads(medtune("keys", "--task", "segment", "--json").stdout)}
    assert segment["loss"]["default"] == "dice+bce" and segment["monitor"]["default"] == "val_dice"
    assert "mixup" not in segment and segment["arch"]["type"] == "text"
    typo = medtune("keys", "lrr")
    assert typo.returncode == 2 and "Did you mean 'lr'?" in typo.stderr


def test_print_config_prints_the_resolved_configuration_and_exits(tmp_path):
    data = tmp_path / "data.npz"
    data.write_bytes(b"")
    shown = medtune("train", data, "epochs=3", "lr=1e-3", "--out", tmp_path / "run", "--print-config")
    assert shown.returncode == 0, shown.stderr
    config = yaml.safe_load(shown.stdout)
    assert config["epochs"] == 3 and config["lr"] == 0.001 and config["backbone"] == "tf_efficientnet_lite0"
    assert not (tmp_path / "run").exists()
    (tmp_path / "keys.yaml").write_text("tta: true\nepochs: 9\n")
    predict = medtune("predict", tmp_path, "a.png", "batch_size=8", "--config", tmp_path / "keys.yaml",
                      "--out", "-", "--print-config")  # fmt: skip
    assert predict.returncode == 0 and yaml.safe_load(predict.stdout) == {"tta": True, "batch_size": 8}
    stray = medtune("predict", tmp_path, "a.png", "epochs=3", "--out", "-")
    assert stray.returncode == 2 and "medtune predict does not read epochs=" in stray.stderr
    assert "tta=, batch_size=" in stray.stderr


def test_serve_refuses_a_missing_run_before_saying_it_serves(tmp_path):
    result = medtune("serve", tmp_path / "nope")
    assert result.returncode == 1 and "serving" not in result.stdout
    assert "is not a run directory" in result.stderr
