"""A retry budget shared across calls (Finagle's and tower's ``TpsBudget``).

Each request *deposits* into the budget and each retry *withdraws* from it; retries are allowed
while the balance covers them. Over any ``ttl`` window this allows about
``min_per_sec * ttl + retry_percent * requests`` retries, so a failing backend gets a bounded
fraction of extra load instead of a retry storm. Deposits and withdrawals expire after ``ttl``
(a sliding window of ``windows`` slots).

Integer accounting as tower does: with ``retry_percent = 0.2`` a deposit adds 1 and a retry
costs 5; the reserve ``min_per_sec * ttl`` retries is always there.

>>> budget = RetryBudget(ttl=10.0, min_per_sec=0, retry_percent=0.5, clock=lambda: 0.0)
>>> budget.withdraw()
False
>>> budget.deposit(); budget.deposit()
>>> budget.withdraw(), budget.withdraw()
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable

import anyio


class RetryBudget:
    """Sliding-window retry budget. Not thread-safe: share it within one event loop.

    ``clock`` returns monotonic seconds (default :func:`anyio.current_time`, so the budget is
    used from inside the event loop).
    """

    def __init__(
        self,
        *,
        ttl: float = 10.0,
        min_per_sec: int = 10,
        retry_percent: float = 0.2,
        windows: int = 10,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        if not 1.0 <= ttl <= 60.0:
            raise ValueError(f"ttl must be within [1, 60] seconds, got {ttl}")
        if not 0.0 <= retry_percent <= 1000.0:
            raise ValueError(f"retry_percent must be within [0, 1000], got {retry_percent}")
        if min_per_sec < 0 or windows < 1:
            raise ValueError("min_per_sec must be >= 0 and windows >= 1")
        if retry_percent == 0.0:
            self._deposit, self._withdraw = 0, 1
        elif retry_percent <= 1.0:
            self._deposit, self._withdraw = 1, int(1.0 / retry_percent)
        else:
            self._deposit, self._withdraw = 1000, int(1000.0 / retry_percent)
        self.ttl = ttl
        self.min_per_sec = min_per_sec
        self.retry_percent = retry_percent
        self._reserve = int(min_per_sec * ttl) * self._withdraw
        self._slots = [0] * windows
        self._window = ttl / windows
        self._index = 0
        self._slot_start: float | None = None
        self._clock = clock

    def _expire(self) -> None:
        now = self._clock()
        if self._slot_start is None:
            self._slot_start = now
            return
        steps = int((now - self._slot_start) // self._window)
        if steps <= 0:
            return
        slots = self._slots
        for _ in range(min(steps, len(slots))):
            self._index = (self._index + 1) % len(slots)
            slots[self._index] = 0
        self._slot_start += steps * self._window

    @property
    def balance(self) -> int:
        """Current balance in internal units (one retry costs ``withdraw_amount``)."""
        self._expire()
        return self._reserve + sum(self._slots)

    @property
    def withdraw_amount(self) -> int:
        """Units one retry costs."""
        return self._withdraw

    def deposit(self) -> None:
        """Record one request (call once per original call, not per retry)."""
        self._expire()
        self._slots[self._index] += self._deposit

    def withdraw(self) -> bool:
        """Take one retry from the budget; ``False`` (and no change) when it cannot cover it."""
        self._expire()
        if self._reserve + sum(self._slots) >= self._withdraw:
            self._slots[self._index] -= self._withdraw
            return True
        return False

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ttl={self.ttl}, min_per_sec={self.min_per_sec}, "
            f"retry_percent={self.retry_percent})"
        )


__all__ = ["RetryBudget"]
