"""core/v1 Events about pods and nodes, written in the background and aggregated.

:meth:`EventRecorder.emit` never blocks and never fails: it records the event in memory and a
small pool of writer tasks sends it. Repeats of the same event (same object, type, reason and
message) are aggregated as the kubelet's event correlator does — the existing Event's ``count``
is bumped instead of creating a new object — and repeats that arrive while the event is still
waiting to be written are folded into a single write.

The source of each event is ``component=vkcompose`` and ``host=<node>``: the pod's
``spec.nodeName`` (or the node itself for node events).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import attrs

from vkcompose.middlewares.limits import TokenBucket
from vkcompose.node.kube import Kube, KubeError, path_of
from vkcompose.node.queue import ShutDown, WorkQueue

log = logging.getLogger(__name__)

COMPONENT: Final = "vkcompose"
NORMAL: Final = "Normal"
WARNING: Final = "Warning"

__all__ = [
    "COMPONENT",
    "NORMAL",
    "WARNING",
    "EventRecorder",
    "LateEventSink",
    "involved_object",
    "rfc3339",
]

_Key = tuple[str, str, str, str, str, str]

DROP_LOG_SECONDS: Final = 60.0
"""While the queue stays full, drops are logged at most this often (and once more when it has
drained to half)."""


def rfc3339(ts: float | None = None) -> str:
    """A Kubernetes timestamp (second precision, UTC).

    >>> rfc3339(0)
    '1970-01-01T00:00:00Z'
    """
    global _last_second
    frac, whole = math.modf(time.time() if ts is None else ts)
    micros = round(frac * 1e6)  # datetime rounds to microseconds, half to even
    second = int(whole) + (1 if micros >= 1_000_000 else -1 if micros < 0 else 0)
    cached = _last_second
    if cached[0] != second:  # second precision: format each second once
        cached = _last_second = (
            second,
            datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    return cached[1]


_last_second: tuple[int, str] = (-(2**62), "")


def involved_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The ``involvedObject`` reference of a pod or node JSON.

    >>> involved_object({"kind": "Node", "metadata": {"name": "n1"}})["uid"]
    'n1'
    """
    meta = obj.get("metadata") or {}
    kind = obj.get("kind") or "Pod"
    ref: dict[str, Any] = {"kind": kind, "apiVersion": obj.get("apiVersion") or "v1"}
    ref["name"] = meta.get("name", "")
    if kind == "Node":
        ref["uid"] = meta.get("name", "")  # the kubelet's convention for node events
    else:
        ref["namespace"] = meta.get("namespace") or "default"
        if meta.get("uid"):
            ref["uid"] = meta["uid"]
        if meta.get("resourceVersion"):
            ref["resourceVersion"] = meta["resourceVersion"]
    return ref


@attrs.define
class _Pending:
    namespace: str
    ref: dict[str, Any]
    host: str
    type: str
    reason: str
    message: str
    count: int
    first: str
    last: str


@attrs.define
class _Written:
    name: str
    count: int
    first: str


class EventRecorder:
    """Writes aggregated core/v1 Events; :meth:`emit` is the sink middlewares call.

    Run :meth:`run` in a task group. ``default_host`` is the source host for objects that do
    not name a node. Writes are limited to ``qps`` per second with bursts of ``burst`` (the
    kubelet's ``eventRecordQPS`` 50 and ``eventBurst`` 100; ``qps=0`` lifts the limit).

    At most ``max_pending`` distinct events wait (client-go's recorder queues 1,000); beyond
    that new Normal events are dropped, while Warnings still queue up to twice as many, so a
    burst of lifecycle events does not hide a failure. Events are best effort and must never
    slow pods: drops are counted in :attr:`dropped` and logged, on the first drop of a minute
    and again once the queue has drained to half. A repeat of a waiting event only raises its
    count. A fleet's nodes share one recorder, so its cap and rate are the fleet's.
    """

    def __init__(
        self,
        kube: Kube,
        *,
        default_host: str = "",
        writers: int = 4,
        max_pending: int = 1000,
        cache_size: int = 4096,
        qps: float = 50.0,
        burst: int = 100,
    ) -> None:
        self._kube = kube
        self.default_host = default_host
        self._writers = writers
        self._max_pending = max_pending
        self._cache_size = cache_size
        self._queue: WorkQueue[_Key] = WorkQueue()
        self._pending: dict[_Key, _Pending] = {}
        self._written: OrderedDict[_Key, _Written] = OrderedDict()
        self._seq = itertools.count()
        self.dropped = 0
        """Events dropped because too many were waiting."""
        self.dropped_warnings = 0
        """How many of :attr:`dropped` were Warnings."""
        self._reported = (0, 0)  # (dropped, dropped_warnings) when drops were last logged
        self._reported_at = -math.inf
        self.written = 0
        self.enabled = True
        self._qps = qps
        self._burst = max(1, burst)
        self._bucket: TokenBucket | None = None

    def emit(self, pod: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        """Record an event about ``pod`` (a pod or node JSON); returns at once.

        This is the :class:`vkcompose.middlewares.events.EventSink` interface.
        """
        if not self.enabled:
            return
        obj = pod
        # the key first, from what involved_object() would put in the reference: a repeat
        # only raises a count and a drop costs nothing more (both are common in a burst)
        meta = obj.get("metadata") or {}
        kind = obj.get("kind") or "Pod"
        name = meta.get("name", "")
        if kind == "Node":
            key: _Key = ("default", kind, name, type, reason, message)
        else:
            key = (
                meta.get("namespace") or "default",
                kind,
                meta.get("uid") or name,
                type,
                reason,
                message,
            )
        pending = self._pending.get(key)
        if pending is not None:
            pending.count += 1
            pending.last = rfc3339()
            return
        if len(self._pending) >= self._max_pending and (
            type != WARNING or len(self._pending) >= 2 * self._max_pending
        ):
            self._drop(type)
            return
        ref = involved_object(obj)
        namespace = key[0]
        now = rfc3339()
        spec = obj.get("spec") or {}
        host = spec.get("nodeName") or (ref["name"] if ref["kind"] == "Node" else "")
        self._pending[key] = _Pending(
            namespace, ref, host or self.default_host, type, reason, message, 1, now, now
        )
        self._queue.add(key)

    def _drop(self, type_: str) -> None:
        self.dropped += 1
        if type_ == WARNING:
            self.dropped_warnings += 1
        if time.monotonic() - self._reported_at >= DROP_LOG_SECONDS:
            self._report_drops()

    def _report_drops(self) -> None:
        """Log the drops since the last report: on the first drop of a minute, and once the
        queue has drained to half (so a burst's last line has its whole count)."""
        dropped = self.dropped - self._reported[0]
        warnings = self.dropped_warnings - self._reported[1]
        log.warning(
            "%d events dropped (%d of them Warnings; %d in all): %d were waiting to be written",
            dropped,
            warnings,
            self.dropped,
            len(self._pending),
        )
        self._reported = (self.dropped, self.dropped_warnings)
        self._reported_at = time.monotonic()

    async def run(self) -> None:
        """Write events until cancelled."""
        if self._qps > 0:
            self._bucket = TokenBucket(self._qps, self._burst, anyio.current_time())
        async with anyio.create_task_group() as tg:
            for _ in range(self._writers):
                tg.start_soon(self._writer)

    def idle(self) -> bool:
        """No event is waiting to be written."""
        return not self._pending and self._queue.idle()

    async def _writer(self) -> None:
        while True:
            try:
                key = await self._queue.get()
            except ShutDown:
                return
            try:
                if self._bucket is not None:
                    wait = self._bucket.reserve(anyio.current_time())
                    if wait > 0:
                        await anyio.sleep(wait)  # repeats meanwhile only raise the count
                pending = self._pending.pop(key, None)
                if (
                    self.dropped > self._reported[0]
                    and len(self._pending) <= self._max_pending // 2
                ):
                    self._report_drops()  # the burst is over: the rest of its count
                if pending is not None:
                    await self._write(key, pending)
            except Exception as exc:  # events are best effort
                log.warning("could not write event %s/%s: %s", key[4], key[1], exc)
            finally:
                self._queue.done(key)

    async def _write(self, key: _Key, ev: _Pending) -> None:
        written = self._written.get(key)
        if written is not None:
            count = written.count + ev.count
            try:
                await self._kube.patch(
                    path_of("events", written.name, namespace=ev.namespace),
                    {"count": count, "lastTimestamp": ev.last},
                )
            except KubeError as exc:
                if not exc.not_found:
                    raise
            else:
                written.count = count
                self._written.move_to_end(key)
                self.written += 1
                return
        name = f"{ev.ref['name']}.{time.time_ns():x}{next(self._seq) % 4096:03x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ev.namespace},
            "involvedObject": ev.ref,
            "reason": ev.reason,
            "message": ev.message,
            "type": ev.type,
            "count": ev.count,
            "firstTimestamp": ev.first,
            "lastTimestamp": ev.last,
            "source": {"component": COMPONENT, "host": ev.host},
            "reportingComponent": COMPONENT,
            "reportingInstance": ev.host,
        }
        await self._kube.create(path_of("events", namespace=ev.namespace), body)
        self.written += 1
        self._written[key] = _Written(name, ev.count, ev.first)
        while len(self._written) > self._cache_size:
            self._written.popitem(last=False)


class LateEventSink:
    """An event sink to hand to middlewares before the runtime exists.

    A recipe builds its middlewares before any API connection is made; give them a
    ``LateEventSink()`` and :func:`vkcompose.node.runtime.run_virtual_node` binds it to the
    node's :class:`EventRecorder` when it starts. Events emitted before that are logged.
    """

    def __init__(self) -> None:
        self.target: EventRecorder | None = None

    def bind(self, target: EventRecorder | None) -> None:
        """Send later events to ``target`` (``None``: back to logging)."""
        self.target = target

    def emit(self, pod: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        """Forward to the bound recorder (or log)."""
        if self.target is not None:
            self.target.emit(pod, type=type, reason=reason, message=message)
        else:
            meta = pod.get("metadata") or {}
            log.info("event %s %s on %s: %s", type, reason, meta.get("name"), message)
