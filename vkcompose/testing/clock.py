"""A virtual clock for testing timing logic without waiting.

Middlewares that sleep or read the time (retry, rate limit, circuit breaker, fault injection)
take ``clock=`` and ``sleep=`` arguments; pass a :class:`FakeClock`'s methods and time advances
only when the code under test sleeps (or when the test calls :meth:`FakeClock.advance`)::

    >>> import anyio
    >>> clock = FakeClock()
    >>> anyio.run(clock.sleep, 2.5)
    >>> clock.time(), clock.sleeps
    (2.5, [2.5])
"""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest


class FakeClock:
    """Virtual monotonic time: :meth:`sleep` advances it instantly and records the request."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        """The current virtual time in seconds (use as ``clock=``)."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward without sleeping."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, advance time by it and yield once to the event loop."""
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A :class:`FakeClock` starting at 0."""
    return FakeClock()


__all__ = ["FakeClock", "fake_clock"]
