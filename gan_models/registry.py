"""A small validating registry: names to builders, with readable errors."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

BUILTIN = "gan_pipeline"  # the source of every entry this project registers itself
_source: contextvars.ContextVar[str] = contextvars.ContextVar("registry_source", default=BUILTIN)


@contextlib.contextmanager
def registering_as(source: str):
    """Entries registered inside this block are attributed to ``source`` (a plugin's name)."""
    token = _source.set(source)
    try:
        yield
    finally:
        _source.reset(token)


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    description: str
    source: str = BUILTIN  # who registered it: this project, or the plugin's name
    facts: Any = None  # what a kind declares of an entry besides its value (a data set's shape, ...)


class Registry(Generic[T]):
    """Names to values.  ``fixed``: the arguments the pipeline passes every builder of this kind;
    a builder must accept them, and each of its other parameters is an option a user may set in
    params.yaml, so it must have a default (its type is the option's type)."""

    def __init__(self, kind: str, fixed: tuple[str, ...] | None = None, hierarchical: bool = False):
        self.kind = kind
        self.fixed = fixed
        self.hierarchical = hierarchical  # names may have "/"-separated parts (metric names: human/hype_inf)
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, value: T, description: str, facts: Any = None) -> T:
        parts = name.split("/") if isinstance(name, str) and self.hierarchical else [name]
        if not all(isinstance(p, str) and p.isidentifier() for p in parts):
            raise ValueError(f"{self.kind} name must be an identifier-like string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered (by {self._entries[name].source})")
        if not isinstance(description, str) or not description.strip():
            raise ValueError(f"{self.kind} {name!r} needs a one-line description")
        if self.fixed is not None:
            check_builder(f"{self.kind} {name!r}", value, self.fixed)
        self._entries[name] = Entry(name, value, description.strip(), _source.get(), facts)
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


def check_builder(what: str, fn: Any, fixed: tuple[str, ...]) -> None:
    """``fn`` must be callable with the keyword arguments ``fixed``, and every other parameter
    must have a default (it is an option)."""
    if not callable(fn):
        raise ValueError(f"{what}: must be callable, got {type(fn).__name__}")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        raise ValueError(f"{what}: its signature cannot be read") from None
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [f for f in fixed if f not in named and not takes_kwargs]
    if missing:
        raise ValueError(f"{what}: must accept the argument(s) {', '.join(fixed)} "
                         f"(missing: {', '.join(missing)}); signature: {getattr(fn, '__name__', type(fn).__name__)}{inspect.signature(fn)}")
    no_default = [n for n, p in params.items() if n not in fixed and p.default is inspect.Parameter.empty
                  and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)]
    if no_default:
        raise ValueError(f"{what}: parameter(s) {', '.join(no_default)} need a default: the pipeline passes "
                         f"only {', '.join(fixed) or 'options'}, the rest are options set in params.yaml")


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


# The plugins loaded in this process, by name (gan_models.plugins fills it with its Plugin
# records).  It lives here, beside the registries, so that the stage table can ask which plugins
# a stage uses without importing gan_models.plugins, which imports every registry's module: the
# stage table is code of every stage, and a stage's code must not grow to every component.
LOADED_PLUGINS: dict[str, Any] = {}


def plugins_using(names: set[str]) -> list[Any]:
    """The loaded plugins that registered any of ``names``."""
    return [p for p in LOADED_PLUGINS.values() if p.names & names]
