"""The load generator: raw HTTP pod creates/deletes and a watch that timestamps pod states.

:class:`LoadClient` sends raw requests with a kubernetes_asyncio ``ApiClient``'s settings (its
TLS, auth and configuration; no model classes) through :class:`~vkcompose.node.kube.Kube`, with
its own ``User-Agent`` so the server-side request counter can tell the load from the node.
:class:`PodTracker` takes the events of one watch and records, per pod name, when its create
was sent, when it was first seen ``Running``, when its delete was sent and when it was gone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import anyio
import orjson

from vkcompose.bench.pods import LABEL, NAMESPACE
from vkcompose.bench.requests import LOAD_USER_AGENT
from vkcompose.node.kube import JSON_CT, Kube

__all__ = ["LoadClient", "LoadError", "PodTracker", "watch_pods"]

STRATEGIC_PATCH = "application/strategic-merge-patch+json"

Clock = Callable[[], float]


class LoadError(Exception):
    """The API server refused a request of the load generator."""


class LoadClient:
    """Raw JSON requests with the load generator's ``User-Agent``, over a :class:`Kube` made on
    a kubernetes_asyncio client (the client is not closed here; :meth:`close` closes the rest).
    """

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self.kube = Kube(api_client, user_agent=LOAD_USER_AGENT)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON_CT,
        timeout_seconds: float = 60.0,
    ) -> tuple[int, bytes]:
        """Send one request; ``(status, body)`` whatever the status."""
        return await self.kube.request_raw(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            timeout_seconds=timeout_seconds,
        )

    async def ensure(self, plural: str, obj: Mapping[str, Any]) -> None:
        """Create ``obj`` (namespaced by its metadata) unless it exists."""
        namespace = (obj.get("metadata") or {}).get("namespace")
        prefix = f"/api/v1/namespaces/{namespace}" if namespace else "/api/v1"
        status, body = await self.request("POST", f"{prefix}/{plural}", body=obj)
        if status not in (200, 201, 409):
            raise LoadError(f"creating {plural} failed: HTTP {status} {_reason(body)}")

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, query: Mapping[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A streaming GET (a watch); no total timeout, 5 min of silence at most."""
        async with self.kube.stream(path, query, read_timeout=300) as response:
            yield response

    async def close(self) -> None:
        """Close the connections this client opened (the kubernetes_asyncio client stays)."""
        await self.kube.close()


def _reason(body: bytes) -> str:
    try:
        return str(orjson.loads(body).get("message", ""))[:200]
    except (orjson.JSONDecodeError, AttributeError):
        return body[:200].decode(errors="replace")


class PodTracker:
    """Timestamps of each benchmark pod's life, fed by a watch (times from ``clock``)."""

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self.clock = clock
        self.created: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.delete_sent: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        """Pods that ended (or could not be created) without running: name -> why."""
        self._awaiting_running: set[str] = set()
        self._awaiting_gone: set[str] = set()
        self._changed = anyio.Event()

    # -- what the load generator does ---------------------------------------------------------
    def create_sent(self, name: str) -> None:
        """The create of ``name`` is about to be sent."""
        self.created[name] = self.clock()
        if name not in self.running:
            self._awaiting_running.add(name)

    def create_failed(self, name: str, why: str) -> None:
        """The API server refused the create of ``name``."""
        self.failed[name] = why
        self._awaiting_running.discard(name)
        self._touch()

    def delete_about_to_send(self, name: str) -> None:
        """The delete of ``name`` is about to be sent."""
        self.delete_sent[name] = self.clock()
        if name not in self.gone:
            self._awaiting_gone.add(name)

    def delete_failed(self, name: str, why: str) -> None:
        """The delete of ``name`` failed or was refused (a 404 included): it is not counted gone."""
        self.failed[name] = why
        self._awaiting_gone.discard(name)
        self._touch()

    # -- what the watch sees ------------------------------------------------------------------
    def on_event(self, kind: str, pod: Mapping[str, Any]) -> None:
        """One watch event (``ADDED``/``MODIFIED``/``DELETED``) or a listed pod (``ADDED``)."""
        name = str((pod.get("metadata") or {}).get("name", ""))
        if kind == "DELETED":
            if name not in self.gone and name in self.delete_sent:
                self.gone[name] = self.clock()
            self._awaiting_gone.discard(name)
            self._awaiting_running.discard(name)
            self._touch()
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Running" and name not in self.running and name in self.created:
            self.running[name] = self.clock()
            self._awaiting_running.discard(name)
            self._touch()
        elif phase in ("Failed", "Succeeded") and name in self._awaiting_running:
            self.failed[name] = f"ended {phase} before running"
            self._awaiting_running.discard(name)
            self._touch()

    def _touch(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- waiting ------------------------------------------------------------------------------
    @property
    def awaiting_running(self) -> int:
        """Pods created but not yet seen Running (nor failed)."""
        return len(self._awaiting_running)

    @property
    def awaiting_gone(self) -> int:
        """Pods whose delete was sent but that were not yet seen gone."""
        return len(self._awaiting_gone)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds (checked after each change)."""
        while not condition():
            await self._changed.wait()

    # -- results ------------------------------------------------------------------------------
    def create_to_running(self) -> list[float]:
        """Create→Running latencies (seconds) of every pod seen Running."""
        return [t - self.created[n] for n, t in self.running.items() if n in self.created]

    def delete_to_gone(self) -> list[float]:
        """Delete→gone latencies (seconds) of every deleted pod seen gone."""
        return [t - self.delete_sent[n] for n, t in self.gone.items() if n in self.delete_sent]


async def watch_pods(
    client: LoadClient,
    tracker: PodTracker,
    run: str,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """List then watch the benchmark's pods of ``run`` into ``tracker`` until cancelled.

    Resumes from the last resourceVersion when the stream ends; relists on 410 Gone (a relist
    marks every pod missing from it as gone).
    """
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"
    selector = f"{LABEL}={run}"
    started = False
    while True:
        status, body = await client.request("GET", path, query={"labelSelector": selector})
        if status != 200:
            raise LoadError(f"listing pods failed: HTTP {status} {_reason(body)}")
        listed = orjson.loads(body)
        present = set()
        for pod in listed.get("items") or ():
            present.add(pod["metadata"]["name"])
            tracker.on_event("ADDED", pod)
        for name in list(tracker.delete_sent):
            if name not in present and name not in tracker.gone:
                tracker.on_event("DELETED", {"metadata": {"name": name}})
        rv = str(listed["metadata"].get("resourceVersion", ""))
        if not started:
            started = True
            task_status.started()
        while rv:  # a stream that ends normally is resumed; "" asks for a relist
            rv = await _watch_from(client, tracker, path, selector, rv)


async def _watch_from(
    client: LoadClient, tracker: PodTracker, path: str, selector: str, rv: str
) -> str:
    """Watch from ``rv``; return the last resourceVersion, or ``""`` when a relist is needed."""
    query = {
        "watch": "1",
        "labelSelector": selector,
        "resourceVersion": rv,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "1800",
    }
    async with client.stream(path, query) as response:
        if response.status == 410:
            return ""
        if response.status != 200:
            raise LoadError(f"watching pods failed: HTTP {response.status}")
        async for line in response.content:
            if not line.strip():
                continue
            event = orjson.loads(line)
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    return ""
                raise LoadError(f"watch error: {obj.get('message', '')}")
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
            if kind != "BOOKMARK":
                tracker.on_event(str(kind), obj)
    return rv
