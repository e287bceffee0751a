"""The reader registry: each reader turns one kind of source into the same `Table`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medtune._registry import Registry
from medtune.config.schema import DataSettings
from medtune.data.table import Table


@dataclass(frozen=True)
class Reader:
    """A registered reader.

    Attributes:
        name: the name users give as ``reader=NAME``.
        detect: True when this reader can read the given path (used by ``reader=auto``).
        read: turn the path into a `Table`, using the data keys of the configuration.
        describe: one line for ``--help`` and error messages.
    """

    name: str
    detect: Callable[[Path], bool]
    read: Callable[[Path, DataSettings], Table]
    describe: str


READERS: Registry[Reader] = Registry("reader")


def register_reader(name: str, detect: Callable[[Path], bool], describe: str) -> Callable:
    """Decorator: register `read(path, config) -> Table` as reader `name`."""

    def add(read: Callable[[Path, DataSettings], Table]) -> Callable[[Path, DataSettings], Table]:
        READERS.register(name)(Reader(name=name, detect=detect, read=read, describe=describe))
        return read

    return add
