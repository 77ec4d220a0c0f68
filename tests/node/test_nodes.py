"""Node controller and watch resilience over real HTTP."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import anyio
import pytest
from nodekit import FAST, create_pod, eventually, get_pod, list_pods, make_pod, phase

from vkcompose.apiserver import embedded_apiserver
from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.heartbeat import LEASE_API
from vkcompose.node.kube import Kube, KubeError, connect, path_of
from vkcompose.node.runtime import virtual_node
from vkcompose.node.settings import VirtualNode

pytestmark = pytest.mark.anyio


def lease_path(name: str) -> str:
    return path_of("leases", name, namespace="kube-node-lease", group_version=LEASE_API)


async def get_or_none(kube: Kube, path: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = await kube.get(path)
    except KubeError as exc:
        if exc.not_found:
            return None
        raise
    return obj


def ready(node: dict[str, Any] | None) -> str | None:
    for c in ((node or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return str(c["status"])
    return None


async def test_registration_and_lease(start: Any, kube: Kube, apiserver: Any) -> None:
    rt = await start(labels={"team": "a"}, kubelet_port=10555)
    node = await kube.get(path_of("nodes", "vk-test"))
    labels = node["metadata"]["labels"]
    assert labels["type"] == "virtual-kubelet" and labels["kubernetes.io/role"] == "agent"
    assert labels["team"] == "a"
    assert node["spec"]["taints"][0]["key"] == "virtual-kubelet.io/provider"
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("vkcompose/")
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10555
    assert {a["type"] for a in node["status"]["addresses"]} == {"InternalIP", "Hostname"}
    assert ready(node) == "True"
    lease = await kube.get(lease_path("vk-test"))
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["spec"]["holderIdentity"] == "vk-test"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    first = lease["spec"]["renewTime"]

    async def renewed() -> bool:
        current = await kube.get(lease_path("vk-test"))
        return bool(current["spec"]["renewTime"] > first) and rt.nodes.stats.renewals >= 3

    await eventually(renewed)
    # kubectl sees a Ready node
    kubectl = shutil.which("kubectl", path=os.path.dirname(sys.executable))
    assert kubectl
    proc = await anyio.run_process(
        [
            kubectl,
            "--kubeconfig",
            str(apiserver.kubeconfig_path),
            "get",
            "node",
            "vk-test",
            "--no-headers",
        ]
    )
    assert " Ready " in proc.stdout.decode()


async def test_status_patch_keeps_foreign_conditions(start: Any, kube: Kube) -> None:
    rt = await start()
    await kube.patch_status(
        path_of("nodes", "vk-test", subresource="status"),
        {"status": {"conditions": [{"type": "example.com/Healthy", "status": "True"}]}},
    )
    updates = rt.nodes.stats.status_updates
    await eventually(lambda: rt.nodes.stats.status_updates >= updates + 2)
    node = await kube.get(path_of("nodes", "vk-test"))
    types = {c["type"] for c in node["status"]["conditions"]}
    assert {"example.com/Healthy", "Ready", "MemoryPressure", "DiskPressure"} <= types


async def test_existing_node_is_updated_not_replaced(kube: Kube, start: Any) -> None:
    await kube.create(
        path_of("nodes"),
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "vk-test", "labels": {"admin": "set"}},
            # (not an unreachable taint: the lifecycle controller removes those once Ready)
            "spec": {"taints": [{"key": "example.com/dedicated", "effect": "NoExecute"}]},
        },
    )
    await start()
    node = await kube.get(path_of("nodes", "vk-test"))
    assert node["metadata"]["labels"]["admin"] == "set"
    assert node["metadata"]["labels"]["type"] == "virtual-kubelet"
    keys = {t["key"] for t in node["spec"]["taints"]}
    assert keys == {"example.com/dedicated", "virtual-kubelet.io/provider"}


async def test_deleted_node_and_lease_are_recreated(start: Any, kube: Kube) -> None:
    rt = await start()
    old = await kube.get(path_of("nodes", "vk-test"))
    await kube.delete(path_of("nodes", "vk-test"))
    await kube.delete(lease_path("vk-test"))

    async def back() -> bool:
        node = await get_or_none(kube, path_of("nodes", "vk-test"))
        lease = await get_or_none(kube, lease_path("vk-test"))
        return (
            node is not None
            and node["metadata"]["uid"] != old["metadata"]["uid"]
            and ready(node) == "True"
            and lease is not None
            and lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        )

    await eventually(back)
    assert rt.nodes.stats.registrations >= 2


async def test_ping_failure_makes_node_not_ready_and_stops_lease(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    rt = await start()
    backend.healthy = False

    async def not_ready() -> bool:
        return ready(await kube.get(path_of("nodes", "vk-test"))) == "False"

    await eventually(not_ready)
    node = await kube.get(path_of("nodes", "vk-test"))
    cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert "unhealthy" in cond["message"]
    renewals = rt.nodes.stats.renewals
    await eventually(lambda: rt.nodes.stats.skipped_renewals >= 2)
    assert rt.nodes.stats.renewals == renewals
    backend.healthy = True

    async def ready_again() -> bool:
        return ready(await kube.get(path_of("nodes", "vk-test"))) == "True"

    await eventually(ready_again)
    await eventually(lambda: rt.nodes.stats.renewals > renewals)


async def test_fleet_of_20_nodes(start: Any, kube: Kube, backend: MemoryBackend) -> None:
    rt = await start(name="fleet", replicas=20)
    names = [f"fleet-{i}" for i in range(20)]
    assert len(rt.pods.informers) == 20  # one watch per node at this size
    nodes = (await kube.get(path_of("nodes")))["items"]
    assert {n["metadata"]["name"] for n in nodes} >= set(names)
    for name in names:
        assert await get_or_none(kube, lease_path(name)) is not None
    for i in range(40):
        await create_pod(kube, make_pod(f"p{i}", node=names[i % 20]))

    async def all_running() -> bool:
        pods = await list_pods(kube)
        return len(pods) == 40 and all(p["status"].get("phase") == "Running" for p in pods)

    await eventually(all_running)
    assert backend.creates == 40
    pod = await get_pod(kube, "p7")
    assert pod is not None and pod["spec"]["nodeName"] == "fleet-7"
    await eventually(lambda: rt.nodes.stats.renewals >= 40)


async def test_fleet_watch_mode(start: Any, kube: Kube, backend: MemoryBackend) -> None:
    rt = await start(name="fl", replicas=3, watch_mode="fleet")
    assert len(rt.pods.informers) == 1
    await create_pod(kube, make_pod("mine", node="fl-1"))
    await create_pod(kube, make_pod("theirs", node="elsewhere"))
    await eventually(lambda: _running(kube, "mine"))
    await anyio.sleep(0.2)
    assert backend.creates == 1
    assert await phase(kube, "theirs") in (None, "Pending")


async def _running(kube: Kube, name: str) -> bool:
    return await phase(kube, name) == "Running"


async def test_watch_drop_and_expired_version_lose_nothing() -> None:
    """Dropped watches resume; a resourceVersion gone from history (410) relists and diffs."""
    async with (
        embedded_apiserver(tls=False, history=20, bookmark_interval=0.2) as server,
        MemoryBackend() as backend,
    ):
        kube = await connect(server.kubeconfig_path)
        try:
            node = VirtualNode(name="vk-test", backend=backend, **FAST)
            async with virtual_node(node, kube=kube) as rt:
                for i in range(5):
                    await create_pod(kube, make_pod(f"a{i}"))
                for i in range(5):
                    await eventually(lambda i=i: _running(kube, f"a{i}"))
                # plain drop: resumes from the last resourceVersion
                rt.pods.drop_watches()
                await create_pod(kube, make_pod("b0"))
                await eventually(lambda: _running(kube, "b0"))
                lists = rt.pods.informers[0].lists
                # drop again and, before the watch can resume, push the history past its size
                rt.pods.drop_watches()
                registry = server.registry
                pods_rt = server.table.lookup("", "v1", "pods")
                assert pods_rt is not None
                for i in range(30):
                    registry.create(pods_rt, "default", make_pod(f"c{i}"))
                registry.delete(pods_rt, "default", "a0", {"gracePeriodSeconds": 0})
                registry.delete(pods_rt, "default", "a1", {})
                expected = {f"a{i}" for i in range(2, 5)} | {"b0"} | {f"c{i}" for i in range(30)}

                async def converged() -> bool:
                    pods = await list_pods(kube)
                    names = {p["metadata"]["name"] for p in pods}
                    running = all(p["status"].get("phase") == "Running" for p in pods)
                    return names == expected and running

                await eventually(converged)
                assert rt.pods.informers[0].lists > lists  # the 410 forced a relist

                async def backend_matches() -> bool:
                    return {p["metadata"]["name"] for p in await backend.list_pods()} == expected

                await eventually(backend_matches)
                assert backend.creates == 5 + 1 + 30
        finally:
            await kube.close()
