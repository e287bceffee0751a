"""One place where configuration is merged: defaults < YAML file < ``key=value`` overrides."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from medtune._registry import suggest
from medtune.config.schema import SECTION_KEYS, Config
from medtune.errors import ConfigError


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict; values are read as YAML (never ``eval``).

    Keys whose type is text keep the raw text, so ``label=yes`` stays the column name ``"yes"``.

    >>> parse_overrides(["image_size=64", "label=label", "classes=[a, b]"])
    {'image_size': 64, 'label': 'label', 'classes': ['a', 'b']}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"cannot read {item!r}: expected key=value, for example label=diagnosis")
        out[key] = raw if _wants_text(key) else _yaml_value(raw, key)
    return out


def _yaml_value(raw: str, key: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read the value of {key}={raw!r}: {exc}") from None


def _wants_text(key: str) -> bool:
    """True when the field's type is text only (str or str | None)."""
    field = Config.model_fields.get(key)
    if field is None:
        return False
    annotation = field.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = {a for a in typing.get_args(annotation) if a is not type(None)}
    else:
        kinds = {annotation}
    return kinds == {str}


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML configuration file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} not found; check the path given to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:  # Python tags (!!python/object...) included: safe_load builds no objects
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:  # found by fuzzing
        raise ConfigError(f"{path} is not UTF-8 text ({exc}); save the configuration as UTF-8") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold key: value pairs at the top level, found {type(data).__name__}")
    return data


def load_config(
    file: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] = (), **values: Any
) -> Config:
    """Merge defaults < YAML `file` < `overrides` < `values` and validate them into a `Config`.

    Args:
        file: optional YAML file with the same flat keys.
        overrides: ``key=value`` strings from the command line, or a dict.
        **values: keyword values from Python, applied last.

    Raises:
        ConfigError: an unknown key (with the closest valid names) or a value of the wrong type or range.

    >>> load_config(overrides=["backbone=resnet18"]).backbone
    'resnet18'
    """
    merged: dict[str, Any] = read_yaml(file) if file else {}
    merged.update(overrides if isinstance(overrides, Mapping) else parse_overrides(overrides))
    merged.update(values)
    return validate_config(merged)


#: How data is read: the data section's keys but ``data`` itself (a command's DATA argument).
READING_KEYS: tuple[str, ...] = tuple(k for k in SECTION_KEYS["data"] if k != "data")


def check_keys(values: Mapping[str, Any], allowed: Iterable[str], command: str) -> dict[str, Any]:
    """`values` typed and checked by the schema, refusing a key `command` does not read (`allowed`) with the list
    of those it does: one check for ``key=value`` on the command line and keyword keys in Python.

    >>> check_keys({"tta": "true"}, ("tta", "masks"), "medtune predict")
    {'tta': True}
    """
    allowed = tuple(allowed)
    stray = [k for k in values if k not in allowed]
    if stray:
        raise ConfigError(
            f"{command} does not read {', '.join(f'{k}=' for k in stray)}; the keys it reads: "
            f"{', '.join(f'{k}=' for k in allowed)} (`medtune keys KEY` says what each means)"
        )
    checked = load_config(overrides=dict(values))
    return {key: getattr(checked, key) for key in values}


def validate_config(values: Mapping[str, Any]) -> Config:
    """Validate a merged dict into a `Config`, with readable messages."""
    values = _encoder_alias(values)
    known = list(Config.model_fields)
    unknown = [k for k in values if k not in Config.model_fields]
    if unknown:
        hints = "; ".join(f"unknown key {k!r}.{suggest(k, known)}" for k in unknown)
        raise ConfigError(f"{hints} `medtune keys` lists every key with its type, default and meaning.")
    try:
        return Config(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "configuration"
            given = f" (got {err['input']!r})" if "input" in err and where != "configuration" else ""
            problems.append(f"{where}: {err['msg']}{given}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def _encoder_alias(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """``encoder=`` (segmentation's word for the pretrained network) is ``backbone=``."""
    if "encoder" not in values:
        return values
    out = {k: v for k, v in values.items() if k != "encoder"}
    if out.get("backbone") not in (None, values["encoder"]):
        raise ConfigError(
            f"encoder={values['encoder']} and backbone={out['backbone']} name the same network; give one of them"
        )
    out["backbone"] = values["encoder"]
    return out
