"""The API server's own ceiling: raw pod status patches per second, on the same server.

A pod needs at least one status write to become Running, so status patches/s bound what any
node can reach on this server and machine. The ceiling is measured with the load generator's
raw client, with the same concurrency, on pods bound to a node nobody runs (nothing else
reacts to them), each patch changing the status as a kubelet's would.
"""

from __future__ import annotations

import itertools
import time

import anyio
import attrs

from vkcompose.bench.load import STRATEGIC_PATCH, LoadClient, LoadError
from vkcompose.bench.pods import NAMESPACE

__all__ = ["Ceiling", "measure_ceiling"]

CEILING_NODE = "vkcompose-bench-ceiling"


@attrs.frozen
class Ceiling:
    """``patches`` status patches in ``seconds``."""

    patches: int
    seconds: float

    @property
    def patches_per_s(self) -> float:
        """Status patches per second."""
        return self.patches / self.seconds if self.seconds > 0 else 0.0


def _pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench-ceiling"}},
        "spec": {
            "nodeName": CEILING_NODE,
            "containers": [{"name": "app", "image": "busybox:1.36"}],
        },
    }


def _status(i: int) -> dict[str, object]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "status": {
            "phase": "Running",
            "message": f"patch {i}",
            "conditions": [
                {"type": "Ready", "status": "True" if i % 2 else "False", "lastProbeTime": None},
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": bool(i % 2),
                    "restartCount": 0,
                    "image": "busybox:1.36",
                    "imageID": "",
                    "state": {"running": {"startedAt": now}},
                }
            ],
        }
    }


async def measure_ceiling(client: LoadClient, *, patches: int, concurrency: int) -> Ceiling:
    """Send ``patches`` status patches with ``concurrency`` workers; time them."""
    pods = [f"ceiling-{i}" for i in range(max(1, min(concurrency * 4, patches, 256)))]
    async with anyio.create_task_group() as tg:
        for name in pods:
            tg.start_soon(client.ensure, "pods", _pod(name))
    counter = itertools.count()
    names = itertools.cycle(pods)
    base = f"/api/v1/namespaces/{NAMESPACE}/pods"

    async def worker() -> None:
        while (i := next(counter)) < patches:
            path = f"{base}/{next(names)}/status"
            status, _ = await client.request(
                "PATCH", path, body=_status(i), content_type=STRATEGIC_PATCH
            )
            if status != 200:
                raise LoadError(f"status patch failed: HTTP {status}")

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(max(1, concurrency)):
            tg.start_soon(worker)
    seconds = time.perf_counter() - started
    async with anyio.create_task_group() as tg:
        for name in pods:
            tg.start_soon(
                lambda name: client.request(
                    "DELETE", f"{base}/{name}", body={"gracePeriodSeconds": 0}
                ),
                name,
            )
    return Ceiling(patches=patches, seconds=seconds)
