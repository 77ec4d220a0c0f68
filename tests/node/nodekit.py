"""Helpers for node-runtime tests (pod builders, polling, short timings)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from vkcompose.node.kube import Kube, KubeError, path_of


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
    try:
        pod: dict[str, Any] = await kube.get(path_of("pods", name, namespace=namespace))
    except KubeError as exc:
        if exc.not_found:
            return None
        raise
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


FAST: dict[str, Any] = {
    "lease_renew_seconds": 0.2,
    "ping_seconds": 0.1,
    "node_status_seconds": 0.5,
    "retry_base_seconds": 0.05,
    "retry_cap_seconds": 0.4,
    "resync_seconds": 1.0,
    "status_poll_seconds": 0.1,
    "workers": 8,
}
"""Short timings for tests."""


async def events_for(kube: Kube, name: str, namespace: str = "default") -> list[dict[str, Any]]:
    """Events whose involved object is ``name``."""
    doc = await kube.get(path_of("events", namespace=namespace))
    return [e for e in doc.get("items") or [] if e["involvedObject"]["name"] == name]
