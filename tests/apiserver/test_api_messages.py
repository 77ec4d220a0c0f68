"""Error answers word for word as kube-apiserver gives them (clients and people match on them),
and the writes it refuses: a Lease replaced without a resourceVersion."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio

NS = "/api/v1/namespaces/default"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def pod(name: str, node: str | None = "node-1") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def test_delete_preconditions_name_the_kind(raw: Any) -> None:
    code, created = await raw.request("POST", f"{NS}/pods", pod("pre"))
    assert code == 201
    code, out = await raw.request("DELETE", f"{NS}/pods/pre", {"preconditions": {"uid": "nope"}})
    assert code == 409
    assert out["message"] == (
        'Operation cannot be fulfilled on Pod "pre": the UID in the precondition (nope) does not '
        f"match the UID in record ({created['metadata']['uid']}). The object might have been "
        "deleted and then recreated"
    )
    assert out["details"] == {"name": "pre", "kind": "Pod"}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {}}
    code, created = await raw.request("POST", f"{NS}/configmaps", cm)
    rv = created["metadata"]["resourceVersion"]
    code, out = await raw.request(
        "DELETE", f"{NS}/configmaps/cm", {"preconditions": {"resourceVersion": "1"}}
    )
    assert code == 409
    assert out["message"] == (
        'Operation cannot be fulfilled on ConfigMap "cm": the ResourceVersion in the '
        f"precondition (1) does not match the ResourceVersion in record ({rv}). The object "
        "might have been modified"
    )


async def test_binding_a_bound_pod_conflicts_on_the_binding(raw: Any) -> None:
    await raw.request("POST", f"{NS}/pods", pod("b", node=None))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "b"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
    }
    code, out = await raw.request("POST", f"{NS}/pods/b/binding", binding)
    assert code == 201, out
    code, out = await raw.request("POST", f"{NS}/pods/b/binding", binding)
    assert code == 409
    assert out["message"] == (
        'Operation cannot be fulfilled on pods/binding "b": pod b is already assigned to node "n1"'
    )


async def test_an_unsupported_field_label_is_named_plainly(raw: Any) -> None:
    code, out = await raw.request("GET", f"{NS}/pods?fieldSelector=foo%3Dbar")
    assert code == 400
    assert out["message"] == "field label not supported: foo"


async def test_a_lease_is_replaced_only_at_a_resource_version(raw: Any) -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "a"},
    }
    code, created = await raw.request("POST", LEASES, lease)
    assert code == 201
    lease["spec"]["holderIdentity"] = "b"
    code, out = await raw.request("PUT", f"{LEASES}/l", lease)
    assert code == 422, out
    assert out["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: 0x0: must be specified for an update",
            "field": "metadata.resourceVersion",
        }
    ]
    lease["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    code, out = await raw.request("PUT", f"{LEASES}/l", lease)
    assert code == 200 and out["spec"]["holderIdentity"] == "b"
