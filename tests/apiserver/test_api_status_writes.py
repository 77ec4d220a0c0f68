"""Pod status writes as kube-apiserver treats them: the uid a writer names, IP fields kept in
agreement, the QoS class kept, terminated containers of run-once pods; and a watch asking for
no timeout."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.anyio

NS = "/api/v1/namespaces/default"
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


def pod(name: str, restart_policy: str = "Always") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": restart_policy,
            "containers": [{"name": "c", "image": "nginx:1"}],
        },
    }


async def test_a_status_patch_naming_another_uid_is_invalid(raw: Any) -> None:
    """The kubelet puts the pod's uid in its status patches: a pod deleted and created again
    under the same name must not get the old one's status."""
    code, created = await raw.request("POST", f"{NS}/pods", pod("re"))
    assert code == 201
    code, out = await raw.request(
        "PATCH",
        f"{NS}/pods/re/status",
        {"metadata": {"uid": "uid-of-the-deleted-pod"}, "status": {"phase": "Failed"}},
        content_type=SMP,
    )
    assert code == 422, out
    assert out["reason"] == "Invalid"
    assert out["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "uid-of-the-deleted-pod": field is immutable',
            "field": "metadata.uid",
        }
    ]
    code, same = await raw.request(
        "PATCH",
        f"{NS}/pods/re/status",
        {"metadata": {"uid": created["metadata"]["uid"]}, "status": {"phase": "Running"}},
        content_type=SMP,
    )
    assert code == 200 and same["status"]["phase"] == "Running"


async def test_a_put_naming_another_uid_fails_its_precondition(raw: Any) -> None:
    code, created = await raw.request("POST", f"{NS}/pods", pod("pu"))
    body = {**created, "metadata": {**created["metadata"], "uid": "old"}, "status": {}}
    code, out = await raw.request("PUT", f"{NS}/pods/pu/status", body)
    assert code == 409, out
    assert out["message"] == (
        'Operation cannot be fulfilled on pods "pu": Precondition failed: UID in precondition: '
        f"old, UID in object meta: {created['metadata']['uid']}"
    )


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ({"podIP": "10.1.2.3"}, {"podIP": "10.1.2.3", "podIPs": [{"ip": "10.1.2.3"}]}),
        ({"podIPs": [{"ip": "10.1.2.4"}]}, {"podIP": "10.1.2.4", "podIPs": [{"ip": "10.1.2.4"}]}),
        (
            {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.2"}]},  # the single field wins
            {"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]},
        ),
        ({"hostIP": "192.0.2.1"}, {"hostIP": "192.0.2.1", "hostIPs": [{"ip": "192.0.2.1"}]}),
    ],
)
async def test_single_and_plural_ip_fields_agree(
    raw: Any, written: dict[str, Any], stored: dict[str, Any]
) -> None:
    await raw.request("POST", f"{NS}/pods", pod("ip"))
    code, out = await raw.request(
        "PATCH", f"{NS}/pods/ip/status", {"status": written}, content_type=MERGE
    )
    assert code == 200, out
    assert {k: out["status"].get(k) for k in stored} == stored


async def test_a_status_put_without_a_qos_class_keeps_it(raw: Any) -> None:
    code, created = await raw.request("POST", f"{NS}/pods", pod("qos"))
    assert created["status"]["qosClass"] == "BestEffort"
    code, out = await raw.request(
        "PUT", f"{NS}/pods/qos/status", {**created, "status": {"phase": "Running"}}
    )
    assert code == 200, out
    assert out["status"] == {"phase": "Running", "qosClass": "BestEffort"}


def _container(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": {
            "containerStatuses": [
                {
                    "name": "c",
                    "image": "nginx:1",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": state,
                }
            ]
        }
    }


@pytest.mark.parametrize(
    ("policy", "exit_code", "allowed"),
    [("Never", 1, False), ("Never", 0, False), ("OnFailure", 0, False), ("OnFailure", 1, True)],
)
async def test_a_terminated_container_runs_again_only_if_the_pod_restarts_it(
    raw: Any, policy: str, exit_code: int, allowed: bool
) -> None:
    await raw.request("POST", f"{NS}/pods", pod("nv", policy))
    done = _container({"terminated": {"exitCode": exit_code, "reason": "Error"}})
    code, out = await raw.request("PATCH", f"{NS}/pods/nv/status", done, content_type=SMP)
    assert code == 200, out
    again = _container({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    if not allowed:  # with a metadata change too, it is still checked
        labelled = {**again, "metadata": {"labels": {"also": "this"}}}
        code, out = await raw.request("PATCH", f"{NS}/pods/nv/status", labelled, content_type=SMP)
        assert code == 422, out
    code, out = await raw.request("PATCH", f"{NS}/pods/nv/status", again, content_type=SMP)
    if allowed:
        assert code == 200, out
    else:
        assert code == 422, out
        assert out["details"]["causes"] == [
            {
                "reason": "FieldValueForbidden",
                "message": "Forbidden: may not be transitioned to non-terminated state",
                "field": "status.containerStatuses[0].state",
            }
        ]


async def test_a_watch_asking_for_timeout_zero_stays_open(raw: Any) -> None:
    """``timeoutSeconds=0`` means no timeout of the client's own, as kube-apiserver reads it."""
    await raw.request("POST", f"{NS}/pods", pod("w0"))
    with anyio.move_on_after(1.5) as scope:
        code, out = await raw.request("GET", f"{NS}/pods?watch=1&timeoutSeconds=0")
    assert scope.cancelled_caught, (code, str(out)[:200])
