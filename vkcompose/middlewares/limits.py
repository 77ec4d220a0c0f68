"""Concurrency and rate limits in front of a backend.

* :class:`ConcurrencyLimit` — at most ``n`` ops in flight (anyio ``CapacityLimiter``), with
  optional tighter limits per op kind. Streaming sessions (exec, attach, port-forward, followed
  logs) do not hold a slot unless their kind is named in ``per_kind``.
* :class:`RateLimit` — a token bucket: ``rate`` ops per second on average, bursts up to
  ``burst``. Ops wait for their token (or, with ``reject=True``, fail fast with
  ``TemporaryError(delay=...)`` telling the caller when to come back).

Pure core: :class:`TokenBucket`. Adapters: :class:`ConcurrencyLimit`, :class:`RateLimit`.

>>> bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
>>> [bucket.reserve(0.0) for _ in range(4)]
[0.0, 0.0, 0.5, 1.0]

Usage::

    compose(ConcurrencyLimit(16, per_kind={"pod.create": 4}), RateLimit(50, burst=100),
            backend=backend)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import anyio

from vkcompose.errors import TemporaryError
from vkcompose.middlewares.timeout import is_streaming
from vkcompose.ops import Op
from vkcompose.pipeline import Handler


class ConcurrencyLimit:
    """Bound the number of ops in flight, overall (``n``) and per op kind (``per_kind``).

    An op of a kind listed in ``per_kind`` takes a slot of its kind's limiter and one of the
    overall limiter (``n=None``: no overall bound). Waiting ops queue in FIFO order.
    """

    __slots__ = ("_overall", "_per_kind", "n", "per_kind")

    def __init__(self, n: int | None = None, *, per_kind: Mapping[str, int] | None = None) -> None:
        self.n = n
        self.per_kind = dict(per_kind or {})
        self._overall = anyio.CapacityLimiter(n) if n is not None else None
        self._per_kind = {kind: anyio.CapacityLimiter(k) for kind, k in self.per_kind.items()}

    @property
    def in_flight(self) -> int:
        """Ops currently holding an overall slot."""
        return int(self._overall.borrowed_tokens) if self._overall is not None else 0

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        kind_limiter = self._per_kind.get(op.kind)
        if kind_limiter is None and is_streaming(op):
            return await call_next(op)
        if kind_limiter is not None:
            async with kind_limiter:
                if self._overall is None:
                    return await call_next(op)
                async with self._overall:
                    return await call_next(op)
        if self._overall is None:
            return await call_next(op)
        async with self._overall:
            return await call_next(op)

    def __repr__(self) -> str:
        return f"ConcurrencyLimit({self.n}, per_kind={self.per_kind!r})"


class TokenBucket:
    """A token bucket with reservations (pure: the caller passes the time).

    Holds up to ``burst`` tokens, refilled at ``rate`` per second. :meth:`reserve` always takes
    a token, possibly going into debt, and returns how long the caller must wait before
    using it — so waiters are served in arrival order.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float = 0.0) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now

    def reserve(self, now: float) -> float:
        """Take a token; return the seconds to wait before it is valid (``0.0``: now)."""
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self, now: float) -> float:
        """Take a token if one is available now and return ``0.0``; otherwise take nothing and
        return the seconds until one will be."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def give_back(self) -> None:
        """Return a reserved token that was not used (e.g. its waiter was cancelled)."""
        self._tokens = min(float(self.burst), self._tokens + 1.0)


class RateLimit:
    """Limit ops to ``rate`` per second with bursts of ``burst`` (token bucket).

    ``kinds`` restricts the limit to those op kinds (default: every op). With ``reject=True``
    an op that would have to wait fails at once with ``TemporaryError(delay=wait)`` (reason
    ``RateLimited``) instead of waiting. ``clock``/``sleep`` are injectable for tests.
    """

    __slots__ = ("_bucket", "_bucket_args", "_clock", "_sleep", "kinds", "reject")

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        kinds: Collection[str] | None = None,
        reject: bool = False,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._bucket: TokenBucket | None = None
        self._clock = clock
        self._sleep = sleep
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.reject = reject
        TokenBucket(rate, burst)  # validate now, create lazily (the clock may need a loop)
        self._bucket_args = (rate, burst)

    def _get_bucket(self, now: float) -> TokenBucket:
        if self._bucket is None:
            self._bucket = TokenBucket(*self._bucket_args, now=now)
        return self._bucket

    async def __call__(self, op: Op, call_next: Handler, /) -> Any:
        if self.kinds is not None and op.kind not in self.kinds:
            return await call_next(op)
        now = self._clock()
        bucket = self._get_bucket(now)
        if self.reject:
            wait = bucket.try_take(now)
            if wait > 0:
                raise TemporaryError(
                    f"{op.kind} rate limited; retry in {wait:.3g}s",
                    delay=wait,
                    reason="RateLimited",
                )
            return await call_next(op)
        wait = bucket.reserve(now)
        if wait > 0:
            try:
                await self._sleep(wait)
            except BaseException:
                bucket.give_back()
                raise
        return await call_next(op)

    def __repr__(self) -> str:
        rate, burst = self._bucket_args
        return f"RateLimit({rate}, burst={burst})"


__all__ = ["ConcurrencyLimit", "RateLimit", "TokenBucket"]
