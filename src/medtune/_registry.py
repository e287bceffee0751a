"""A small explicit registry: a dict, a decorator that refuses silent overwrite, list and get."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from medtune.errors import ConfigError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...] | set[str], n: int = 3) -> str:
    """Return a ' Did you mean ...?' hint for `name` among `choices`, or '' when nothing is close.

    >>> suggest("bakbone", ["backbone", "batch_size"])
    " Did you mean 'backbone'?"
    """
    close = difflib.get_close_matches(name, sorted(choices), n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


class Registry(Generic[T]):
    """Name -> component mapping for one kind of thing (readers, backbones...).

    Args:
        kind: what is registered, used in messages ("reader", "backbone").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers a component under `name`; registering a name twice is an error."""

        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._items[name]!r})")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        """Return the component registered as `name`, or raise ConfigError with the closest names."""
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}.{suggest(name, list(self._items))} "
                f"Known: {', '.join(sorted(self._items))}."
            ) from None

    def names(self) -> list[str]:
        """All registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(self._items.items())
