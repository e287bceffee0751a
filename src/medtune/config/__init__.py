"""Configuration: the typed `Config` (`schema`), the one place YAML and ``key=value`` overrides are merged
(`merge`), and the value rules it checks (`values`).
"""

from medtune.config.merge import (
    READING_KEYS,
    check_keys,
    load_config,
    parse_overrides,
    read_yaml,
    validate_config,
)
from medtune.config.schema import Config
from medtune.config.values import EPOCH_METRICS, MONITORS, SEGMENT_METRICS, monitor_mode, parse_window

__all__ = [
    "EPOCH_METRICS",
    "MONITORS",
    "READING_KEYS",
    "SEGMENT_METRICS",
    "Config",
    "check_keys",
    "load_config",
    "monitor_mode",
    "parse_overrides",
    "parse_window",
    "read_yaml",
    "validate_config",
]
