"""Run a virtual node (or a fleet) against an API server until stopped.

>>> import inspect
>>> list(inspect.signature(run_virtual_node).parameters)  # doctest: +NORMALIZE_WHITESPACE
['node', 'api_client', 'kube', 'kubeconfig', 'stop', 'kubelet', 'task_status']

:func:`run_virtual_node` is what ``vkcompose run`` / ``vkcompose up`` call. It registers the
node(s), keeps their status and Leases fresh, runs the pod controller, and (through the
``kubelet`` hook) serves the kubelet HTTP API. Cancelling it — or setting ``stop`` — stops
everything and leaves pods as a stopped kubelet leaves them: running in the backend, with their
API objects untouched; a restart adopts them without creating anything twice.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import anyio
import attrs
from kubernetes_asyncio.client import ApiClient

from vkcompose.node.cluster import ClusterBound
from vkcompose.node.events import EventRecorder, LateEventSink
from vkcompose.node.heartbeat import NodeController
from vkcompose.node.kube import Kube, connect
from vkcompose.node.pods import PodController
from vkcompose.node.settings import VirtualNode
from vkcompose.node.sources import ClusterSources
from vkcompose.pipeline import Pipeline

log = logging.getLogger(__name__)

__all__ = ["KubeletHook", "NodeRuntime", "run_virtual_node", "virtual_node"]


@attrs.define
class NodeRuntime:
    """The live parts of a running virtual node (what the kubelet API and a TUI need)."""

    node: VirtualNode
    kube: Kube
    pipeline: Pipeline
    events: EventRecorder
    nodes: NodeController
    pods: PodController

    @classmethod
    def build(cls, node: VirtualNode, kube: Kube) -> NodeRuntime:
        """Assemble controllers for ``node`` on a shared connection ``kube``."""
        pipeline = node.pipeline
        names = node.node_names()
        events = EventRecorder(
            kube, default_host=names[0], qps=node.event_qps, burst=node.event_burst
        )
        for middleware in pipeline.middlewares:
            sink = getattr(middleware, "events", None)
            if isinstance(sink, LateEventSink):
                sink.bind(events)
        return cls(
            node=node,
            kube=kube,
            pipeline=pipeline,
            events=events,
            nodes=NodeController(node, kube, pipeline=pipeline, events=events, node_names=names),
            pods=PodController(node, kube, pipeline=pipeline, events=events, node_names=names),
        )

    def cluster_bound(self) -> list[ClusterBound]:
        """The :class:`ClusterBound` helpers the middlewares hold (started with the node).

        They are found among each middleware's attributes (``sources``, ``services``,
        ``tokens`` …), so a recipe only has to hand them to the middlewares.
        """
        found: list[ClusterBound] = []
        for middleware in self.pipeline.middlewares:
            for value in _attributes(middleware):
                if isinstance(value, ClusterBound) and value not in found:
                    found.append(value)
        return found

    def cluster_sources(self) -> list[ClusterSources]:
        """The :class:`ClusterSources` caches among :meth:`cluster_bound`."""
        return [b for b in self.cluster_bound() if isinstance(b, ClusterSources)]

    async def run(
        self,
        *,
        kubelet: KubeletHook | None = None,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled; ``task_status.started()`` once nodes and pods are in sync."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.events.run)
            for bound in self.cluster_bound():
                await tg.start(functools.partial(bound.run, self.kube))
            await tg.start(self.nodes.run)
            if kubelet is not None:
                tg.start_soon(kubelet, self)
            await tg.start(self.pods.run)
            log.info(
                "virtual node %s running (%d node%s)",
                self.node.name,
                len(self.nodes.node_names),
                "" if len(self.nodes.node_names) == 1 else "s",
            )
            task_status.started()


def _attributes(obj: object, depth: int = 3) -> list[object]:
    """Attribute values of ``obj`` and, ``depth`` levels down, of those values."""
    try:
        values = list(vars(obj).values())
    except TypeError:  # slotted or builtin objects
        names = getattr(type(obj), "__slots__", ())
        values = [getattr(obj, n, None) for n in names]
    if depth > 1:
        for value in list(values):
            if not isinstance(value, str | bytes | int | float | dict | list | tuple | set):
                values.extend(_attributes(value, depth - 1))
    return values


KubeletHook = Callable[[NodeRuntime], Coroutine[Any, Any, None]]
"""Serves the kubelet HTTP API for a running node until cancelled (logs, exec, stats …)."""


@contextlib.asynccontextmanager
async def _kube_for(
    api_client: ApiClient | None,
    kube: Kube | None,
    kubeconfig: str | os.PathLike[str] | None,
    pool_size: int,
) -> AsyncIterator[Kube]:
    if kube is not None:
        yield kube
        return
    if api_client is not None:
        wrapper = Kube(api_client)
        try:
            yield wrapper
        finally:
            await wrapper.close()  # its own session only; the client stays open
        return
    owned = await connect(kubeconfig, pool_size=pool_size)
    try:
        yield owned
    finally:
        await owned.close()


async def run_virtual_node(
    node: VirtualNode,
    *,
    api_client: ApiClient | None = None,
    kube: Kube | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
    stop: anyio.Event | None = None,
    kubelet: KubeletHook | None = None,
    task_status: anyio.abc.TaskStatus[NodeRuntime] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the virtual node(s) of ``node`` until cancelled or ``stop`` is set.

    Connection: ``kube`` (shared :class:`Kube`), else ``api_client`` (a kubernetes_asyncio
    client, not closed here), else ``kubeconfig`` / ``$KUBECONFIG`` / ``~/.kube/config`` /
    in-cluster. ``kubelet`` is started with the :class:`NodeRuntime` once the nodes are
    registered. With ``task_status`` (``await tg.start(run_virtual_node, node, ...)``) the
    caller gets the runtime once pods are reconciled.
    """
    # request/response calls share 64 connections; each pod watch holds one more
    watches = len(node.node_names()) if node.effective_watch_mode() == "node" else 1
    pool = 64 + watches
    async with _kube_for(api_client, kube, kubeconfig, pool) as k:
        runtime = NodeRuntime.build(node, k)
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(functools.partial(runtime.run, kubelet=kubelet))
                task_status.started(runtime)
                if stop is not None:
                    await stop.wait()
                    tg.cancel_scope.cancel()
        finally:
            await _detach_backend(node.backend)


async def _detach_backend(backend: object) -> None:
    """Let the backend drop its background tasks; pods keep running (a stopped kubelet's
    pods do), so a restarted runtime adopts them."""
    close = getattr(backend, "aclose", None)
    if close is None:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(10):
        try:
            await close()
        except Exception as error:  # shutting down: report, don't mask the real exit
            log.warning("closing backend %s failed: %s", type(backend).__name__, error)


@contextlib.asynccontextmanager
async def virtual_node(
    node: VirtualNode,
    *,
    api_client: ApiClient | None = None,
    kube: Kube | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
    kubelet: KubeletHook | None = None,
) -> AsyncIterator[NodeRuntime]:
    """Context manager form: yields the running :class:`NodeRuntime`, stops it on exit."""
    async with anyio.create_task_group() as tg:
        runtime: NodeRuntime = await tg.start(
            lambda task_status: run_virtual_node(
                node,
                api_client=api_client,
                kube=kube,
                kubeconfig=kubeconfig,
                kubelet=kubelet,
                task_status=task_status,
            )
        )
        try:
            yield runtime
        finally:
            tg.cancel_scope.cancel()
