"""Watch-fed caches for the env middlewares, straight on kubernetes_asyncio.

* :class:`WatchedSources` — ConfigMaps and Secrets, a
  :class:`~vkcompose.middlewares.config_sources.SourceReader`;
* :class:`WatchedServices` — Services, a
  :class:`~vkcompose.middlewares.service_links.ServiceReader`.

Each keeps one :class:`WatchCache` per kind: a paginated list, then a watch from the list's
resourceVersion with bookmarks, reading raw JSON (``_preload_content=False``: no model classes).
A dropped connection resumes from the last resourceVersion seen; a ``410 Gone`` (the version
left the server's history) makes it list again. Run them in a task group::

    async with anyio.create_task_group() as tg:
        sources = WatchedSources(api_client)
        await tg.start(sources.run)          # returns once the first lists are in
        pipeline = compose(DownwardAPI(), ResolveConfigSources(sources), backend=...)

Until the first list arrives the readers raise :class:`~vkcompose.errors.TemporaryError`
rather than report a source as missing. Secret contents stay in memory and are never logged.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import orjson
from anyio.abc import TaskStatus

from vkcompose.errors import TemporaryError
from vkcompose.podspec import JSON

log = logging.getLogger(__name__)

ListCall = Callable[..., Awaitable[Any]]
"""A kubernetes_asyncio list method (e.g. ``CoreV1Api.list_config_map_for_all_namespaces``)."""


class WatchError(Exception):
    """A list or watch answered with an error status (``status`` is the HTTP code)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _key(obj: JSON) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


async def _body(resp: Any) -> bytes:
    try:
        raw: bytes = await resp.read()
    finally:
        resp.release()
    if not 200 <= resp.status <= 299:
        message = ""
        try:
            message = str(orjson.loads(raw).get("message", ""))
        except (orjson.JSONDecodeError, AttributeError):
            message = raw[:200].decode(errors="replace")
        raise WatchError(int(resp.status), message)
    return raw


class WatchCache:
    """One collection kept in :attr:`objects` (``(namespace, name)`` → JSON) by list + watch.

    ``list_call`` is a kubernetes_asyncio list method; ``timeout_seconds`` the server-side
    watch timeout (randomised ±20 %); ``page_size`` the list page size.
    """

    def __init__(
        self,
        list_call: ListCall,
        *,
        name: str = "",
        timeout_seconds: int = 300,
        page_size: int = 500,
    ) -> None:
        self._list_call = list_call
        self.name = name or getattr(list_call, "__name__", "watch")
        self.timeout_seconds = timeout_seconds
        self.page_size = page_size
        self.objects: dict[tuple[str, str], JSON] = {}
        self.resource_version: str | None = None
        self.synced = anyio.Event()
        self.lists = 0
        """Complete lists made (1 + relists after ``410 Gone`` or client errors)."""
        self.watches = 0
        """Watch connections opened."""
        self.expirations = 0
        """``410 Gone`` answers (each followed by a fresh list)."""
        self.generation = 0
        """Bumped on every change of :attr:`objects` (lets readers memoize derived data)."""
        self._scope: anyio.CancelScope | None = None

    def drop_watch(self) -> None:
        """Close the current watch connection; the cache resumes from its resourceVersion."""
        if self._scope is not None:
            self._scope.cancel()

    async def _list(self) -> None:
        items: list[JSON] = []
        cont: str | None = None
        rv = ""
        while True:
            kwargs: dict[str, Any] = {"_preload_content": False}
            if self.page_size:
                kwargs["limit"] = self.page_size
            if cont:
                kwargs["_continue"] = cont
            doc = orjson.loads(await _body(await self._list_call(**kwargs)))
            items.extend(doc.get("items") or ())
            meta = doc.get("metadata") or {}
            rv = str(meta.get("resourceVersion") or rv)
            cont = meta.get("continue") or None
            if not cont:
                break
        self.objects = {_key(obj): obj for obj in items}
        self.generation += 1
        self.resource_version = rv
        self.lists += 1
        self.synced.set()

    async def _watch(self) -> None:
        timeout = max(1, int(self.timeout_seconds * random.uniform(0.8, 1.2)))
        self.watches += 1
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                resp = await self._list_call(
                    watch=True,
                    resource_version=self.resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=timeout,
                    _preload_content=False,
                    _request_timeout=aiohttp.ClientTimeout(sock_connect=30, sock_read=timeout + 60),
                )
                try:
                    if not 200 <= resp.status <= 299:
                        await _body(resp)
                    async for line in resp.content:
                        if line.strip():
                            self._apply(orjson.loads(line))
                finally:
                    resp.release()
            finally:
                self._scope = None

    def _apply(self, event: JSON) -> None:
        etype = event.get("type")
        obj: JSON = event.get("object") or {}
        if etype == "ERROR":
            raise WatchError(int(obj.get("code") or 500), str(obj.get("message") or ""))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = str(rv)
        if etype == "DELETED":
            self.objects.pop(_key(obj), None)
            self.generation += 1
        elif etype in ("ADDED", "MODIFIED"):
            self.objects[_key(obj)] = obj
            self.generation += 1

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """List and watch until cancelled; ``task_status.started()`` after the first list."""
        failures = 0
        started = False
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                    if not started:
                        started = True
                        task_status.started()
                await self._watch()
                failures = 0
            except WatchError as exc:
                if exc.status == 410:
                    self.expirations += 1
                    log.info("%s: resourceVersion expired, listing again", self.name)
                    self.resource_version = None
                    continue
                failures += 1
                if 400 <= exc.status < 500 and exc.status != 429:
                    self.resource_version = None
                log.warning("%s: list/watch failed (%s), retrying", self.name, exc.status)
                await anyio.sleep(_backoff(failures))
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                failures += 1
                log.info("%s: watch connection ended (%s), resuming", self.name, type(exc).__name__)
                await anyio.sleep(_backoff(failures))


def _backoff(failures: int) -> float:
    return float(min(10.0, 0.05 * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0))


def _core(api_client: Any) -> Any:
    from kubernetes_asyncio import client

    return client.CoreV1Api(api_client)


def _lister(api: Any, kind: str, namespace: str | None) -> ListCall:
    if namespace is None:
        method: ListCall = getattr(api, f"list_{kind}_for_all_namespaces")
        return method
    namespaced = getattr(api, f"list_namespaced_{kind}")

    async def call(**kwargs: Any) -> Any:
        return await namespaced(namespace, **kwargs)

    return call


async def _run_all(caches: list[WatchCache], task_status: TaskStatus[None]) -> None:
    async with anyio.create_task_group() as tg:
        for cache in caches:
            await tg.start(cache.run)
        task_status.started()


class WatchedSources:
    """ConfigMaps and Secrets of the cluster (or of one ``namespace``), kept by watches.

    ``api_client`` is a ``kubernetes_asyncio.client.ApiClient``. ``secrets=False`` watches
    ConfigMaps only (then every Secret reads as missing).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        namespace: str | None = None,
        secrets: bool = True,
        timeout_seconds: int = 300,
    ) -> None:
        api = _core(api_client)
        self.configmaps = WatchCache(
            _lister(api, "config_map", namespace),
            name="configmaps",
            timeout_seconds=timeout_seconds,
        )
        self.secrets: WatchCache | None = (
            WatchCache(
                _lister(api, "secret", namespace), name="secrets", timeout_seconds=timeout_seconds
            )
            if secrets
            else None
        )

    def _caches(self) -> list[WatchCache]:
        return [self.configmaps] + ([self.secrets] if self.secrets is not None else [])

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch until cancelled; ``task_status.started()`` once every kind is listed."""
        await _run_all(self._caches(), task_status)

    @staticmethod
    def _read(cache: WatchCache, namespace: str, name: str) -> JSON | None:
        if not cache.synced.is_set():
            raise TemporaryError(f"{cache.name} are not listed yet", delay=1.0)
        return cache.objects.get((namespace, name))

    def get_configmap(self, namespace: str, name: str) -> JSON | None:
        """The ConfigMap, or ``None``."""
        return self._read(self.configmaps, namespace, name)

    def get_secret(self, namespace: str, name: str) -> JSON | None:
        """The Secret (``data`` base64 as the API sends it), or ``None``."""
        if self.secrets is None:
            return None
        return self._read(self.secrets, namespace, name)

    def __repr__(self) -> str:
        counts = ", ".join(f"{c.name}={len(c.objects)}" for c in self._caches())
        return f"WatchedSources({counts})"


class WatchedServices:
    """The cluster's Services kept by a watch (a ``ServiceReader``)."""

    def __init__(self, api_client: Any, *, timeout_seconds: int = 300) -> None:
        self.cache = WatchCache(
            _lister(_core(api_client), "service", None),
            name="services",
            timeout_seconds=timeout_seconds,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch until cancelled; ``task_status.started()`` once listed."""
        await _run_all([self.cache], task_status)

    @property
    def generation(self) -> int:
        """Changes whenever a Service changes (``ServiceLinks`` memoizes on it)."""
        return self.cache.generation

    def list_services(self, namespace: str) -> list[JSON]:
        """The Services of ``namespace`` (raises TemporaryError before the first list)."""
        if not self.cache.synced.is_set():
            raise TemporaryError("services are not listed yet", delay=1.0)
        return [obj for (ns, _), obj in self.cache.objects.items() if ns == namespace]


__all__ = ["WatchCache", "WatchError", "WatchedServices", "WatchedSources"]
