"""Operations: the frozen values that flow through a pipeline.

Every operation is an immutable attrs class with two class-level facts:

* ``kind`` — a dotted name used as the span name, metric label and log field;
* ``idempotent`` — whether repeating the operation is safe (the retry middleware reads it).

Middlewares never mutate an op; they return a changed copy with :func:`attrs.evolve`::

    >>> op = CreatePod(pod={"metadata": {"name": "web", "namespace": "default"}})
    >>> op.kind, op.idempotent, op.pod_key
    ('pod.create', False, ('default', 'web'))
    >>> attrs.evolve(op, pod={"metadata": {"name": "api"}}).pod_key
    ('', 'api')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import attrs
from anyio.abc import ByteReceiveStream, ByteSendStream, ByteStream, ObjectReceiveStream

from vkcompose.podspec import JSON, Pod


@attrs.frozen(slots=True)
class NodeInfo:
    """What a middleware may need to know about the node a pod runs on.

    ``host_ips`` are the node's InternalIP addresses (first is primary); ``allocatable`` is the
    node's allocatable resources (Kubernetes quantity strings), the default for a container's
    missing limits in ``resourceFieldRef``; ``host_network`` says that pods share the node's
    network namespace (their pod IPs are the host IPs).
    """

    name: str
    host_ips: tuple[str, ...] = ()
    allocatable: Mapping[str, str] = attrs.field(factory=dict)
    labels: Mapping[str, str] = attrs.field(factory=dict)
    host_network: bool = False


@attrs.frozen(slots=True)
class TerminalSize:
    """A TTY resize request (as the resize channel of exec/attach sends it)."""

    width: int
    height: int


@attrs.frozen(slots=True)
class ExecIO:
    """The streams of an exec or attach session. ``None`` means the client did not ask for it."""

    stdin: ByteReceiveStream | None = None
    stdout: ByteSendStream | None = None
    stderr: ByteSendStream | None = None
    tty: bool = False
    resize: ObjectReceiveStream[TerminalSize] | None = None


@attrs.frozen(slots=True)
class LogOptions:
    """Options of a container log read, as the kubelet's ``containerLogs`` endpoint takes them."""

    tail_lines: int | None = None
    limit_bytes: int | None = None
    timestamps: bool = False
    follow: bool = False
    previous: bool = False
    since_seconds: int | None = None
    since_time: datetime | None = None


def _pod_key(pod: Pod) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


@attrs.frozen(slots=True)
class Op:
    """Base of all operations."""

    kind: ClassVar[str] = "op"
    idempotent: ClassVar[bool] = True

    @property
    def pod_key(self) -> tuple[str, str] | None:
        """``(namespace, name)`` of the pod this op concerns, if any."""
        return None

    @property
    def pod_or_none(self) -> Pod | None:
        """The full pod JSON when the op carries one."""
        return None


@attrs.frozen(slots=True)
class _PodOp(Op):
    pod: Pod
    node: NodeInfo | None = attrs.field(default=None, kw_only=True)
    volume_paths: Mapping[str, str] = attrs.field(factory=dict, kw_only=True)
    """Volume name → host directory holding its materialized content (set by the volumes
    middleware; backends mount these at each volumeMount's ``mountPath``)."""

    @property
    def pod_key(self) -> tuple[str, str]:
        return _pod_key(self.pod)

    @property
    def pod_or_none(self) -> Pod:
        return self.pod


@attrs.frozen(slots=True)
class CreatePod(_PodOp):
    """Start running a pod. Returns ``None``."""

    kind: ClassVar[str] = "pod.create"
    idempotent: ClassVar[bool] = False


@attrs.frozen(slots=True)
class UpdatePod(_PodOp):
    """Apply a change of a pod's mutable fields (images, activeDeadlineSeconds …)."""

    kind: ClassVar[str] = "pod.update"
    idempotent: ClassVar[bool] = True


@attrs.frozen(slots=True)
class DeletePod(_PodOp):
    """Stop a pod: SIGTERM, wait up to ``grace_period_seconds``, then kill. Returns ``None``."""

    kind: ClassVar[str] = "pod.delete"
    idempotent: ClassVar[bool] = True
    grace_period_seconds: int | None = attrs.field(default=None, kw_only=True)


@attrs.frozen(slots=True)
class AllocatePodIPs(_PodOp):
    """Ask the backend which IPs the pod has (or will have). Returns ``list[str]``.

    The downward API issues it down the rest of the pipeline to resolve ``status.podIP``
    before the pod starts.
    """

    kind: ClassVar[str] = "pod.ips"
    idempotent: ClassVar[bool] = True


@attrs.frozen(slots=True)
class _PodRefOp(Op):
    namespace: str
    name: str

    @property
    def pod_key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@attrs.frozen(slots=True)
class GetPodStatus(_PodRefOp):
    """Read a pod's current status. Returns the pod JSON with an up-to-date ``status``."""

    kind: ClassVar[str] = "pod.status"
    idempotent: ClassVar[bool] = True


@attrs.frozen(slots=True)
class ReadLogs(_PodRefOp):
    """Read a container's log. Returns an ``AsyncIterator[bytes]``."""

    kind: ClassVar[str] = "pod.logs"
    idempotent: ClassVar[bool] = True
    container: str = ""
    options: LogOptions = attrs.field(factory=LogOptions)


@attrs.frozen(slots=True)
class Exec(_PodRefOp):
    """Run ``command`` in a container. Returns the exit code (``int``)."""

    kind: ClassVar[str] = "pod.exec"
    idempotent: ClassVar[bool] = False
    container: str = ""
    command: Sequence[str] = ()
    io: ExecIO = attrs.field(factory=ExecIO)


@attrs.frozen(slots=True)
class Attach(_PodRefOp):
    """Attach to a container's main process. Returns when the session ends (exit code or 0)."""

    kind: ClassVar[str] = "pod.attach"
    idempotent: ClassVar[bool] = False
    container: str = ""
    io: ExecIO = attrs.field(factory=ExecIO)


@attrs.frozen(slots=True)
class PortForward(_PodRefOp):
    """Relay ``stream`` to ``port`` inside the pod until either side closes. Returns ``None``."""

    kind: ClassVar[str] = "pod.portforward"
    idempotent: ClassVar[bool] = False
    port: int = 0
    stream: ByteStream | None = None


@attrs.frozen(slots=True)
class ListPods(Op):
    """List the pods the backend runs. Returns ``list[Pod]`` (with statuses)."""

    kind: ClassVar[str] = "pods.list"
    idempotent: ClassVar[bool] = True


@attrs.frozen(slots=True)
class GetStats(Op):
    """Return a kubelet Summary API document (``dict``) for ``node``."""

    kind: ClassVar[str] = "node.stats"
    idempotent: ClassVar[bool] = True
    node: NodeInfo | None = None


@attrs.frozen(slots=True)
class Ping(Op):
    """Check the backend is healthy. Returns ``None``; raises when it is not."""

    kind: ClassVar[str] = "node.ping"
    idempotent: ClassVar[bool] = True


@attrs.frozen(slots=True)
class GetNodeStatus(Op):
    """Ask the backend for node conditions/capacity it knows. Returns a partial NodeStatus."""

    kind: ClassVar[str] = "node.status"
    idempotent: ClassVar[bool] = True
    node: NodeInfo | None = None


ALL_OPS: tuple[type[Op], ...] = (
    CreatePod,
    UpdatePod,
    DeletePod,
    AllocatePodIPs,
    GetPodStatus,
    ListPods,
    ReadLogs,
    Exec,
    Attach,
    PortForward,
    GetStats,
    Ping,
    GetNodeStatus,
)
"""Every operation type vkcompose defines."""

Result = Any
"""What a handler returns; its type depends on the op (see each op's docstring)."""

__all__ = [
    "ALL_OPS",
    "JSON",
    "AllocatePodIPs",
    "Attach",
    "CreatePod",
    "DeletePod",
    "Exec",
    "ExecIO",
    "GetNodeStatus",
    "GetPodStatus",
    "GetStats",
    "ListPods",
    "LogOptions",
    "NodeInfo",
    "Op",
    "Ping",
    "Pod",
    "PortForward",
    "ReadLogs",
    "Result",
    "TerminalSize",
    "UpdatePod",
]
