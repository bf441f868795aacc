"""Rust's ``Result``: :class:`Ok` and :class:`Err`.

``Result`` is a value type here: it is what ``JoinHandle.join()``,
``AtomicInt.compare_exchange()`` and ``Arc.try_unwrap()`` hand back.
Both variants are immutable, hashable, comparable and usable in ``match``::

    match handle.join():
        case Ok(value): ...
        case Err(exc): ...
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Generic, NoReturn, TypeVar, Union

from ._errors import UnwrapError

T = TypeVar("T")
E = TypeVar("E")
U = TypeVar("U")
F = TypeVar("F")

__all__ = ["Ok", "Err", "Result"]


class Ok(Generic[T]):
    """The success variant: ``Ok(value)``."""

    __slots__ = ("_value",)
    __match_args__ = ("value",)
    _value: T

    def __init__(self, value: T) -> None:
        object.__setattr__(self, "_value", value)

    @property
    def value(self) -> T:
        return self._value

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Ok is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Ok is immutable")

    def __repr__(self) -> str:
        return f"Ok({self._value!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is Ok:
            return bool(self._value == other._value)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Ok, self._value))

    def __bool__(self) -> bool:
        raise TypeError("a Result has no truth value: use is_ok()/is_err() or match")

    def __reduce__(self) -> Any:
        return (Ok, (self._value,))

    def is_ok(self) -> bool:
        return True

    def is_err(self) -> bool:
        return False

    def ok(self) -> T:
        """The value (Rust's ``Option``: ``None`` for an ``Err``)."""
        return self._value

    def err(self) -> None:
        return None

    def unwrap(self) -> T:
        return self._value

    def expect(self, msg: str) -> T:
        return self._value

    def unwrap_err(self) -> NoReturn:
        raise UnwrapError(f"called unwrap_err() on {self!r}")

    def unwrap_or(self, default: Any) -> T:
        return self._value

    def unwrap_or_else(self, f: Callable[[Any], Any]) -> T:
        return self._value

    def map(self, f: Callable[[T], U]) -> "Ok[U]":
        return Ok(f(self._value))

    def map_err(self, f: Callable[[Any], Any]) -> "Ok[T]":
        return self

    def and_then(self, f: Callable[[T], Any]) -> Any:
        return f(self._value)


class Err(Generic[E]):
    """The failure variant: ``Err(error)``.

    ``unwrap()`` re-raises ``error`` itself when it is an exception (its
    traceback from the thread intact), otherwise raises ``UnwrapError``.
    An ``Err`` that a pyconc thread produced and that is garbage-collected
    without ever being inspected emits a ``RuntimeWarning`` naming the lost
    exception (like asyncio's "exception was never retrieved").
    """

    __slots__ = ("_error", "_unseen")
    __match_args__ = ("error",)
    _error: E
    _unseen: bool

    def __init__(self, error: E) -> None:
        object.__setattr__(self, "_error", error)
        object.__setattr__(self, "_unseen", False)

    @classmethod
    def _from_thread(cls, error: E) -> "Err[E]":
        self = cls(error)
        object.__setattr__(self, "_unseen", True)
        return self

    def _seen(self) -> None:
        if self._unseen:
            object.__setattr__(self, "_unseen", False)

    def __del__(self) -> None:
        if getattr(self, "_unseen", False):
            err = self._error
            warnings.warn(
                f"Err({err!r}) from a pyconc thread was never inspected: "
                f"the exception {type(err).__name__} was lost",
                RuntimeWarning,
                stacklevel=1,
            )

    @property
    def error(self) -> E:
        self._seen()
        return self._error

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Err is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Err is immutable")

    def __repr__(self) -> str:
        self._seen()
        return f"Err({self._error!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is Err:
            self._seen()
            return bool(self._error == other._error)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((Err, self._error))

    def __bool__(self) -> bool:
        raise TypeError("a Result has no truth value: use is_ok()/is_err() or match")

    def __reduce__(self) -> Any:
        return (Err, (self._error,))

    def is_ok(self) -> bool:
        self._seen()
        return False

    def is_err(self) -> bool:
        self._seen()
        return True

    def ok(self) -> None:
        self._seen()
        return None

    def err(self) -> E:
        self._seen()
        return self._error

    def unwrap(self) -> NoReturn:
        self._seen()
        err = self._error
        if isinstance(err, BaseException):
            raise err
        raise UnwrapError(f"called unwrap() on {self!r}")

    def expect(self, msg: str) -> NoReturn:
        self._seen()
        err = self._error
        if isinstance(err, BaseException):
            raise UnwrapError(f"{msg}: {err!r}") from err
        raise UnwrapError(f"{msg}: {err!r}")

    def unwrap_err(self) -> E:
        self._seen()
        return self._error

    def unwrap_or(self, default: U) -> U:
        self._seen()
        return default

    def unwrap_or_else(self, f: Callable[[E], U]) -> U:
        self._seen()
        return f(self._error)

    def map(self, f: Callable[[Any], Any]) -> "Err[E]":
        self._seen()
        return self

    def map_err(self, f: Callable[[E], F]) -> "Err[F]":
        self._seen()
        return Err(f(self._error))

    def and_then(self, f: Callable[[Any], Any]) -> "Err[E]":
        self._seen()
        return self


Result = Union[Ok[T], Err[E]]
