"""Pod-specific semantics: graceful deletion, binding, eviction."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

pytestmark = pytest.mark.anyio


def pod(name: str, node: str | None = None, grace: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1"}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def body(resp: Any) -> Any:
    return json.loads(await resp.read())


async def exists(v1: Any, name: str) -> bool:
    try:
        await v1.read_namespaced_pod(name, "default")
    except ApiException as exc:
        assert exc.status == 404
        return False
    return True


async def test_bound_pod_delete_is_graceful_until_grace_zero(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    created = await v1.create_namespaced_pod("default", pod("gp", node="node-1"))
    out = await body(await v1.delete_namespaced_pod("gp", "default", _preload_content=False))
    assert out["kind"] == "Pod"
    meta = out["metadata"]
    assert meta["deletionTimestamp"]
    assert meta["deletionGracePeriodSeconds"] == 30
    assert meta["generation"] == created.metadata.generation + 1
    assert await exists(v1, "gp")
    # a second delete with a longer/equal grace period changes nothing
    again = await body(await v1.delete_namespaced_pod("gp", "default", _preload_content=False))
    assert again["metadata"]["resourceVersion"] == meta["resourceVersion"]
    # shortening is allowed
    short = await body(
        await v1.delete_namespaced_pod(
            "gp", "default", grace_period_seconds=10, _preload_content=False
        )
    )
    assert short["metadata"]["deletionGracePeriodSeconds"] == 10
    # the kubelet's final delete (grace 0) removes it
    final = await body(
        await v1.delete_namespaced_pod(
            "gp", "default", grace_period_seconds=0, _preload_content=False
        )
    )
    assert final["kind"] == "Pod"
    assert not await exists(v1, "gp")


async def test_grace_period_from_request_and_spec(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_pod("default", pod("req", node="n"))
    out = await body(
        await v1.delete_namespaced_pod(
            "req", "default", grace_period_seconds=5, _preload_content=False
        )
    )
    assert out["metadata"]["deletionGracePeriodSeconds"] == 5
    await v1.create_namespaced_pod("default", pod("spec", node="n", grace=12))
    out = await body(await v1.delete_namespaced_pod("spec", "default", _preload_content=False))
    assert out["metadata"]["deletionGracePeriodSeconds"] == 12


async def test_unbound_or_terminated_pod_is_deleted_at_once(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_pod("default", pod("unbound"))
    out = await body(await v1.delete_namespaced_pod("unbound", "default", _preload_content=False))
    assert out["kind"] == "Pod"
    assert not await exists(v1, "unbound")
    await v1.create_namespaced_pod("default", pod("done", node="n"))
    await v1.patch_namespaced_pod_status("done", "default", {"status": {"phase": "Succeeded"}})
    await v1.delete_namespaced_pod("done", "default")
    assert not await exists(v1, "done")
    await v1.create_namespaced_pod("default", pod("forced", node="n"))
    await v1.delete_namespaced_pod("forced", "default", grace_period_seconds=0)
    assert not await exists(v1, "forced")


async def test_pod_with_finalizer_stays_after_kubelet_delete(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    p = pod("fin", node="n")
    p["metadata"]["finalizers"] = ["example.com/keep"]
    await v1.create_namespaced_pod("default", p)
    await v1.delete_namespaced_pod("fin", "default", grace_period_seconds=0)
    got = await v1.read_namespaced_pod("fin", "default")
    assert got.metadata.deletion_timestamp is not None
    await v1.patch_namespaced_pod("fin", "default", {"metadata": {"finalizers": None}})
    assert not await exists(v1, "fin")


async def test_binding_sets_node_once(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_pod("default", pod("b"))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "b"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"},
    }
    resp = await v1.create_namespaced_pod_binding("b", "default", binding, _preload_content=False)
    assert resp.status == 201
    got = await body(await v1.read_namespaced_pod("b", "default", _preload_content=False))
    assert got["spec"]["nodeName"] == "node-a"
    assert any(
        c["type"] == "PodScheduled" and c["status"] == "True" for c in got["status"]["conditions"]
    )
    with pytest.raises(ApiException) as exc:
        await v1.create_namespaced_pod_binding("b", "default", binding)
    assert exc.value.status == 409


async def test_eviction_deletes_gracefully(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_pod("default", pod("ev", node="n"))
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "ev", "namespace": "default"},
    }
    resp = await v1.create_namespaced_pod_eviction(
        "ev", "default", eviction, _preload_content=False
    )
    assert resp.status == 201
    got = await v1.read_namespaced_pod("ev", "default")
    assert got.metadata.deletion_timestamp is not None
    assert got.metadata.deletion_grace_period_seconds == 30


async def test_pod_spec_is_validated(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    with pytest.raises(ApiException) as exc:
        await v1.create_namespaced_pod("default", pod("Bad_Name"))
    assert exc.value.status == 422
    st = json.loads(exc.value.body)
    assert st["reason"] == "Invalid"
    assert st["details"]["kind"] == "Pod"
    assert any(c["field"] == "metadata.name" for c in st["details"]["causes"])
    no_containers = pod("empty")
    no_containers["spec"]["containers"] = []
    with pytest.raises(ApiException) as exc:
        await v1.create_namespaced_pod("default", no_containers)
    assert exc.value.status == 422
    causes = json.loads(exc.value.body)["details"]["causes"]
    assert any(
        c["field"] == "spec.containers" and c["reason"] == "FieldValueRequired" for c in causes
    )
