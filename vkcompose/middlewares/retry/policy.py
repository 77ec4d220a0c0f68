"""Retry policy: which failures to retry and how long to wait before the next attempt.

Pure functions, no I/O and no clock: :func:`plan_retry` takes the current time and the deadline
and returns the delay before the next attempt, or ``None`` to give up.

Backoff is *full jitter* exponential: the ``n``-th retry waits a uniform random time in
``[0, min(max_delay, base_delay * 2**n))``. A :class:`~vkcompose.errors.TemporaryError` that
carries ``delay`` is backend pushback and replaces the computed backoff.

>>> import random
>>> from vkcompose.errors import TemporaryError
>>> policy = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=1.0)
>>> plan_retry(policy, attempt=1, error=TemporaryError("busy", delay=0.5), now=0.0, deadline=10.0)
0.5
>>> plan_retry(policy, attempt=3, error=TemporaryError("busy"), now=0.0, deadline=10.0) is None
True
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable

import attrs

from vkcompose.errors import InvalidInput, NotFound, PermanentError, TemporaryError, Unsupported

NEVER_RETRY: tuple[type[BaseException], ...] = (
    PermanentError,
    NotFound,
    InvalidInput,
    Unsupported,
)
"""Errors that repeating the same operation cannot fix; they win over ``retry_on``."""


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """What to retry and how to back off.

    ``max_attempts`` counts the first call (``1`` disables retries). ``retry_on`` lists the
    retryable exception types; :data:`NEVER_RETRY` types are never retried even when they
    subclass one of them.
    """

    max_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    base_delay: float = attrs.field(default=0.05, validator=_positive)
    max_delay: float = attrs.field(default=5.0, validator=_positive)
    retry_on: tuple[type[BaseException], ...] = (TemporaryError,)

    def retryable(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another attempt (classification only, no budget/deadline)."""
        return isinstance(error, self.retry_on) and not isinstance(error, NEVER_RETRY)


def backoff_delay(
    retry: int, base_delay: float, max_delay: float, random: Callable[[], float]
) -> float:
    """Full-jitter exponential backoff before retry number ``retry`` (0 = first retry).

    ``random`` returns a float in ``[0, 1)`` (e.g. :meth:`random.Random.random`).
    """
    ceiling = max_delay if retry >= 64 else min(max_delay, base_delay * 2.0**retry)
    return random() * ceiling


def pushback(error: BaseException) -> float | None:
    """The backend's requested delay (``TemporaryError.delay``), never negative."""
    delay = getattr(error, "delay", None) if isinstance(error, TemporaryError) else None
    return None if delay is None else max(float(delay), 0.0)


def plan_retry(
    policy: RetryPolicy,
    *,
    attempt: int,
    error: BaseException,
    now: float,
    deadline: float,
    random: Callable[[], float] = _random.random,
) -> float | None:
    """Delay before the attempt following failed attempt number ``attempt`` (1-based).

    Returns ``None`` — give up and raise ``error`` — when the error is not retryable, when
    ``attempt`` was the last allowed, or when sleeping the delay would end past ``deadline``.
    """
    if attempt >= policy.max_attempts or not policy.retryable(error):
        return None
    delay = pushback(error)
    if delay is None:
        delay = backoff_delay(attempt - 1, policy.base_delay, policy.max_delay, random)
    if now + delay > deadline:
        return None
    return delay


__all__ = ["NEVER_RETRY", "RetryPolicy", "backoff_delay", "plan_retry", "pushback"]
