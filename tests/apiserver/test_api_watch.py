"""List + watch over real HTTP: resume, bookmarks, 410 Expired then relist, selectors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from vkcompose.apiserver import APIServer, embedded_apiserver

pytestmark = pytest.mark.anyio


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels or {}},
        "data": data,
    }


async def collect(stream: Any, n: int, limit_s: float = 10) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []

    async def run() -> None:
        async for ev in stream:
            out.append((ev["type"], ev["raw_object"]))
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), limit_s)
    return out


async def test_watch_resumes_from_list_resource_version(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_config_map("default", cm("before"))
    lst = await v1.list_namespaced_config_map("default")
    rv = lst.metadata.resource_version
    await v1.create_namespaced_config_map("default", cm("w1", a="1"))
    await v1.patch_namespaced_config_map("w1", "default", {"data": {"a": "2"}})
    await v1.delete_namespaced_config_map("w1", "default")
    w = watch.Watch()
    events = await collect(
        w.stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5),
        3,
    )
    w.stop()
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert [o["metadata"]["name"] for _, o in events] == ["w1"] * 3
    assert events[1][1]["data"] == {"a": "2"}
    rvs = [int(o["metadata"]["resourceVersion"]) for _, o in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


async def test_watch_without_resource_version_starts_with_current_state(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_config_map("default", cm("existing"))
    w = watch.Watch()
    stream = w.stream(v1.list_namespaced_config_map, "default", timeout_seconds=5)
    first = await collect(stream, 1)
    assert first[0][0] == "ADDED"
    await v1.create_namespaced_config_map("default", cm("later"))
    names = set()
    async for ev in stream:
        names.add(ev["raw_object"]["metadata"]["name"])
        if "later" in names:
            break
    w.stop()
    assert "later" in names


async def test_watch_live_events_and_single_object_watch(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    obj = await v1.create_namespaced_config_map("default", cm("solo"))
    await v1.create_namespaced_config_map("default", cm("other"))
    w = watch.Watch()
    stream = w.stream(
        v1.list_namespaced_config_map,
        "default",
        field_selector="metadata.name=solo",
        resource_version=obj.metadata.resource_version,
        timeout_seconds=5,
    )

    async def writer() -> None:
        await asyncio.sleep(0.05)
        await v1.patch_namespaced_config_map("other", "default", {"data": {"x": "1"}})
        await v1.patch_namespaced_config_map("solo", "default", {"data": {"x": "1"}})

    task = asyncio.create_task(writer())
    events = await collect(stream, 1)
    await task
    w.stop()
    assert events[0][0] == "MODIFIED"
    assert events[0][1]["metadata"]["name"] == "solo"


async def test_bookmarks(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_config_map("default", cm("bm"))
    lst = await v1.list_namespaced_config_map("default")
    resp = await v1.list_namespaced_config_map(
        "default",
        watch=True,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        resource_version=lst.metadata.resource_version,
        _preload_content=False,
    )
    lines = []
    async for line in resp.content:
        lines.append(line)
    import json

    events = [json.loads(line) for line in lines if line.strip()]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, events
    obj = bookmarks[-1]["object"]
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"
    assert int(obj["metadata"]["resourceVersion"]) >= int(lst.metadata.resource_version)


async def test_send_initial_events_ends_with_bookmark(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_config_map("default", cm("init"))
    resp = await v1.list_namespaced_config_map(
        "default",
        watch=True,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=1,
        _preload_content=False,
    )
    import json

    events = [json.loads(line) async for line in resp.content if line.strip()]
    types = [e["type"] for e in events]
    assert "ADDED" in types and types.index("BOOKMARK") > types.index("ADDED")
    first_bookmark = next(e for e in events if e["type"] == "BOOKMARK")
    annotations = first_bookmark["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


async def test_send_initial_events_false_starts_at_now(api: Any) -> None:
    """With resourceVersion unset, sendInitialEvents=false asks for no synthetic ADDED events:
    only what changes after the watch began."""
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_config_map("default", cm("before"))
    resp = await v1.list_namespaced_config_map(
        "default",
        watch=True,
        send_initial_events=False,
        timeout_seconds=1,
        _preload_content=False,
    )
    await v1.create_namespaced_config_map("default", cm("after"))
    import json

    events = [json.loads(line) async for line in resp.content if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "after")]


async def test_too_old_resource_version_is_410_then_relist_works() -> None:
    async with embedded_apiserver(history=5) as server:
        api = await server.api_client()
        try:
            v1 = client.CoreV1Api(api)
            first = await v1.create_namespaced_config_map("default", cm("old"))
            for i in range(10):
                await v1.patch_namespaced_config_map("old", "default", {"data": {"i": str(i)}})
            w = watch.Watch()
            with pytest.raises(ApiException) as exc:
                await collect(
                    w.stream(
                        v1.list_namespaced_config_map,
                        "default",
                        resource_version=first.metadata.resource_version,
                        timeout_seconds=5,
                    ),
                    1,
                )
            assert exc.value.status == 410
            # the raw stream carries an ERROR event with an Expired Status
            resp = await v1.list_namespaced_config_map(
                "default",
                watch=True,
                resource_version=first.metadata.resource_version,
                timeout_seconds=5,
                _preload_content=False,
            )
            assert resp.status == 200
            import json

            events = [json.loads(line) async for line in resp.content if line.strip()]
            assert events[0]["type"] == "ERROR"
            status = events[0]["object"]
            assert status["code"] == 410 and status["reason"] == "Expired"
            assert status["message"].startswith("too old resource version: ")
            # relist, then watch from the fresh resourceVersion
            lst = await v1.list_namespaced_config_map("default")
            stream = w.stream(
                v1.list_namespaced_config_map,
                "default",
                resource_version=lst.metadata.resource_version,
                timeout_seconds=5,
            )

            async def writer() -> None:
                await asyncio.sleep(0.05)
                await v1.patch_namespaced_config_map("old", "default", {"data": {"i": "x"}})

            task = asyncio.create_task(writer())
            events2 = await collect(stream, 1)
            await task
            w.stop()
            assert events2[0][0] == "MODIFIED"
        finally:
            await api.close()


async def test_label_and_field_selectors_on_list(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_config_map("default", cm("a", {"tier": "web", "env": "prod"}))
    await v1.create_namespaced_config_map("default", cm("b", {"tier": "db", "env": "prod"}))
    await v1.create_namespaced_config_map("default", cm("c", {"tier": "web"}))

    async def names(**kw: Any) -> list[str]:
        lst = await v1.list_namespaced_config_map("default", **kw)
        return sorted(i.metadata.name for i in lst.items if i.metadata.name in "abc")

    assert await names(label_selector="tier=web") == ["a", "c"]
    assert await names(label_selector="tier==web,env=prod") == ["a"]
    assert await names(label_selector="tier!=web") == ["b"]
    assert await names(label_selector="tier in (db, web),env") == ["a", "b"]
    assert await names(label_selector="tier notin (web)") == ["b"]
    assert await names(label_selector="!env") == ["c"]
    assert await names(field_selector="metadata.name=b") == ["b"]
    assert await names(field_selector="metadata.name!=b") == ["a", "c"]
    assert await names(
        field_selector="metadata.namespace=default,metadata.name!=a", label_selector="tier=web"
    ) == ["c"]
    with pytest.raises(ApiException) as exc:
        await v1.list_namespaced_config_map("default", label_selector="tier in (web")
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        await v1.list_namespaced_config_map("default", field_selector="spec.nodeName=x")
    assert exc.value.status == 400


async def test_pod_field_selectors(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    for name, node in (("p1", "n1"), ("p2", "n2"), ("p3", None)):
        spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
        if node:
            spec["nodeName"] = node
        await v1.create_namespaced_pod(
            "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
        )
    await v1.patch_namespaced_pod_status("p2", "default", {"status": {"phase": "Running"}})

    async def names(fs: str) -> list[str]:
        lst = await v1.list_pod_for_all_namespaces(field_selector=fs)
        return sorted(i.metadata.name for i in lst.items)

    assert await names("spec.nodeName=n1") == ["p1"]
    assert await names("spec.nodeName=") == ["p3"]
    assert await names("status.phase=Running") == ["p2"]
    assert await names("status.phase!=Running,spec.nodeName!=") == ["p1"]


async def test_filtered_watch_sees_objects_enter_and_leave(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    lst = await v1.list_namespaced_config_map("default")
    await v1.create_namespaced_config_map("default", cm("mv", {"sel": "no"}))
    await v1.patch_namespaced_config_map("mv", "default", {"metadata": {"labels": {"sel": "yes"}}})
    await v1.patch_namespaced_config_map("mv", "default", {"data": {"k": "v"}})
    await v1.patch_namespaced_config_map("mv", "default", {"metadata": {"labels": {"sel": "no"}}})
    w = watch.Watch()
    events = await collect(
        w.stream(
            v1.list_namespaced_config_map,
            "default",
            label_selector="sel=yes",
            timeout_seconds=5,
            resource_version=lst.metadata.resource_version,
        ),
        3,
    )
    w.stop()
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "DELETED"]


async def test_watch_timeout_ends_stream(api: Any, apiserver: APIServer) -> None:
    v1 = client.CoreV1Api(api)
    resp = await v1.list_namespaced_config_map(
        "default", watch=True, timeout_seconds=1, resource_version="1", _preload_content=False
    )
    body = await asyncio.wait_for(resp.read(), 10)
    assert isinstance(body, bytes)
    assert apiserver.hub.watcher_count() == 0
