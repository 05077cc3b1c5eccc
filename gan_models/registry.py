"""A small validating registry: names to builders, with readable errors."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    description: str


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, value: T, description: str) -> T:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{self.kind} name must be an identifier-like string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if not isinstance(description, str) or not description.strip():
            raise ValueError(f"{self.kind} {name!r} needs a one-line description")
        self._entries[name] = Entry(name, value, description.strip())
        return value

    def get(self, name: str) -> T:
        return self.entry(name).value

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())


def call_with_options(what: str, fn: Callable[..., Any], fixed: dict[str, Any],
                      options: dict[str, Any]) -> Any:
    """Call ``fn(**fixed, **options)`` after checking option names and types against its signature.

    Options must be keyword parameters of ``fn`` with defaults; a value must have the type of
    the default (ints are accepted where floats are expected, lists where tuples are).
    """
    params = inspect.signature(fn).parameters
    allowed = {n: p.default for n, p in params.items()
               if n not in fixed and p.default is not inspect.Parameter.empty}
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(f"{what} has no option {key!r}; allowed: {', '.join(sorted(allowed)) or 'none'}")
        default = allowed[key]
        if default is None:
            continue
        ok = isinstance(value, type(default))
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, (tuple, list)):
            ok = isinstance(value, (tuple, list))
        if not ok:
            raise ValueError(f"{what} option {key!r} must be of type {type(default).__name__} "
                             f"(like the default {default!r}), got {value!r}")
    return fn(**fixed, **options)
