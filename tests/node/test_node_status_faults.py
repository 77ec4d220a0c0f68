"""Node status under faults: an unreachable API server, a backend whose status call hangs or
stops reporting a resource, and conditions that others change."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from nodekit import FAST, eventually

from vkcompose.apiserver import APIServer, embedded_apiserver
from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.kube import Kube, connect, path_of
from vkcompose.node.runtime import virtual_node
from vkcompose.node.settings import VirtualNode

pytestmark = pytest.mark.anyio


class StatusBackend(MemoryBackend):
    """A simulated backend whose node status (``GetNodeStatus``) the test sets; once ``hang``
    is set, that call never answers (its ping still does, unless ``healthy`` is False)."""

    def __init__(self) -> None:
        super().__init__()
        self.status: dict[str, Any] = {}
        self.hang = False

    async def node_status(self, node: Any) -> dict[str, Any]:
        if self.hang:
            await anyio.sleep_forever()
        return self.status


def condition(node: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in node["status"]["conditions"] if c["type"] == ctype), None)


async def test_an_unreachable_api_server_does_not_stop_the_node() -> None:
    async with embedded_apiserver(tls=False) as server, MemoryBackend() as backend:
        kube = await connect(server.kubeconfig_path)
        try:
            node = VirtualNode(name="vk-test", backend=backend, **FAST)
            async with virtual_node(node, kube=kube) as rt:
                updates = rt.nodes.stats.status_updates
                await eventually(lambda: rt.nodes.stats.status_updates > updates)
                await server.stop()
                failures = rt.nodes.stats.failures
                # status reports (every 0.5 s) and renewals fail, are counted, and go on
                await eventually(lambda: rt.nodes.stats.failures >= failures + 6)
                assert rt.nodes.stats.status_updates > updates
        finally:
            await kube.close()


@pytest.mark.parametrize("strategic", [True, False], ids=["strategic", "merge"])
async def test_what_the_backend_stops_reporting_leaves_the_node(
    apiserver: APIServer, strategic: bool
) -> None:
    kube = await connect(apiserver.kubeconfig_path)
    kube.strategic_status_patch = strategic
    gpus = {"example.com/gpu": "2"}
    try:
        async with StatusBackend() as backend:
            backend.status = {
                "capacity": gpus,
                "allocatable": gpus,
                "conditions": [{"type": "example.com/GPUHealthy", "status": "True"}],
            }
            node = VirtualNode(name="vk-test", backend=backend, **FAST)
            async with virtual_node(node, kube=kube) as rt:
                await kube.patch_status(
                    path_of("nodes", "vk-test", subresource="status"),
                    {"status": {"conditions": [{"type": "example.com/Other", "status": "True"}]}},
                )

                async def advertised() -> bool:
                    n = await kube.get(path_of("nodes", "vk-test"))
                    return bool(
                        n["status"]["allocatable"].get("example.com/gpu") == "2"
                        and condition(n, "example.com/GPUHealthy")
                        and condition(n, "example.com/Other")
                    )

                await eventually(advertised)
                backend.status = {}  # the GPUs are gone
                updates = rt.nodes.stats.status_updates
                await eventually(lambda: rt.nodes.stats.status_updates >= updates + 2)
                n = await kube.get(path_of("nodes", "vk-test"))
                assert "example.com/gpu" not in n["status"]["capacity"]
                assert "example.com/gpu" not in n["status"]["allocatable"]
                assert n["status"]["capacity"]["pods"] == node.capacity["pods"]
                assert condition(n, "example.com/GPUHealthy") is None
                assert condition(n, "example.com/Other") is not None  # not ours: kept
                assert condition(n, "Ready") is not None
    finally:
        await kube.close()


async def test_ready_after_unknown_is_a_transition(kube: Kube) -> None:
    """The node lifecycle controller sets Ready=Unknown when heartbeats stop; when Ready is
    True again, its lastTransitionTime is the time of that report (the kubelet compares with
    the Node as the server has it, not with its own last write)."""
    async with MemoryBackend() as backend:
        node = VirtualNode(name="vk-test", backend=backend, **FAST)
        async with virtual_node(node, kube=kube) as rt:
            first = condition(await kube.get(path_of("nodes", "vk-test")), "Ready")
            assert first is not None and first["status"] == "True"
            await anyio.sleep(1.1)  # the times have seconds
            unknown = {
                "type": "Ready",
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
                "lastHeartbeatTime": first["lastHeartbeatTime"],
                "lastTransitionTime": "2030-01-01T00:00:00Z",
            }
            await kube.patch_status(
                path_of("nodes", "vk-test", subresource="status"),
                {"status": {"conditions": [unknown]}},
            )
            updates = rt.nodes.stats.status_updates

            async def ready_again() -> bool:
                if rt.nodes.stats.status_updates <= updates:
                    return False
                now = condition(await kube.get(path_of("nodes", "vk-test")), "Ready")
                return now is not None and now["status"] == "True"

            await eventually(ready_again)
            now = condition(await kube.get(path_of("nodes", "vk-test")), "Ready")
            assert now is not None
            assert now["lastTransitionTime"] not in (
                first["lastTransitionTime"],
                "2030-01-01T00:00:00Z",
            )
            assert now["lastTransitionTime"] > first["lastTransitionTime"]


async def test_a_hanging_status_call_holds_back_neither_leases_nor_not_ready(kube: Kube) -> None:
    async with StatusBackend() as backend:
        node = VirtualNode(name="fl", backend=backend, replicas=40, **FAST)
        async with virtual_node(node, kube=kube) as rt:
            await eventually(lambda: rt.nodes.stats.renewals >= 40)
            backend.hang = True
            await anyio.sleep(1.0)  # every node's status report is waiting for the backend
            before = rt.nodes.stats.renewals
            await anyio.sleep(1.0)  # five renew intervals
            assert rt.nodes.stats.renewals - before >= 2 * 40
            backend.healthy = False  # the ping fails too: NotReady is written all the same

            async def not_ready() -> bool:
                n = await kube.get(path_of("nodes", "fl-0"))
                ready = condition(n, "Ready")
                return ready is not None and ready["status"] == "False"

            await eventually(not_ready)


async def test_a_relist_showing_someone_elses_node_registers_ours_again(kube: Kube) -> None:
    """A Node deleted and created again while the node watch was down shows up only in the
    relist, with another uid: the node registers over it (and its Lease follows)."""
    async with MemoryBackend() as backend:
        node = VirtualNode(name="vk-test", backend=backend, **FAST)
        async with virtual_node(node, kube=kube) as rt:
            before = rt.nodes.stats.registrations
            rt.nodes._on_node_list([{"metadata": {"name": "vk-test", "uid": "someone-elses"}}])
            await eventually(lambda: rt.nodes.stats.registrations > before)
