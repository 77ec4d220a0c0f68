"""Fixtures for node-runtime tests: a simulated backend, a shared API connection, helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from vkcompose.apiserver import APIServer
from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.kube import Kube, connect, path_of


@pytest.fixture
async def backend() -> AsyncIterator[MemoryBackend]:
    """A zero-delay simulated backend."""
    async with MemoryBackend() as b:
        yield b


@pytest.fixture
async def kube(apiserver: APIServer) -> AsyncIterator[Kube]:
    """A :class:`Kube` connected through the server's kubeconfig file."""
    k = await connect(apiserver.kubeconfig_path)
    try:
        yield k
    finally:
        await k.close()


def make_pod(
    name: str,
    node: str = "vk-test",
    *,
    namespace: str = "default",
    image: str = "busybox:1",
    annotations: dict[str, str] | None = None,
    restart_policy: str = "Always",
    grace: int | None = None,
    containers: int = 1,
    **spec: Any,
) -> dict[str, Any]:
    """A pod bound to ``node``."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {
            "nodeName": node,
            "restartPolicy": restart_policy,
            "containers": [
                {"name": f"c{i}" if i else "app", "image": image} for i in range(containers)
            ],
            "tolerations": [{"operator": "Exists"}],
            **spec,
        },
    }
    if grace is not None:
        body["spec"]["terminationGracePeriodSeconds"] = grace
    return body


async def create_pod(kube: Kube, pod: dict[str, Any]) -> dict[str, Any]:
    """POST ``pod``; return it as created."""
    ns = pod["metadata"]["namespace"]
    created: dict[str, Any] = await kube.create(path_of("pods", namespace=ns), pod)
    return created


async def get_pod(kube: Kube, name: str, namespace: str = "default") -> dict[str, Any] | None:
    """GET a pod (None when absent)."""
    status, _ = await kube.request_raw("GET", path_of("pods", name, namespace=namespace))
    if status == 404:
        return None
    pod: dict[str, Any] = await kube.get(path_of("pods", name, namespace=namespace))
    return pod


async def list_pods(kube: Kube, namespace: str = "default") -> list[dict[str, Any]]:
    """All pods of ``namespace``."""
    doc = await kube.get(path_of("pods", namespace=namespace))
    return list(doc.get("items") or [])


async def eventually(
    check: Callable[[], Any], *, limit: float = 20.0, interval: float = 0.02
) -> Any:
    """Await ``check()`` (sync or async) until it returns something truthy; hang guard only."""
    last: Any = None
    with anyio.fail_after(limit):
        while True:
            last = check()
            if hasattr(last, "__await__"):
                last = await last
            if last:
                return last
            await anyio.sleep(interval)


async def phase(kube: Kube, name: str, namespace: str = "default") -> str | None:
    """The API phase of a pod (None when it does not exist)."""
    pod = await get_pod(kube, name, namespace)
    return None if pod is None else (pod.get("status") or {}).get("phase")
