"""Circuit breaker: stop calling a backend that keeps failing, probe it after a cooldown.

After ``failure_threshold`` consecutive backend failures the circuit *opens*: ops fail fast
with ``TemporaryError(reason="CircuitOpen", delay=<cooldown left>)`` without reaching the
backend. When the cooldown has passed the next op is let through as a single *probe*
(half-open; others keep failing fast); its success closes the circuit, its failure opens it
for another cooldown.

Only backend failures count: by default everything except ``NotFound``, ``InvalidInput``,
``Unsupported`` and ``PermanentError`` (answers about the op, not signs of a sick backend).

Pure core: :class:`Breaker` (a state machine taking the time as an argument). Adapter:
:class:`CircuitBreaker`.

>>> breaker = Breaker(failure_threshold=2, cooldown=10.0)
>>> breaker.on_failure(now=0.0); breaker.on_failure(now=1.0)
>>> breaker.state, breaker.admit(now=5.0)
('open', 6.0)
>>> breaker.admit(now=11.0), breaker.state   # the probe
(None, 'half_open')
>>> breaker.on_success(); breaker.state
'closed'

Usage::

    compose(Retry(), CircuitBreaker(failure_threshold=5, cooldown=30.0), backend=backend)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import anyio

from vkcompose.errors import InvalidInput, NotFound, PermanentError, TemporaryError, Unsupported
from vkcompose.ops import Op
from vkcompose.pipeline import Handler

State = Literal["closed", "open", "half_open"]

NOT_BACKEND_FAILURES: tuple[type[BaseException], ...] = (
    NotFound,
    InvalidInput,
    Unsupported,
    PermanentError,
)
"""Errors that say something about the op, not about the backend's health."""


def is_backend_failure(error: BaseException) -> bool:
    """The default classification: any ``Exception`` but :data:`NOT_BACKEND_FAILURES`."""
    return isinstance(error, Exception) and not isinstance(error, NOT_BACKEND_FAILURES)


class Breaker:
    """The breaker's state machine. Not thread-safe; time is passed in (seconds)."""

    __slots__ = ("_failures", "_opened_at", "_probing", "cooldown", "failure_threshold", "state")

    def __init__(self, failure_threshold: int = 5, cooldown: float = 30.0) -> None:
        if failure_threshold < 1 or cooldown < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown >= 0")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self.state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def admit(self, now: float) -> float | None:
        """``None`` to let an op through; else the seconds to wait before trying again
        (``0.0`` while a probe is in flight)."""
        if self.state == "closed":
            return None
        if self.state == "open":
            remaining = self._opened_at + self.cooldown - now
            if remaining > 0:
                return min(remaining, self.cooldown)
            self.state = "half_open"
            self._probing = False
        if self._probing:
            return 0.0
        self._probing = True
        return None

    def on_success(self) -> None:
        """The op reached the backend and it answered: close the circuit."""
        self.state = "closed"
        self._failures = 0
        self._probing = False

    def on_failure(self, now: float) -> None:
        """The backend failed: count it; open the circuit at the threshold or on a failed probe."""
        self._failures += 1
        if self.state == "open":  # a late answer from before the circuit opened
            return
        if self.state == "half_open" or self._failures >= self.failure_threshold:
            self.state = "open"
            self._opened_at = now
            self._probing = False

    def on_abort(self) -> None:
        """The op was cancelled before the backend answered: free the probe slot."""
        self._probing = False


class CircuitBreaker:
    """Fail fast while the backend is failing (see the module docs for the states).

    ``is_failure`` decides which errors count (default :func:`is_backend_failure`); ``clock``
    is injectable for tests. ``breaker`` exposes the state machine (e.g. for a health page).
    """

    __slots__ = ("_clock", "breaker", "is_failure")

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        *,
        is_failure: Callable[[BaseException], bool] = is_backend_failure,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self.breaker = Breaker(failure_threshold, cooldown)
        self.is_failure = is_failure
        self._clock = clock

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        breaker = self.breaker
        if breaker.state != "closed":
            wait = breaker.admit(self._clock())
            if wait is not None:
                raise TemporaryError(
                    f"circuit open: backend failing, {op.kind} not attempted",
                    delay=wait or None,
                    reason="CircuitOpen",
                )
        try:
            result = await call_next(op)
        except Exception as error:
            if self.is_failure(error):
                breaker.on_failure(self._clock())
            else:
                breaker.on_success()
            raise
        except BaseException:
            breaker.on_abort()
            raise
        breaker.on_success()
        return result

    def __repr__(self) -> str:
        b = self.breaker
        return f"CircuitBreaker({b.failure_threshold}, cooldown={b.cooldown}, state={b.state})"


__all__ = [
    "NOT_BACKEND_FAILURES",
    "Breaker",
    "CircuitBreaker",
    "State",
    "is_backend_failure",
]
