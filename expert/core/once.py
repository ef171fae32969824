"""`once`: a derived attribute computed on first read and kept on the instance, like functools.cached_property
without its lock.

Python 3.11's cached_property takes a lock and looks the instance dict up twice on every first read; the candidate
records of a request are read that way about 2,500 times (their derived costs and speeds, by the fact, the engine's
classes and the ranking). The values are pure functions of an immutable record, so two threads racing on a first
read would only compute the same value twice: nothing needs the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class once(Generic[T]):  # noqa: N801 - used as a decorator, named like the property it stands for
    """A non-data descriptor: after the first read the instance's own attribute answers, without this code."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value
