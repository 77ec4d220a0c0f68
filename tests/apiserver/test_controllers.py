"""The embedded scheduler (binder) and node lifecycle controller, over real HTTP."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio import client

from vkcompose.apiserver import APIServer
from vkcompose.apiserver.controllers import start_controllers, unschedulable_message, why_not

pytestmark = pytest.mark.anyio

TAINT = {"key": "virtual-kubelet.io/provider", "value": "sim", "effect": "NoSchedule"}
TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists"}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_body(
    name: str,
    *,
    ready: bool = True,
    taints: list[Any] | None = None,
    labels: dict[str, str] | None = None,
    pods: str = "110",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or []},
        "status": {
            "allocatable": {"pods": pods},
            "capacity": {"pods": pods},
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False",
                 "lastHeartbeatTime": now(), "lastTransitionTime": now(),
                 "reason": "KubeletReady", "message": "ok"}
            ],
        },
    }  # fmt: skip


def pod_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


@pytest.fixture
async def core(apiserver: APIServer) -> AsyncIterator[client.CoreV1Api]:
    loops = await start_controllers(
        apiserver.registry, node_grace_seconds=0.6, node_check_interval=0.1
    )
    api = await apiserver.api_client()
    try:
        yield client.CoreV1Api(api)
    finally:
        await api.close()
        for loop in loops:
            await loop.stop()


async def make_node(core: client.CoreV1Api, body: dict[str, Any]) -> None:
    await core.create_node(body)
    # status is a subresource: write it there, as a kubelet does
    await core.patch_node_status(body["metadata"]["name"], {"status": body["status"]})


async def eventually(check: Any, limit: float = 10.0) -> Any:
    with anyio.fail_after(limit):
        while True:
            result = await check()
            if result:
                return result
            await anyio.sleep(0.05)


async def test_binds_to_a_tolerated_ready_node(core: client.CoreV1Api) -> None:
    await make_node(core, node_body("tainted", taints=[TAINT]))
    await make_node(core, node_body("notready", ready=False))
    await core.create_namespaced_pod("default", pod_body("ok", tolerations=[TOLERATION]))

    async def bound() -> str | None:
        pod = await core.read_namespaced_pod("ok", "default")
        return pod.spec.node_name  # type: ignore[no-any-return]

    assert await eventually(bound) == "tainted"
    pod = await core.read_namespaced_pod("ok", "default")
    scheduled = [c for c in pod.status.conditions if c.type == "PodScheduled"]
    assert scheduled[0].status == "True"


async def test_pod_that_fits_nowhere_is_unschedulable_then_bound_when_a_node_appears(
    core: client.CoreV1Api,
) -> None:
    await make_node(core, node_body("tainted", taints=[TAINT]))
    await core.create_namespaced_pod("default", pod_body("picky", nodeSelector={"disk": "ssd"}))

    async def condition() -> Any:
        pod = await core.read_namespaced_pod("picky", "default")
        found = [c for c in pod.status.conditions or [] if c.type == "PodScheduled"]
        return found[0] if found else None

    cond = await eventually(condition)
    assert (cond.status, cond.reason) == ("False", "Unschedulable")
    assert cond.message == (
        "0/1 nodes are available: 1 node(s) had untolerated taint "
        "{virtual-kubelet.io/provider: sim}."
    )
    await make_node(core, node_body("fast", labels={"disk": "ssd"}))

    async def bound() -> str | None:
        return (await core.read_namespaced_pod("picky", "default")).spec.node_name  # type: ignore[no-any-return]

    assert await eventually(bound) == "fast"


async def test_pods_allocatable_is_respected(core: client.CoreV1Api) -> None:
    await make_node(core, node_body("small", pods="1"))
    for name in ("first", "second"):
        await core.create_namespaced_pod("default", pod_body(name))

    async def states() -> list[Any] | None:
        pods = [await core.read_namespaced_pod(n, "default") for n in ("first", "second")]
        nodes = [p.spec.node_name for p in pods]
        return nodes if None in nodes and any(nodes) else None

    nodes = await eventually(states)
    assert sorted(map(str, nodes)) == ["None", "small"]


@pytest.mark.parametrize("leave", ["succeed", "delete"])
async def test_room_freed_on_a_full_node_binds_the_waiting_pod(
    core: client.CoreV1Api, leave: str
) -> None:
    await make_node(core, node_body("one", pods="1"))
    await core.create_namespaced_pod("default", pod_body("first"))

    async def node_of(name: str) -> str | None:
        return (await core.read_namespaced_pod(name, "default")).spec.node_name  # type: ignore[no-any-return]

    assert await eventually(lambda: node_of("first")) == "one"
    await core.create_namespaced_pod("default", pod_body("second"))

    async def too_many() -> bool:
        pod = await core.read_namespaced_pod("second", "default")
        found = [c for c in pod.status.conditions or [] if c.type == "PodScheduled"]
        return bool(found) and "Too many pods" in (found[0].message or "")

    assert await eventually(too_many)
    if leave == "succeed":
        await core.patch_namespaced_pod_status(
            "first", "default", {"status": {"phase": "Succeeded"}}
        )
    else:
        await core.delete_namespaced_pod("first", "default", grace_period_seconds=0)
    assert await eventually(lambda: node_of("second")) == "one"
    # the node is full again: a third pod waits
    await core.create_namespaced_pod("default", pod_body("third"))
    await anyio.sleep(0.5)
    assert await node_of("third") is None


async def test_silent_node_becomes_unknown_and_tainted_then_recovers(
    core: client.CoreV1Api,
) -> None:
    await make_node(core, node_body("quiet"))

    async def unknown() -> Any:
        node = await core.read_node("quiet")
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        return node if ready.status == "Unknown" else None

    node = await eventually(unknown)
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.reason == "NodeStatusUnknown"
    assert any(t.key == "node.kubernetes.io/unreachable" for t in node.spec.taints)
    # the kubelet comes back and heartbeats again (as often as a kubelet with this grace
    # period would): the taint goes away

    async def recovered() -> bool:
        await core.patch_node_status("quiet", {"status": node_body("quiet")["status"]})
        node = await core.read_node("quiet")
        return not any(t.key == "node.kubernetes.io/unreachable" for t in node.spec.taints or [])

    assert await eventually(recovered, limit=30)


@given(st.lists(st.sampled_from(["node(s) were not ready", "Too many pods",
                                 "node(s) were unschedulable"]), min_size=1))  # fmt: skip
def test_unschedulable_message_counts_every_node(reasons: list[str]) -> None:
    from collections import Counter

    message = unschedulable_message(len(reasons), Counter(reasons))
    assert message.startswith(f"0/{len(reasons)} nodes are available: ")
    counted = sum(int(part.split(" ", 1)[0]) for part in message[:-1].split(": ", 1)[1].split(", "))
    assert counted == len(reasons)


def test_why_not_checks_required_node_affinity() -> None:
    pod = pod_body(
        "p",
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
    )  # fmt: skip
    assert why_not(pod, node_body("n", labels={"zone": "b"}), 0) is not None
    assert why_not(pod, node_body("n", labels={"zone": "a"}), 0) is None
