"""medtune/__init__.py, the front door: every command of the command line is a function of ``medtune`` with a real
signature (typed parameters, keyword-only after the main positional ones, no catch-all ``**kwargs`` but
configuration keys, which `Config` validates), a docstring with Args, Returns and an example, the command line's
one spelling per concept, and every parameter it names forwarded; ``import medtune`` does not import torch."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import textwrap
import types

import pytest

import medtune

#: Every command of the command line, as the front door names it (``segment`` is a namespace of three).
COMMANDS = ("train", "evaluate", "predict", "explain", "report", "export", "serve", "crossdomain", "ensemble", "embed",
            "probe", "index", "similar", "audit", "summary", "sweep", "tune", "load")  # fmt: skip
#: The functions whose ``**keys`` are configuration keys (the command line's ``key=value``).
TAKES_KEYS = {"train", "evaluate", "crossdomain", "embed", "probe", "index", "audit", "summary", "sweep", "tune",
              "segment.train"}  # fmt: skip
#: Spellings the command line retired: the front door uses the concept's one name instead.
RETIRED = {"path_column": "path", "fmt": "format", "methods": "method", "keys": "**keys", "source": "run"}
#: The positional parameters a function may take before its keyword-only ones.
POSITIONAL = {"run", "data", "inputs", "out", "config", "model", "index", "queries", "runs", "name", "builder",
              "path", "window", "frame"}  # fmt: skip


def _functions() -> dict[str, types.FunctionType]:
    found = {name: getattr(medtune, name) for name in medtune.__all__ if inspect.isfunction(getattr(medtune, name))}
    found.update({f"segment.{n}": getattr(medtune.segment, n) for n in ("train", "evaluate", "predict")})
    return found


FUNCTIONS = _functions()


def test_every_command_is_reachable_from_import_medtune():
    assert set(COMMANDS) <= set(FUNCTIONS) and inspect.ismodule(medtune.segment)
    for name in ("Predictor", "Predictions", "Prediction", "EvaluationResult", "TrainingResult"):
        assert inspect.isclass(getattr(medtune, name)), name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_public_functions_have_real_signatures_and_documented_examples(name):
    function = FUNCTIONS[name]
    parameters = inspect.signature(function).parameters.values()
    kinds = [p.kind for p in parameters]
    assert (inspect.Parameter.VAR_KEYWORD in kinds) == (name in TAKES_KEYS), name
    assert inspect.Parameter.VAR_POSITIONAL not in kinds
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters)
    assert inspect.signature(function).return_annotation is not inspect.Signature.empty
    positional = [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert set(positional) <= POSITIONAL, f"{name}: {positional} should be keyword-only"
    named = {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}
    assert not named & set(RETIRED), f"{name} uses a retired spelling"
    doc = inspect.getdoc(function) or ""
    assert ">>>" in doc and doc.splitlines()[0].strip(), name
    if [p for p in parameters if p.name not in ("path", "window", "frame", "name", "builder")]:
        assert "Args:" in doc, name
    if name not in ("serve", "read_image", "register_backbone"):
        assert "Returns:" in doc, name


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_parameter_a_function_names_is_used(name):
    """A wrapper that names a parameter and drops it would ignore what the caller asked for."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(FUNCTIONS[name])))
    [function] = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    used = {n.id for node in function.body for n in ast.walk(node) if isinstance(n, ast.Name)}
    named = [a.arg for a in (*function.args.args, *function.args.kwonlyargs)]
    if function.args.kwarg:
        named.append(function.args.kwarg.arg)
    assert [n for n in named if n not in used] == []


def test_import_medtune_does_not_import_torch():
    code = "import sys, medtune; print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_windows_is_refused_with_the_way_round_it():
    """medtune's cache locks are POSIX ``flock``: on Windows the import says so and names WSL 2, instead of failing
    later on ``import fcntl``."""
    code = "import sys; sys.platform = 'win32'; import medtune"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "ImportError: medtune runs on Linux and macOS" in result.stderr
    assert "WSL 2" in result.stderr
