"""Where middlewares report Kubernetes events about a pod.

The pod controller implements :class:`EventSink` (posting ``v1.Event`` objects for the pod);
middlewares take an optional sink and emit through it. :class:`RecordingEvents` keeps events in
memory, for tests and for users of the pure cores.

>>> events = RecordingEvents()
>>> events.emit({"metadata": {"name": "web"}}, type="Warning", reason="R", message="m")
>>> events.events
[Event(pod_key=('', 'web'), type='Warning', reason='R', message='m')]
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from vkcompose.podspec import Pod


@runtime_checkable
class EventSink(Protocol):
    """Receives events about a pod (``type`` is ``Normal`` or ``Warning``)."""

    def emit(self, pod: Pod, *, type: str, reason: str, message: str) -> None:
        """Record one event about ``pod``. Must not raise or block."""


@attrs.frozen
class Event:
    """One recorded event."""

    pod_key: tuple[str, str]
    type: str
    reason: str
    message: str


@attrs.define
class RecordingEvents:
    """An :class:`EventSink` that keeps every event in :attr:`events`."""

    events: list[Event] = attrs.field(factory=list)

    def emit(self, pod: Pod, *, type: str, reason: str, message: str) -> None:
        """Append the event."""
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        self.events.append(Event(key, type, reason, message))


__all__ = ["Event", "EventSink", "RecordingEvents"]
