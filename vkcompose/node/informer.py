"""List + watch of one collection, resumable and loss-free.

:class:`Informer` lists the collection (paginated), hands the full list to ``on_list`` (the
consumer diffs it against what it knows, so a relist never loses nor duplicates anything), then
watches from the list's resourceVersion with bookmarks. A dropped connection resumes from the
last resourceVersion seen (events or bookmarks); a 410 Gone — the version fell out of the
server's history — triggers a fresh list. Errors are logged and retried with backoff; the loop
only ends when cancelled.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import orjson

from vkcompose.node.kube import Kube, KubeError

log = logging.getLogger(__name__)

__all__ = ["Informer"]

OnList = Callable[[list[dict[str, Any]]], None]
OnEvent = Callable[[str, dict[str, Any]], None]
Decode = Callable[[bytes], Any]


class Informer:
    """Keeps a consumer in sync with a collection (see the module docstring).

    ``timeout_seconds`` is the server-side watch timeout (randomised ±20 % so many watches do
    not reconnect together); ``page_size`` the list page size (0, the default: one list with
    ``resourceVersion=0`` as client-go's reflector does, which a server may serve from its
    cache; paginated lists cost servers that scan per page quadratic time). ``decode`` turns
    a watch line into an event (``orjson.loads`` unless given).
    """

    def __init__(
        self,
        kube: Kube,
        path: str,
        *,
        on_list: OnList,
        on_event: OnEvent,
        field_selector: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
        page_size: int = 0,
        name: str = "",
        decode: Decode = orjson.loads,
    ) -> None:
        self._kube = kube
        self._path = path
        self._on_list = on_list
        self._on_event = on_event
        self._selectors: list[tuple[str, str]] = []
        if field_selector:
            self._selectors.append(("fieldSelector", field_selector))
        if label_selector:
            self._selectors.append(("labelSelector", label_selector))
        self._timeout = timeout_seconds
        self._page_size = page_size
        self.name = name or path
        self._decode = decode
        self.resource_version: str | None = None
        self.synced = anyio.Event()
        """Set after the first complete list was handed to ``on_list``."""
        self.lists = 0
        """How many full lists were made (1 + relists after 410 or errors)."""
        self.watches = 0
        """How many watch connections were opened."""
        self._scope: anyio.CancelScope | None = None

    def drop_watch(self) -> None:
        """Close the current watch connection (it resumes from the last resourceVersion)."""
        if self._scope is not None:
            self._scope.cancel()

    async def _list(self) -> None:
        items: list[dict[str, Any]] = []
        cont: str | None = None
        rv = ""
        while True:
            query = list(self._selectors)
            if self._page_size:
                query.append(("limit", str(self._page_size)))
            else:
                # as client-go's reflector: resourceVersion=0 lets a server answer from its
                # watch cache, in one page
                query.append(("resourceVersion", "0"))
            if cont:
                query.append(("continue", cont))
            doc = await self._kube.get(self._path, query=query)
            items.extend(doc.get("items") or [])
            meta = doc.get("metadata") or {}
            rv = meta.get("resourceVersion") or rv
            cont = meta.get("continue")
            if not cont:
                break
        self._on_list(items)
        self.resource_version = rv
        self.lists += 1
        self.synced.set()

    async def _watch(self) -> None:
        assert self.resource_version is not None
        timeout = max(1, int(self._timeout * random.uniform(0.8, 1.2)))
        query = [
            *self._selectors,
            ("resourceVersion", self.resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout)),
        ]
        self.watches += 1
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                async with self._kube.watch(
                    self._path, query, read_timeout=timeout + 60, decode=self._decode
                ) as events:
                    async for event in events:
                        etype = event.get("type")
                        obj = event.get("object") or {}
                        if etype == "ERROR":
                            code = int(obj.get("code") or 500)
                            reason = str(obj.get("reason", ""))
                            raise KubeError(code, reason, str(obj.get("message", "")))
                        rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if rv:
                            self.resource_version = rv
                        if etype in ("ADDED", "MODIFIED", "DELETED"):
                            self._on_event(etype, obj)
            finally:
                self._scope = None

    async def run(self) -> None:
        """List and watch until cancelled."""
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    await self._list()
                await self._watch()
                failures = 0
            except KubeError as exc:
                if exc.gone:
                    log.info("%s: resourceVersion expired, relisting", self.name)
                    self.resource_version = None
                    continue
                failures += 1
                log.warning("%s: watch failed (%s), retrying", self.name, exc)
                if exc.status >= 400 and exc.status != 429 and exc.status < 500:
                    self.resource_version = None
                await anyio.sleep(_backoff(failures))
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                failures += 1
                log.info("%s: watch connection ended (%s), resuming", self.name, exc)
                await anyio.sleep(_backoff(failures))


def _backoff(failures: int) -> float:
    return float(min(10.0, 0.05 * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0))
