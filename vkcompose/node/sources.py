"""A live, watch-fed cache of ConfigMaps and Secrets for the config-source middlewares.

:class:`ClusterSources` implements the synchronous ``SourceReader`` protocol of
:mod:`vkcompose.middlewares.config_sources` (``get_configmap``/``get_secret``). A recipe creates
it without a connection and hands it to ``ResolveConfigSources``/``Volumes``;
:func:`~vkcompose.node.runtime.run_virtual_node` finds it on the middlewares (attribute
``sources``) and keeps it in sync with the cluster before any pod is created. Changes of a source
queue no work by themselves: pods waiting on a missing ConfigMap retry with backoff.

Secret contents stay in memory only; nothing here logs them.
"""

from __future__ import annotations

from typing import Any

import anyio

from vkcompose.node.cluster import ClusterBound
from vkcompose.node.informer import Informer
from vkcompose.node.kube import Kube, path_of
from vkcompose.node.plan import key_of
from vkcompose.podspec import JSON

__all__ = ["ClusterSources"]

_Key = tuple[str, str]


class ClusterSources(ClusterBound):
    """ConfigMaps and Secrets of the cluster, kept current by two watches."""

    def __init__(self, *, secrets: bool = True) -> None:
        self._configmaps: dict[_Key, JSON] = {}
        self._secrets: dict[_Key, JSON] = {}
        self._watch_secrets = secrets
        self.synced = anyio.Event()

    def get_configmap(self, namespace: str, name: str) -> JSON | None:
        """The ConfigMap, or ``None``."""
        return self._configmaps.get((namespace, name))

    def get_secret(self, namespace: str, name: str) -> JSON | None:
        """The Secret (``data`` base64 as the API sends it), or ``None``."""
        return self._secrets.get((namespace, name))

    @staticmethod
    def _handlers(table: dict[_Key, JSON]) -> tuple[Any, Any]:
        def on_list(items: list[JSON]) -> None:
            table.clear()
            for obj in items:
                table[key_of(obj)] = obj

        def on_event(etype: str, obj: JSON) -> None:
            if etype == "DELETED":
                table.pop(key_of(obj), None)
            else:
                table[key_of(obj)] = obj

        return on_list, on_event

    async def run(self, kube: Kube, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch until cancelled; ``task_status.started()`` once both caches are listed."""
        cm_list, cm_event = self._handlers(self._configmaps)
        informers = [
            Informer(
                kube, path_of("configmaps"), on_list=cm_list, on_event=cm_event, name="configmaps"
            )
        ]
        if self._watch_secrets:
            s_list, s_event = self._handlers(self._secrets)
            informers.append(
                Informer(kube, path_of("secrets"), on_list=s_list, on_event=s_event, name="secrets")
            )
        async with anyio.create_task_group() as tg:
            for informer in informers:
                tg.start_soon(informer.run)
            for informer in informers:
                await informer.synced.wait()
            self.synced.set()
            task_status.started()
