"""A keyed work queue: de-duplicated, serialized per key, with per-key backoff.

The semantics are those of client-go's ``workqueue`` (which Virtual Kubelet uses), minus its
global token bucket (VK#840: it caps *new* work at ~10 items/s):

* a key added while it waits is stored once (bursts of events coalesce into one run);
* a key is handed to at most one worker at a time; a key added while it is being processed is
  run again once that worker calls :meth:`WorkQueue.done`;
* :meth:`WorkQueue.add_after` schedules a key for later (one timer task serves all keys);
* ``add(key, urgent=True)`` puts a key in a lane served first (for a pod that is already
  running, so its status reaches the API before a backlog of new pods is worked through);
  after :attr:`WorkQueue.urgent_burst` urgent keys in a row one waiting ordinary key is served,
  so neither lane starves;
* :class:`Backoff` gives per-key exponential delays with a cap; it never gives up — the caller
  keeps retrying and reports each failure.

>>> import anyio
>>> async def demo() -> list[str]:
...     q: WorkQueue[str] = WorkQueue()
...     for key in ["a", "b", "a"]:
...         q.add(key)
...     got = [await q.get(), await q.get()]
...     q.done("a"); q.done("b")
...     return got
>>> anyio.run(demo)
['a', 'b']
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import anyio
import attrs

K = TypeVar("K", bound=Hashable)

__all__ = ["Backoff", "WorkQueue"]


@attrs.define
class Backoff(Generic[K]):
    """Per-key exponential backoff: ``base * factor**failures`` (with jitter), at most ``cap``.

    >>> b: Backoff[str] = Backoff(base=1.0, cap=5.0, jitter=0.0)
    >>> [b.next_delay("k") for _ in range(5)]
    [1.0, 2.0, 4.0, 5.0, 5.0]
    >>> b.failures("k"), b.forget("k"), b.failures("k")
    (5, None, 0)
    """

    base: float = 0.1
    cap: float = 60.0
    factor: float = 2.0
    jitter: float = 0.1
    """Fraction of the delay added at random (spreads retries of many keys failing together)."""
    _failures: dict[K, int] = attrs.field(factory=dict, init=False)

    def next_delay(self, key: K, at_least: float = 0.0) -> float:
        """Count one more failure of ``key`` and return how long to wait before retrying it."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        # cap the exponent so huge failure counts cannot overflow the float
        delay = min(self.cap, self.base * self.factor ** min(n, 64))
        if self.jitter:
            delay = min(self.cap, delay * (1.0 + random.random() * self.jitter))
        return max(delay, min(at_least, self.cap))

    def failures(self, key: K) -> int:
        """How many failures of ``key`` were counted since it last succeeded."""
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        """``key`` succeeded: the next failure starts again at ``base``."""
        self._failures.pop(key, None)


class ShutDown(Exception):
    """Raised by :meth:`WorkQueue.get` once the queue is shut down."""


class WorkQueue(Generic[K]):
    """De-duplicating, per-key serialized work queue (see the module docstring)."""

    urgent_burst: int = 8
    """Urgent keys served in a row before one ordinary key (when both lanes wait)."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._queue: deque[K] = deque()
        self._urgent: deque[K] = deque()
        self._in_urgent: set[K] = set()
        self._burst = 0
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiters: deque[anyio.Event] = deque()
        self._timers: list[tuple[float, int, K]] = []
        self._timer_due: dict[K, float] = {}
        self._seq = itertools.count()
        self._timer_wakeup = anyio.Event()
        self._clock = clock or anyio.current_time
        self._shutdown = False

    def __len__(self) -> int:
        """Keys waiting to be handed out (not counting delayed or in-flight ones)."""
        return len(self._dirty) - len(self._dirty & self._processing)

    @property
    def in_flight(self) -> int:
        """Keys currently held by workers."""
        return len(self._processing)

    @property
    def delayed(self) -> int:
        """Keys scheduled by :meth:`add_after` that are not yet due."""
        return len(self._timer_due)

    def idle(self) -> bool:
        """Nothing queued, in flight or delayed."""
        return not self._dirty and not self._processing and not self._timer_due

    def add(self, key: K, *, urgent: bool = False) -> None:
        """Queue ``key`` (a no-op when it already waits, except that ``urgent`` moves a key
        waiting in the ordinary lane to the urgent one)."""
        if self._shutdown:
            return
        if key in self._dirty:
            if urgent and key not in self._in_urgent:
                self._in_urgent.add(key)
                if key not in self._processing:
                    self._urgent.append(key)  # its ordinary entry is skipped when reached
            return
        self._dirty.add(key)
        if urgent:
            self._in_urgent.add(key)
        if key in self._processing:
            return  # re-queued by done()
        (self._urgent if urgent else self._queue).append(key)
        self._wake_one()

    def _has_work(self) -> bool:
        return bool(self._urgent or self._queue)

    def _pop(self) -> K | None:
        """The next waiting key, or None (lanes may hold stale entries of moved keys)."""
        while self._urgent or self._queue:
            take_urgent = bool(self._urgent) and (
                not self._queue or self._burst < self.urgent_burst
            )
            if take_urgent:
                key = self._urgent.popleft()
                self._burst += 1
                if key not in self._in_urgent or key in self._processing:
                    continue  # stale
                self._in_urgent.discard(key)
            else:
                key = self._queue.popleft()
                self._burst = 0
                if key not in self._dirty or key in self._in_urgent or key in self._processing:
                    continue  # stale: moved to the urgent lane, or already taken
            return key
        return None

    def add_after(self, key: K, delay: float) -> float | None:
        """Queue ``key`` after ``delay`` seconds (an earlier pending schedule wins).

        Returns the due time of the schedule this call made (``None``: it made none), for
        :meth:`cancel_after`.
        """
        if self._shutdown:
            return None
        if delay <= 0:
            self.add(key)
            return None
        due = self._clock() + delay
        current = self._timer_due.get(key)
        if current is not None and current <= due:
            return None
        self._timer_due[key] = due
        heapq.heappush(self._timers, (due, next(self._seq), key))
        if self._timers[0][2] == key:
            self._timer_wakeup.set()
        return due

    def cancel_after(self, key: K, due: float) -> None:
        """Drop the pending schedule of ``key`` if it is still the one due at ``due``."""
        if self._timer_due.get(key) == due:
            del self._timer_due[key]  # its heap entry is skipped as superseded

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.is_set():
                waiter.set()
                return

    async def get(self) -> K:
        """Wait for a key and take it; call :meth:`done` with it when finished."""
        while True:
            key = self._pop()
            if key is not None:
                break
            if self._shutdown:
                raise ShutDown
            waiter = anyio.Event()
            self._waiters.append(waiter)
            try:
                await waiter.wait()
            except BaseException:
                # pass our wake-up on, in case we were chosen and then cancelled
                if waiter.is_set() and self._has_work():
                    self._wake_one()
                raise
        self._dirty.discard(key)
        self._processing.add(key)
        if self._has_work():
            self._wake_one()
        return key

    def done(self, key: K) -> None:
        """Release ``key``; if it was added meanwhile, queue it again (in its lane)."""
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            (self._urgent if key in self._in_urgent else self._queue).append(key)
            self._wake_one()

    def shutdown(self) -> None:
        """Wake every waiting worker with :class:`ShutDown`; later adds are ignored."""
        self._shutdown = True
        self._timer_wakeup.set()
        while self._waiters:
            self._waiters.popleft().set()

    def _pop_due(self) -> float | None:
        """Queue due timers; return seconds until the next one (None if there is none)."""
        now = self._clock()
        while self._timers:
            due, _, key = self._timers[0]
            if self._timer_due.get(key) != due:
                heapq.heappop(self._timers)  # superseded by an earlier schedule
                continue
            if due > now:
                return due - now
            heapq.heappop(self._timers)
            del self._timer_due[key]
            self.add(key)
        return None

    async def run_timers(self) -> None:
        """Serve :meth:`add_after` schedules until shut down (run it in a task group)."""
        while not self._shutdown:
            wait = self._pop_due()
            self._timer_wakeup = anyio.Event()
            with anyio.move_on_after(wait if wait is not None else 3600.0):
                await self._timer_wakeup.wait()
