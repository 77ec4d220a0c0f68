"""CRUD semantics over real HTTP with kubernetes_asyncio: metadata, conflicts, status, patches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from vkcompose.apiserver import APIServer

pytestmark = pytest.mark.anyio


async def body(resp: Any) -> Any:
    return json.loads(await resp.read())


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}], **spec},
    }


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def status_of(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


async def test_bootstrap_objects(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    names = {n.metadata.name for n in (await v1.list_namespace()).items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    svc = await v1.read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip == "10.96.0.1"
    assert svc.spec.ports[0].port == 443
    for ns in ("default", "kube-system"):
        sa = await v1.read_namespaced_service_account("default", ns)
        assert sa.metadata.uid


async def test_configmap_crud_and_metadata(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    created = await body(
        await v1.create_namespaced_config_map("default", cm("one", a="1"), _preload_content=False)
    )
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["namespace"] == "default"
    assert "generation" not in meta
    got = await v1.read_namespaced_config_map("one", "default")
    assert got.data == {"a": "1"}
    assert got.metadata.resource_version == meta["resourceVersion"]
    got.data["b"] = "2"
    updated = await v1.replace_namespaced_config_map("one", "default", got)
    assert int(updated.metadata.resource_version) > int(meta["resourceVersion"])
    assert updated.metadata.uid == meta["uid"]
    deleted = await body(
        await v1.delete_namespaced_config_map("one", "default", _preload_content=False)
    )
    assert deleted["kind"] == "Status" and deleted["status"] == "Success"
    assert deleted["details"] == {"name": "one", "kind": "configmaps", "uid": meta["uid"]}
    with pytest.raises(ApiException) as exc:
        await v1.read_namespaced_config_map("one", "default")
    assert exc.value.status == 404
    st = status_of(exc.value)
    assert st["reason"] == "NotFound"
    assert st["message"] == 'configmaps "one" not found'
    assert st["details"] == {"name": "one", "kind": "configmaps"}


async def test_resource_versions_are_global_and_increasing(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    rvs = []
    for i in range(3):
        obj = await v1.create_namespaced_config_map("default", cm(f"c{i}"))
        rvs.append(int(obj.metadata.resource_version))
        sec = await v1.create_namespaced_secret(
            "default", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{i}"}}
        )
        rvs.append(int(sec.metadata.resource_version))
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    lst = await v1.list_namespaced_config_map("default")
    assert int(lst.metadata.resource_version) >= rvs[-1]


async def test_generate_name(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    obj = await v1.create_namespaced_config_map(
        "default", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    )
    assert obj.metadata.name.startswith("gen-") and len(obj.metadata.name) == 9


async def test_already_exists(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_config_map("default", cm("dup"))
    with pytest.raises(ApiException) as exc:
        await v1.create_namespaced_config_map("default", cm("dup"))
    assert exc.value.status == 409
    st = status_of(exc.value)
    assert st["reason"] == "AlreadyExists"
    assert st["message"] == 'configmaps "dup" already exists'


async def test_stale_update_conflicts(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    first = await v1.create_namespaced_config_map("default", cm("cc", a="1"))
    first.data = {"a": "2"}
    await v1.replace_namespaced_config_map("cc", "default", first)
    first.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        await v1.replace_namespaced_config_map("cc", "default", first)
    assert exc.value.status == 409
    st = status_of(exc.value)
    assert st["reason"] == "Conflict"
    assert st["message"] == (
        'Operation cannot be fulfilled on configmaps "cc": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    # a patch carrying a stale resourceVersion is a conflict too
    with pytest.raises(ApiException) as exc:
        await v1.patch_namespaced_config_map(
            "cc",
            "default",
            {"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"a": "4"}},
        )
    assert exc.value.status == 409


async def test_unchanged_update_keeps_resource_version(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    obj = await v1.create_namespaced_config_map("default", cm("same", a="1"))
    again = await v1.patch_namespaced_config_map("same", "default", {"data": {"a": "1"}})
    assert again.metadata.resource_version == obj.metadata.resource_version


async def test_pod_defaults(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    p = await body(await v1.create_namespaced_pod("default", pod("d"), _preload_content=False))
    spec = p["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["enableServiceLinks"] is True
    assert spec["serviceAccountName"] == "default"
    c = spec["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert p["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert p["metadata"]["generation"] == 1
    # the typed client reads it back (kubectl describe relies on the same fields)
    typed = await v1.read_namespaced_pod("d", "default")
    assert typed.spec.containers[0].name == "c"


async def test_generation_bumps_only_on_spec_changes(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_pod("default", pod("g"))
    p = await v1.patch_namespaced_pod("g", "default", {"metadata": {"labels": {"x": "y"}}})
    assert p.metadata.generation == 1
    p = await v1.patch_namespaced_pod_status("g", "default", {"status": {"phase": "Running"}})
    assert p.metadata.generation == 1
    p = await v1.patch_namespaced_pod(
        "g", "default", {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}
    )
    assert p.metadata.generation == 2


async def test_status_subresource(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    # bound, so the binder leaves it alone while this test writes with resourceVersions
    await v1.create_namespaced_pod("default", pod("s", nodeName="node-0"))
    # writes to the main resource ignore status
    p = await body(
        await v1.patch_namespaced_pod(
            "s",
            "default",
            {"status": {"phase": "Running"}, "metadata": {"labels": {"k": "v"}}},
            _preload_content=False,
        )
    )
    assert p["status"]["phase"] == "Pending"
    assert p["metadata"]["labels"]["k"] == "v"
    # writes to /status change status and metadata, not the spec nor the owner references
    # (podStatusStrategy.PrepareForUpdate resets spec, deletionTimestamp, ownerReferences)
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-1"}
    p = await body(
        await v1.patch_namespaced_pod_status(
            "s",
            "default",
            {
                "status": {"phase": "Running"},
                "metadata": {"labels": {"k": "w"}, "ownerReferences": [owner]},
                "spec": {"activeDeadlineSeconds": 5},
            },
            _preload_content=False,
        )
    )
    assert p["status"]["phase"] == "Running"
    assert p["metadata"]["labels"]["k"] == "w"
    assert "ownerReferences" not in p["metadata"]
    assert "activeDeadlineSeconds" not in p["spec"]
    bad = {"metadata": {"labels": {"k": "not a valid value!"}}}
    with pytest.raises(client.ApiException) as info:
        await v1.patch_namespaced_pod_status("s", "default", bad)
    assert info.value.status == 422
    # PUT /status
    p["status"]["phase"] = "Succeeded"
    p["spec"]["activeDeadlineSeconds"] = 7
    out = await body(
        await v1.replace_namespaced_pod_status("s", "default", p, _preload_content=False)
    )
    assert out["status"]["phase"] == "Succeeded"
    assert "activeDeadlineSeconds" not in out["spec"]
    # nodes: create keeps status (kubelets register with it), main writes ignore it
    node = await body(
        await v1.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "n1"},
                "status": {"capacity": {"cpu": "4"}},
            },
            _preload_content=False,
        )
    )
    assert node["status"]["capacity"] == {"cpu": "4"}
    node = await body(
        await v1.patch_node("n1", {"status": {"capacity": {"cpu": "8"}}}, _preload_content=False)
    )
    assert node["status"]["capacity"] == {"cpu": "4"}
    node = await body(
        await v1.patch_node_status(
            "n1", {"status": {"capacity": {"cpu": "8"}}}, _preload_content=False
        )
    )
    assert node["status"]["capacity"] == {"cpu": "8"}


async def test_patch_types(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespaced_pod(
        "default",
        pod(
            "pt",
            containers=[
                {"name": "a", "image": "busybox:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "busybox:1"},
            ],
        ),
    )
    rest = api
    # strategic merge: containers merge by name, env by name
    p = await body(
        await v1.patch_namespaced_pod(
            "pt",
            "default",
            {"spec": {"containers": [{"name": "a", "image": "busybox:2"}]}},
            _preload_content=False,
        )
    )
    images = {c["name"]: c["image"] for c in p["spec"]["containers"]}
    assert images == {"a": "busybox:2", "b": "busybox:1"}
    assert p["spec"]["containers"][0]["env"] == [{"name": "X", "value": "1"}]
    # JSON merge patch: lists are replaced, null deletes
    resp = await rest.call_api(
        "/api/v1/namespaces/default/pods/pt",
        "PATCH",
        header_params={
            "Content-Type": "application/merge-patch+json",
            "Accept": "application/json",
        },
        body={"metadata": {"labels": {"app": None, "m": "1"}}},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    merged = await body(resp)
    assert merged["metadata"]["labels"] == {"m": "1"}
    # JSON patch
    resp = await rest.call_api(
        "/api/v1/namespaces/default/pods/pt",
        "PATCH",
        header_params={"Content-Type": "application/json-patch+json", "Accept": "application/json"},
        body=[
            {"op": "add", "path": "/metadata/annotations", "value": {"j": "p"}},
            {"op": "replace", "path": "/spec/containers/1/image", "value": "busybox:3"},
        ],
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    patched = await body(resp)
    assert patched["metadata"]["annotations"] == {"j": "p"}
    assert patched["spec"]["containers"][1]["image"] == "busybox:3"
    # a JSON patch whose test fails is rejected with 422
    with pytest.raises(ApiException) as exc:
        await rest.call_api(
            "/api/v1/namespaces/default/pods/pt",
            "PATCH",
            header_params={
                "Content-Type": "application/json-patch+json",
                "Accept": "application/json",
            },
            body=[{"op": "test", "path": "/metadata/name", "value": "other"}],
            auth_settings=["BearerToken"],
        )
    assert exc.value.status == 422


async def test_lease_crud(api: Any) -> None:
    co = client.CoordinationV1Api(api)
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-a", "namespace": "kube-node-lease"},
        "spec": {
            "holderIdentity": "node-a",
            "leaseDurationSeconds": 40,
            "renewTime": "2026-01-01T00:00:00.000000Z",
        },
    }
    created = await co.create_namespaced_lease("kube-node-lease", lease)
    assert created.spec.holder_identity == "node-a"
    created.spec.renew_time = None
    got = await body(
        await co.read_namespaced_lease("node-a", "kube-node-lease", _preload_content=False)
    )
    assert got["spec"]["renewTime"] == "2026-01-01T00:00:00.000000Z"
    got["spec"]["renewTime"] = "2026-01-01T00:00:10.000000Z"
    upd = await co.replace_namespaced_lease("node-a", "kube-node-lease", got)
    assert int(upd.metadata.resource_version) > int(got["metadata"]["resourceVersion"])
    leases = await co.list_namespaced_lease("kube-node-lease")
    assert [item.metadata.name for item in leases.items] == ["node-a"]
    await co.delete_namespaced_lease("node-a", "kube-node-lease")
    assert not (await co.list_namespaced_lease("kube-node-lease")).items


async def test_list_paging(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    for i in range(7):
        await v1.create_namespaced_config_map("default", cm(f"page-{i}"))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        kw: dict[str, Any] = {"limit": 3}
        if token:
            kw["_continue"] = token
        lst = await v1.list_namespaced_config_map("default", label_selector="", **kw)
        pages += 1
        seen += [i.metadata.name for i in lst.items]
        token = lst.metadata._continue
        if not token:
            break
        assert lst.metadata.remaining_item_count is not None
    names = [n for n in seen if n.startswith("page-")]
    assert names == [f"page-{i}" for i in range(7)]
    assert pages >= 3


async def test_paging_across_namespaces_whose_names_share_a_prefix(api: Any) -> None:
    # storage orders by (namespace, name): "a" < "a-b" even though "a/…" > "a-b/…" as strings
    v1 = client.CoreV1Api(api)
    for ns in ("pg", "pg-b"):
        await v1.create_namespace({"metadata": {"name": ns}})
        await v1.create_namespaced_config_map(ns, cm("x"))
    seen: list[tuple[str, str]] = []
    token = None
    while True:
        kw: dict[str, Any] = {"limit": 1}
        if token:
            kw["_continue"] = token
        lst = await v1.list_config_map_for_all_namespaces(**kw)
        seen += [(i.metadata.namespace, i.metadata.name) for i in lst.items]
        token = lst.metadata._continue
        if not token:
            break
    assert [k for k in seen if k[0] in ("pg", "pg-b") and k[1] == "x"] == [
        ("pg", "x"),
        ("pg-b", "x"),
    ]
    assert len(seen) == len(set(seen))


async def test_namespace_lifecycle(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await v1.create_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    )
    sa = await v1.read_namespaced_service_account("default", "team")
    assert sa.metadata.namespace == "team"
    ns = await v1.read_namespace("team")
    assert ns.status.phase == "Active"
    await v1.create_namespaced_config_map("team", cm("x"))
    await v1.delete_namespace("team")
    with pytest.raises(ApiException) as exc:
        await v1.read_namespaced_config_map("x", "team")
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        await v1.create_namespaced_config_map("team", cm("y"))
    assert exc.value.status == 404
    assert status_of(exc.value)["message"] == 'namespaces "team" not found'
    with pytest.raises(ApiException) as exc:
        await v1.delete_namespace("default")
    assert exc.value.status == 403


async def test_finalizers_keep_object_until_removed(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    obj = cm("fin")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    await v1.create_namespaced_config_map("default", obj)
    out = await body(
        await v1.delete_namespaced_config_map("fin", "default", _preload_content=False)
    )
    assert out["kind"] == "ConfigMap"
    assert out["metadata"]["deletionTimestamp"]
    still = await v1.read_namespaced_config_map("fin", "default")
    assert still.metadata.deletion_timestamp is not None
    # no new finalizers once deleting
    with pytest.raises(ApiException) as exc:
        await v1.patch_namespaced_config_map(
            "fin", "default", {"metadata": {"finalizers": ["example.com/hold", "x.io/y"]}}
        )
    assert exc.value.status == 422
    await v1.patch_namespaced_config_map("fin", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        await v1.read_namespaced_config_map("fin", "default")
    assert exc.value.status == 404


async def test_delete_preconditions(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    obj = await v1.create_namespaced_config_map("default", cm("pre"))
    with pytest.raises(ApiException) as exc:
        await v1.delete_namespaced_config_map(
            "pre", "default", body={"preconditions": {"uid": "not-the-uid"}}
        )
    assert exc.value.status == 409
    assert "the UID in the precondition (not-the-uid)" in status_of(exc.value)["message"]
    with pytest.raises(ApiException) as exc:
        await v1.delete_namespaced_config_map(
            "pre", "default", body={"preconditions": {"resourceVersion": "1"}}
        )
    assert exc.value.status == 409
    await v1.delete_namespaced_config_map(
        "pre",
        "default",
        body={
            "preconditions": {
                "uid": obj.metadata.uid,
                "resourceVersion": obj.metadata.resource_version,
            }
        },
    )


async def test_services_get_cluster_ips(api: Any, apiserver: APIServer) -> None:
    v1 = client.CoreV1Api(api)
    svc = await v1.create_namespaced_service(
        "default",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    assert svc.spec.cluster_ip.startswith("10.")
    assert svc.spec.cluster_ip != "10.96.0.1"
    assert svc.spec.ports[0].protocol == "TCP"
    assert svc.spec.ports[0].target_port == 80
    k = await v1.read_namespaced_service("kubernetes", "default")
    assert k.spec.ports[0].target_port == apiserver.port


async def test_delete_collection_with_selector(api: Any) -> None:
    v1 = client.CoreV1Api(api)
    for name, tier in (("dc1", "a"), ("dc2", "a"), ("dc3", "b")):
        obj = cm(name)
        obj["metadata"]["labels"] = {"tier": tier}
        await v1.create_namespaced_config_map("default", obj)
    await v1.delete_collection_namespaced_config_map("default", label_selector="tier=a")
    left = {i.metadata.name for i in (await v1.list_namespaced_config_map("default")).items}
    assert "dc3" in left and not {"dc1", "dc2"} & left
