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

T = TypeVar("T", covariant=True)
E = TypeVar("E", covariant=True)
U = TypeVar("U")
F = TypeVar("F")
R = TypeVar("R")

__all__ = ["Ok", "Err", "Result"]


class Ok(Generic[T]):
    """The success variant: ``Ok(value)``.

        >>> r = pyconc.Ok(42)
        >>> r.is_ok(), r.unwrap(), r.map(str)
        (True, 42, Ok('42'))
        >>> match r:
        ...     case pyconc.Ok(v): print("got", v)
        got 42
    """

    __slots__ = ("_value",)
    __match_args__ = ("value",)
    _value: T

    def __init__(self, value: T) -> None:
        object.__setattr__(self, "_value", value)

    @property
    def value(self) -> T:
        """The value (what ``match r: case Ok(v)`` binds)."""
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
        """True: this is an ``Ok``."""
        return True

    def is_err(self) -> bool:
        """False: this is not an ``Err``."""
        return False

    def ok(self) -> T:
        """The value (Rust's ``Option``: ``None`` for an ``Err``)."""
        return self._value

    def err(self) -> None:
        """``None`` (the error of an ``Err``)."""
        return None

    def unwrap(self) -> T:
        """The value (an ``Err`` raises instead)."""
        return self._value

    def expect(self, msg: str) -> T:
        """The value (an ``Err`` raises ``UnwrapError(msg)`` instead)."""
        return self._value

    def unwrap_err(self) -> NoReturn:
        """Raises ``UnwrapError``: an ``Ok`` has no error."""
        raise UnwrapError(f"called unwrap_err() on {self!r}")

    def unwrap_or(self, default: object) -> T:
        """The value (``default`` is for an ``Err``)."""
        return self._value

    def unwrap_or_else(self, f: Callable[[Any], object]) -> T:
        """The value (``f(error)`` is for an ``Err``)."""
        return self._value

    def map(self, f: Callable[[T], U]) -> "Ok[U]":
        """``Ok(f(value))``."""
        return Ok(f(self._value))

    def map_err(self, f: Callable[[Any], object]) -> "Ok[T]":
        """This ``Ok`` itself (``f`` maps an ``Err``'s error)."""
        return self

    def and_then(self, f: Callable[[T], R]) -> R:
        """``f(value)``, which should return a Result (Rust's ``and_then``)."""
        return f(self._value)


class Err(Generic[E]):
    """The failure variant: ``Err(error)``.

    ``unwrap()`` re-raises ``error`` itself when it is an exception (its
    traceback from the thread intact), otherwise raises ``UnwrapError``.
    An ``Err`` that a pyconc thread produced and that is garbage-collected
    without ever being inspected emits a ``RuntimeWarning`` naming the lost
    exception (like asyncio's "exception was never retrieved").

        >>> r = pyconc.spawn(lambda: 1 / 0).join()
        >>> r.is_err(), type(r.err()).__name__
        (True, 'ZeroDivisionError')
        >>> r.unwrap_or(0)
        0
        >>> pyconc.Err("nope").map_err(str.upper)
        Err('NOPE')
    """

    __slots__ = ("_error", "_unseen")
    __match_args__ = ("error",)
    _error: E
    _unseen: bool

    def __init__(self, error: E) -> None:
        object.__setattr__(self, "_error", error)
        object.__setattr__(self, "_unseen", False)

    @classmethod
    def _from_thread(cls, error: F) -> "Err[F]":
        self = Err(error)
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
        """The error (what ``match r: case Err(e)`` binds)."""
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
        """False: this is not an ``Ok``."""
        self._seen()
        return False

    def is_err(self) -> bool:
        """True: this is an ``Err``."""
        self._seen()
        return True

    def ok(self) -> None:
        """``None`` (the value of an ``Ok``)."""
        self._seen()
        return None

    def err(self) -> E:
        """The error."""
        self._seen()
        return self._error

    def unwrap(self) -> NoReturn:
        """Raise the error itself if it is an exception (traceback intact),
        else ``UnwrapError``."""
        self._seen()
        err = self._error
        if isinstance(err, BaseException):
            raise err
        raise UnwrapError(f"called unwrap() on {self!r}")

    def expect(self, msg: str) -> NoReturn:
        """Raise ``UnwrapError(f"{msg}: {error!r}")``, chained to the error."""
        self._seen()
        err = self._error
        if isinstance(err, BaseException):
            raise UnwrapError(f"{msg}: {err!r}") from err
        raise UnwrapError(f"{msg}: {err!r}")

    def unwrap_err(self) -> E:
        """The error."""
        self._seen()
        return self._error

    def unwrap_or(self, default: U) -> U:
        """``default``."""
        self._seen()
        return default

    def unwrap_or_else(self, f: Callable[[E], U]) -> U:
        """``f(error)``."""
        self._seen()
        return f(self._error)

    def map(self, f: Callable[[Any], object]) -> "Err[E]":
        """This ``Err`` itself (``f`` maps an ``Ok``'s value)."""
        self._seen()
        return self

    def map_err(self, f: Callable[[E], F]) -> "Err[F]":
        """``Err(f(error))``."""
        self._seen()
        return Err(f(self._error))

    def and_then(self, f: Callable[[Any], object]) -> "Err[E]":
        """This ``Err`` itself (``f`` is for an ``Ok``)."""
        self._seen()
        return self

_T = TypeVar("_T")
_E = TypeVar("_E")

Result = Union[Ok[_T], Err[_E]]
_RESULT_DOC = """``Result[T, E]``: the type ``Ok[T] | Err[E]``, for annotations::

    def parse(s: str) -> Result[int, str]:
        return Ok(int(s)) if s.isdigit() else Err(f"not a number: {s!r}")

``isinstance`` needs a variant (``Ok`` or ``Err``); or match on them.
"""
try:
    Result.__doc__ = _RESULT_DOC
except (AttributeError, TypeError):  # an interpreter whose Union aliases are immutable
    pass
