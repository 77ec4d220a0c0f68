"""What a backend can do, as runtime-checkable protocols.

A backend is any object; each method it has switches on the operations that use it. The
pod lifecycle (:class:`PodLifecycle`) is what nearly every backend offers; everything else is
optional. The terminal adapter of a pipeline dispatches each op to the matching method and
raises :class:`~vkcompose.errors.Unsupported` for ops whose capability is absent.

>>> class Tiny:
...     async def create_pod(self, pod): ...
>>> isinstance(Tiny(), CanCreatePods), isinstance(Tiny(), SupportsLogs)
(True, False)
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from anyio.abc import ByteStream

from vkcompose import ops
from vkcompose.podspec import JSON, Pod

PodNotifier = Callable[[Pod], None]
"""Called by a backend with the pod (metadata + fresh ``status``) whenever its status changes."""


@runtime_checkable
class CanCreatePods(Protocol):
    """Runs new pods."""

    async def create_pod(self, pod: Pod, /) -> None:
        """Start the pod; return once it is accepted (it may still be starting)."""


@runtime_checkable
class CanUpdatePods(Protocol):
    """Applies changes of a running pod's mutable fields."""

    async def update_pod(self, pod: Pod, /) -> None:
        """Apply the new pod spec."""


@runtime_checkable
class CanDeletePods(Protocol):
    """Stops pods."""

    async def delete_pod(self, pod: Pod, grace_period_seconds: int | None, /) -> None:
        """Stop the pod (TERM, wait the grace period, KILL). Raise NotFound if unknown."""


@runtime_checkable
class CanReadPodStatus(Protocol):
    """Reports one pod's status."""

    async def get_pod_status(self, namespace: str, name: str, /) -> Pod:
        """Return the pod with its current ``status``; raise NotFound if unknown."""


@runtime_checkable
class CanListPods(Protocol):
    """Lists the pods it runs (used for startup reconciliation and polling)."""

    async def list_pods(self) -> list[Pod]:
        """Return every pod the backend knows, with statuses."""


@runtime_checkable
class PodLifecycle(
    CanCreatePods, CanUpdatePods, CanDeletePods, CanReadPodStatus, CanListPods, Protocol
):
    """The full pod lifecycle: create, update, delete, status, list."""


@runtime_checkable
class SupportsNotify(Protocol):
    """Pushes status changes instead of being polled."""

    def notify_pods(self, notifier: PodNotifier, /) -> None:
        """Register the callback the backend calls on every status change."""


@runtime_checkable
class KnowsPodIPs(Protocol):
    """Knows (or allocates) the IPs of a pod before it starts."""

    async def pod_ips(self, pod: Pod, /) -> Sequence[str]:
        """Return the pod's IPs, primary first."""


@runtime_checkable
class SupportsLogs(Protocol):
    """Serves container logs."""

    def read_logs(
        self, namespace: str, name: str, container: str, options: ops.LogOptions, /
    ) -> AsyncIterator[bytes]:
        """Yield log bytes; with ``options.follow`` keep yielding until the container ends."""


@runtime_checkable
class SupportsExec(Protocol):
    """Runs commands inside containers."""

    async def exec(
        self, namespace: str, name: str, container: str, command: Sequence[str], io: ops.ExecIO, /
    ) -> int:
        """Run ``command`` wired to ``io``; return its exit code."""


@runtime_checkable
class SupportsAttach(Protocol):
    """Attaches to a container's main process."""

    async def attach(self, namespace: str, name: str, container: str, io: ops.ExecIO, /) -> int:
        """Relay ``io`` to the container's process until it ends or the client leaves."""


@runtime_checkable
class SupportsPortForward(Protocol):
    """Forwards connections to ports of a pod."""

    async def port_forward(
        self, namespace: str, name: str, port: int, stream: ByteStream, /
    ) -> None:
        """Relay ``stream`` to ``port`` in the pod until either side closes."""


@runtime_checkable
class SupportsStats(Protocol):
    """Reports resource usage."""

    async def get_stats(self, node: ops.NodeInfo | None, /) -> JSON:
        """Return a kubelet Summary API document (``/stats/summary``)."""


@runtime_checkable
class SupportsPing(Protocol):
    """Has a health check; a failing ping makes the node NotReady."""

    async def ping(self) -> None:
        """Return when healthy, raise when not."""


@runtime_checkable
class SupportsNodeStatus(Protocol):
    """Reports node conditions (MemoryPressure …) or capacity it knows better than the recipe."""

    async def node_status(self, node: ops.NodeInfo | None, /) -> JSON:
        """Return a partial NodeStatus (``conditions``, ``capacity``, ``allocatable``)."""


Dispatch = Callable[[Any, Any], Awaitable[Any]]


def _read_logs(backend: Any, op: ops.ReadLogs) -> Awaitable[Any]:
    async def opened() -> AsyncIterator[bytes]:
        stream = backend.read_logs(op.namespace, op.name, op.container, op.options)
        if inspect.isawaitable(stream):  # ``async def read_logs`` returning the iterator
            stream = await stream
        return stream  # type: ignore[no-any-return]

    return opened()


DISPATCH: dict[type[ops.Op], tuple[str, Dispatch]] = {
    ops.CreatePod: ("create_pod", lambda b, op: b.create_pod(op.pod)),
    ops.UpdatePod: ("update_pod", lambda b, op: b.update_pod(op.pod)),
    ops.DeletePod: ("delete_pod", lambda b, op: b.delete_pod(op.pod, op.grace_period_seconds)),
    ops.AllocatePodIPs: ("pod_ips", lambda b, op: b.pod_ips(op.pod)),
    ops.GetPodStatus: ("get_pod_status", lambda b, op: b.get_pod_status(op.namespace, op.name)),
    ops.ListPods: ("list_pods", lambda b, op: b.list_pods()),
    ops.ReadLogs: ("read_logs", _read_logs),
    ops.Exec: (
        "exec",
        lambda b, op: b.exec(op.namespace, op.name, op.container, op.command, op.io),
    ),
    ops.Attach: ("attach", lambda b, op: b.attach(op.namespace, op.name, op.container, op.io)),
    ops.PortForward: (
        "port_forward",
        lambda b, op: b.port_forward(op.namespace, op.name, op.port, op.stream),
    ),
    ops.GetStats: ("get_stats", lambda b, op: b.get_stats(op.node)),
    ops.Ping: ("ping", lambda b, op: b.ping()),
    ops.GetNodeStatus: ("node_status", lambda b, op: b.node_status(op.node)),
}
"""Op type → (backend method name, how to call it). The terminal adapter is built from this."""


def _accepts_volume_paths(method: Any) -> bool:
    try:
        return "volume_paths" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def dispatch_table(backend: object) -> dict[type[ops.Op], Callable[[Any], Awaitable[Any]]]:
    """Op type → a callable running it on ``backend``, for the ops the backend supports.

    Backends whose ``create_pod``/``update_pod`` take a keyword ``volume_paths`` receive the
    host directories the volumes middleware materialized (``op.volume_paths``).
    """
    table: dict[type[ops.Op], Callable[[Any], Awaitable[Any]]] = {}
    for op_type, (name, call) in DISPATCH.items():
        method = getattr(backend, name, None)
        if not callable(method):
            continue
        if op_type in (ops.CreatePod, ops.UpdatePod) and _accepts_volume_paths(method):
            table[op_type] = _with_volume_paths(method)
        else:
            table[op_type] = _bound(call, backend)
    return table


def _with_volume_paths(method: Any) -> Callable[[Any], Awaitable[Any]]:
    def call(op: Any) -> Awaitable[Any]:
        return method(op.pod, volume_paths=op.volume_paths)  # type: ignore[no-any-return]

    return call


def _bound(call: Dispatch, backend: object) -> Callable[[Any], Awaitable[Any]]:
    def bound(op: Any) -> Awaitable[Any]:
        return call(backend, op)

    return bound


def supported_ops(backend: object) -> frozenset[type[ops.Op]]:
    """The op types ``backend`` can serve (those whose method it has)."""
    return frozenset(dispatch_table(backend))


__all__ = [
    "DISPATCH",
    "CanCreatePods",
    "CanDeletePods",
    "CanListPods",
    "CanReadPodStatus",
    "CanUpdatePods",
    "KnowsPodIPs",
    "PodLifecycle",
    "PodNotifier",
    "SupportsAttach",
    "SupportsExec",
    "SupportsLogs",
    "SupportsNodeStatus",
    "SupportsNotify",
    "SupportsPing",
    "SupportsPortForward",
    "SupportsStats",
    "dispatch_table",
    "supported_ops",
]
