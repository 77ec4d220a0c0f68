"""Watch fan-out: per-resource bounded event history and subscriber queues."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import attrs

__all__ = ["Event", "Expired", "Subscription", "WatchHub"]


@attrs.define(slots=True)
class Event:
    """One change: ``type`` is ADDED, MODIFIED or DELETED; ``prev`` is the object before."""

    rv: int
    type: str
    resource: str
    namespace: str
    obj: dict[str, Any]
    raw: bytes
    prev: dict[str, Any] | None = None
    _line: bytes | None = None

    def line(self, type_: str | None = None) -> bytes:
        """The watch-stream JSON line of this event (cached for the common case)."""
        if type_ is None or type_ == self.type:
            if self._line is None:
                self._line = b'{"type":"' + self.type.encode() + b'","object":' + self.raw + b"}\n"
            return self._line
        return b'{"type":"' + type_.encode() + b'","object":' + self.raw + b"}\n"


class Expired(Exception):
    """The requested resourceVersion is older than the kept event history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Subscription:
    """A watcher's queue; ``closed`` is set when the hub drops a watcher that fell behind."""

    def __init__(
        self,
        hub: WatchHub,
        resource: str,
        namespace: str | None,
        limit: int,
        *,
        internal: bool = False,
    ) -> None:
        self._hub = hub
        self.internal = internal
        """An in-process consumer (a controller loop), not a client's watch."""
        self.resource = resource
        self.namespace = namespace
        self.queue: collections.deque[Event] = collections.deque()
        self.limit = limit
        self.overflowed = False
        self._wakeup = asyncio.Event()

    def push(self, event: Event) -> None:
        """Queue one event (called by the hub)."""
        if self.overflowed:
            return
        if len(self.queue) >= self.limit:
            self.overflowed = True
        else:
            self.queue.append(event)
        self._wakeup.set()

    async def wait(self) -> None:
        """Wait until an event is queued (or the watcher overflowed)."""
        if self.queue or self.overflowed:
            return
        self._wakeup.clear()
        await self._wakeup.wait()

    def terminate(self) -> None:
        """End the watch (server shutdown): the stream closes after queued events."""
        self.overflowed = True
        self._wakeup.set()

    def close(self) -> None:
        """Stop receiving events."""
        self._hub.unsubscribe(self)


class WatchHub:
    """Fans out committed events to subscribers and keeps the last ``history`` events per
    resource, so a watch can resume from any resourceVersion still covered."""

    def __init__(self, history: int = 10_000, queue_limit: int = 100_000) -> None:
        self.history_size = history
        self.queue_limit = queue_limit
        self._history: dict[str, collections.deque[Event]] = {}
        # RV of the newest event dropped from each resource's history (0: nothing dropped)
        self._dropped: dict[str, int] = {}
        self._subs: dict[str, set[Subscription]] = {}

    def publish(self, event: Event) -> None:
        """Record and deliver one committed event."""
        hist = self._history.get(event.resource)
        if hist is None:
            hist = self._history[event.resource] = collections.deque()
        if len(hist) >= self.history_size:
            self._dropped[event.resource] = hist.popleft().rv
        hist.append(event)
        subs = self._subs.get(event.resource)
        if subs:
            for sub in subs:
                if sub.namespace is None or sub.namespace == event.namespace:
                    sub.push(event)

    def oldest_resumable(self, resource: str) -> int:
        """The oldest resourceVersion a watch of ``resource`` may resume from."""
        return self._dropped.get(resource, 0)

    def subscribe(
        self, resource: str, namespace: str | None, since: int | None, *, internal: bool = False
    ) -> Subscription:
        """Subscribe; when ``since`` is given, queue the kept events newer than it first.

        ``internal`` subscriptions (in-process controllers) are not counted as open watches.

        Raises :class:`Expired` when events after ``since`` were already dropped.
        """
        sub = Subscription(self, resource, namespace, self.queue_limit, internal=internal)
        if since is not None:
            dropped = self._dropped.get(resource, 0)
            if since < dropped:
                hist = self._history.get(resource)
                oldest = hist[0].rv if hist else dropped + 1
                raise Expired(since, oldest)
            for event in self._history.get(resource, ()):
                if event.rv > since and (namespace is None or namespace == event.namespace):
                    sub.queue.append(event)
        self._subs.setdefault(resource, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove a subscriber (idempotent)."""
        subs = self._subs.get(sub.resource)
        if subs is not None:
            subs.discard(sub)

    def watcher_count(self) -> int:
        """Number of open client watches (in-process subscriptions are not counted)."""
        return sum(1 for subs in self._subs.values() for sub in subs if not sub.internal)
