"""Clocks for backends that schedule work: the event loop's clock, and a manual one for tests.

A scheduler waits with :meth:`Clock.wait_until`, which returns at a deadline *or* as soon as
a wake-up event is set (new work arrived), whichever comes first.

>>> clock = ManualClock()
>>> clock.advance(2.5)
>>> clock.now()
2.5
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic time in seconds and a way to wait for a moment or a wake-up."""

    def now(self) -> float:
        """The current time (seconds, monotonic)."""
        ...

    async def wait_until(self, deadline: float | None, wakeup: anyio.Event) -> None:
        """Return once ``now() >= deadline`` (never, if ``None``) or ``wakeup`` is set."""
        ...


class AnyioClock:
    """The event loop's clock: the running asyncio loop's, else ``anyio.current_time()``."""

    def now(self) -> float:
        """The event loop's monotonic time."""
        try:
            # what anyio.current_time() returns on asyncio, without finding out which event
            # loop runs (a simulated pod reads the clock several times); it also works in a
            # loop callback, outside any task
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return anyio.current_time()

    async def wait_until(self, deadline: float | None, wakeup: anyio.Event) -> None:
        """Wait until ``now()`` reaches ``deadline`` (measured from ``now()``, so the wait is
        right even where anyio's clock is another one, as in trio's guest mode)."""
        if deadline is None:
            await wakeup.wait()
            return
        with anyio.move_on_after(deadline - self.now()):
            await wakeup.wait()


class ManualClock:
    """A clock that moves only when told to (:meth:`advance`): timing tests without waiting.

    Every waiter is woken on each advance and re-checks its own deadline.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._waiters: set[anyio.Event] = set()

    def now(self) -> float:
        """The manually set time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every waiter."""
        self._now += seconds
        for waiter in list(self._waiters):
            waiter.set()

    async def wait_until(self, deadline: float | None, wakeup: anyio.Event) -> None:
        """Wait until advanced past ``deadline`` or ``wakeup`` is set."""
        if deadline is not None and self._now >= deadline:
            return
        self._waiters.add(wakeup)
        try:
            await wakeup.wait()
        finally:
            self._waiters.discard(wakeup)


__all__ = ["AnyioClock", "Clock", "ManualClock"]
