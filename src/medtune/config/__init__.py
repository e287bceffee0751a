"""Configuration: the typed `Config` and the one place YAML and ``key=value`` overrides are merged."""

from medtune.config.loader import load_config, parse_overrides, read_yaml, validate_config
from medtune.config.schema import Config

__all__ = ["Config", "load_config", "parse_overrides", "read_yaml", "validate_config"]
