"""A name -> object registry with a decorator, for pluggable parts (datasets, regimes, losses).

The library reaches the regimes only through `REGIMES` here: the `regimes` package registers itself into it and
is imported on the first lookup, so `bench` never imports `regimes` (the dependencies run one way).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not registered; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(valid)}")


class DuplicateNameError(ValueError):
    """A name registered twice (a plugin taking a built-in's name, say): the second would hide the first."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name
        super().__init__(f"{kind} {name!r} is registered twice")


class Registry(Generic[T]):
    def __init__(self, kind: str, plugins: str | None = None):
        self.kind = kind
        self.plugins = plugins  # the package whose import registers the entries, imported on first lookup
        self._entries: dict[str, T] = {}

    def _load(self) -> None:
        if self.plugins is not None:
            importlib.import_module(self.plugins)

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise DuplicateNameError(self.kind, name)
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


REGIMES: Registry[Any] = Registry("regime", plugins="regimes")  # name -> regimes.Regime subclass
LOSSES: Registry[Any] = Registry("loss", plugins="bench.training.losses")  # name -> (recipe, class counts) -> loss
REMEDIES: Registry[Any] = Registry("remedy", plugins="bench.derived")  # name -> bench.derived.base.Remedy subclass


def get_regime(name: str):
    """A fresh instance of the regime registered as `name` (regimes.Regime)."""
    return REGIMES.get(name)()
