"""Cluster-bound helpers a recipe can hand to middlewares before any connection exists.

A recipe builds its middlewares first; the connection to the API server comes later, when
:func:`~vkcompose.node.runtime.run_virtual_node` starts. Objects deriving from
:class:`ClusterBound` bridge the gap: the runtime finds them among the middlewares'
attributes and runs them with the shared connection before any pod is handled.

* :class:`ClusterServices` — a watch-fed ``ServiceReader`` for the service-links middleware;
* :class:`ClusterTokens` — a ``TokenSource`` issuing pod-bound tokens via TokenRequest, for the
  volumes middleware's projected ``serviceAccountToken`` sources;
* :class:`~vkcompose.node.sources.ClusterSources` — ConfigMaps and Secrets.

>>> services = ClusterServices()
>>> services.list_services("default")
[]
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson

from vkcompose.errors import TemporaryError
from vkcompose.middlewares.volumes.tokens import token_request
from vkcompose.node.informer import Informer
from vkcompose.node.kube import Kube, KubeError, path_of
from vkcompose.podspec import JSON, Pod

__all__ = ["ClusterBound", "ClusterServices", "ClusterTokens"]


class ClusterBound:
    """Something that needs the cluster connection; the runtime calls :meth:`run` once."""

    async def run(self, kube: Kube, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Use ``kube`` until cancelled; call ``task_status.started()`` once usable."""
        task_status.started()


class ClusterServices(ClusterBound):
    """Services of every namespace, kept current by one watch (a ``ServiceReader``)."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, dict[str, JSON]] = {}
        self.generation = 0
        """Bumped on every change (lets the service-links middleware reuse its results)."""
        self.synced = anyio.Event()

    def list_services(self, namespace: str) -> list[JSON]:
        """The Services of ``namespace``."""
        return list(self._by_namespace.get(namespace, {}).values())

    def _on_list(self, items: list[JSON]) -> None:
        self._by_namespace = {}
        for obj in items:
            self._put(obj)
        self.generation += 1

    def _put(self, obj: JSON) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        self._by_namespace.setdefault(namespace, {})[meta.get("name") or ""] = obj

    def _on_event(self, etype: str, obj: JSON) -> None:
        if etype == "DELETED":
            meta = obj.get("metadata") or {}
            self._by_namespace.get(meta.get("namespace") or "default", {}).pop(
                meta.get("name") or "", None
            )
        else:
            self._put(obj)
        self.generation += 1

    async def run(self, kube: Kube, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch Services until cancelled; started once the first list arrived."""
        informer = Informer(
            kube, path_of("services"), on_list=self._on_list, on_event=self._on_event,
            name="services",
        )  # fmt: skip
        async with anyio.create_task_group() as tg:
            tg.start_soon(informer.run)
            await informer.synced.wait()
            self.synced.set()
            task_status.started()


class ClusterTokens(ClusterBound):
    """Pod-bound service-account tokens from the TokenRequest API (a ``TokenSource``).

    Until the runtime has connected, :meth:`token` raises :class:`TemporaryError` (the pod
    waits and is retried), never an empty token.
    """

    def __init__(self) -> None:
        self._kube: Kube | None = None

    async def run(self, kube: Kube, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Remember the connection; nothing to watch."""
        self._kube = kube
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            self._kube = None

    async def token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        expiration_seconds: int,
        pod: Pod,
        /,
    ) -> str:
        """Request a token bound to ``pod`` (as the kubelet does)."""
        if self._kube is None:
            raise TemporaryError("failed to fetch token: not connected to the API server yet",
                                 reason="FailedMount")  # fmt: skip
        body = token_request(pod, audience, expiration_seconds)
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        try:
            answer = await self._kube.create(path, body)
        except KubeError as error:
            raise TemporaryError(f"failed to fetch token: {error}", reason="FailedMount") from None
        if isinstance(answer, bytes):
            answer = orjson.loads(answer)
        token = ((answer or {}).get("status") or {}).get("token")
        if not token:
            raise TemporaryError("failed to fetch token: empty TokenRequest status",
                                 reason="FailedMount")  # fmt: skip
        return str(token)
