"""Bad input and authentication: every error is a Status with the right code and reason."""

from __future__ import annotations

from typing import Any

import pytest

from tests.apiserver.conftest import Raw
from vkcompose.apiserver.auth import UserInfo

pytestmark = pytest.mark.anyio

CM = "/api/v1/namespaces/default/configmaps"


def assert_status(body: Any, code: int, reason: str) -> None:
    assert isinstance(body, dict), body
    assert body["kind"] == "Status" and body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason


async def test_malformed_json_is_400(raw: Raw) -> None:
    code, body = await raw.request("POST", CM, b'{"apiVersion": "v1", "kind": ')
    assert code == 400
    assert_status(body, 400, "BadRequest")


async def test_malformed_yaml_is_400(raw: Raw) -> None:
    code, body = await raw.request("POST", CM, b"a: [b\n", content_type="application/yaml")
    assert code == 400
    assert_status(body, 400, "BadRequest")


async def test_yaml_body_is_accepted(raw: Raw) -> None:
    doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n"
    code, body = await raw.request("POST", CM, doc, content_type="application/yaml")
    assert code == 201, body
    assert body["data"] == {"a": "b"}


async def test_empty_and_non_object_bodies_are_400(raw: Raw) -> None:
    assert (await raw.request("POST", CM, b""))[0] == 400
    code, body = await raw.request("POST", CM, b"[1, 2]")
    assert code == 400
    assert_status(body, 400, "BadRequest")


async def test_unknown_paths_are_404(raw: Raw) -> None:
    for path in (
        "/api/v1/widgets",
        "/api/v2/pods",
        "/apis/example.com/v1/things",
        "/api/v1/namespaces/default/pods/x/y/z",
        "/nope",
        "/api/v1/namespaces/default/pods/x/logs",
    ):
        code, body = await raw.request("GET", path)
        assert code == 404, path
        assert_status(body, 404, "NotFound")


async def test_wrong_kind_or_api_version_is_400(raw: Raw) -> None:
    code, body = await raw.request(
        "POST", CM, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}
    )
    assert code == 400
    assert_status(body, 400, "BadRequest")
    code, body = await raw.request(
        "POST", CM, {"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    )
    assert code == 400
    assert "does not match the expected API version" in body["message"]


async def test_namespace_mismatch_is_400(raw: Raw) -> None:
    code, body = await raw.request(
        "POST",
        CM,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}},
    )
    assert code == 400
    assert_status(body, 400, "BadRequest")


async def test_missing_name_is_422(raw: Raw) -> None:
    code, body = await raw.request(
        "POST", CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}
    )
    assert code == 422
    assert_status(body, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"


async def test_body_over_3mib_is_413(raw: Raw) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"x": "a" * (3 * 1024 * 1024 + 10)},
    }
    code, body = await raw.request("POST", CM, big)
    assert code == 413
    assert_status(body, 413, "RequestEntityTooLarge")


async def test_unsupported_patch_type_is_415(raw: Raw) -> None:
    await raw.request(
        "POST", CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}}
    )
    code, body = await raw.request("PATCH", f"{CM}/p", {"data": {}}, content_type="text/plain")
    assert code == 415
    assert_status(body, 415, "UnsupportedMediaType")
    code, body = await raw.request(
        "PATCH", f"{CM}/p", b"{not json", content_type="application/merge-patch+json"
    )
    assert code == 400


async def test_wrong_method_is_405(raw: Raw) -> None:
    code, body = await raw.request("PUT", CM, {})
    assert code == 405
    assert_status(body, 405, "MethodNotAllowed")


async def test_bad_query_parameters_are_400(raw: Raw) -> None:
    assert (await raw.request("GET", f"{CM}?limit=abc"))[0] == 400
    assert (await raw.request("GET", f"{CM}?watch=true&resourceVersion=xyz"))[0] == 400
    assert (await raw.request("GET", f"{CM}?continue=%%%"))[0] == 400


async def test_unauthenticated_is_401(raw: Raw) -> None:
    code, body = await raw.request("GET", CM, token="")
    assert code == 401
    assert_status(body, 401, "Unauthorized")
    code, body = await raw.request("GET", CM, token="not-a-token")
    assert code == 401
    # health and version are public
    assert (await raw.request("GET", "/version", token=""))[0] == 200
    assert (await raw.request("GET", "/healthz", token=""))[0] == 200


async def test_forbidden_is_403(raw: Raw) -> None:
    raw.server.authenticator.add_token("viewer-token", UserInfo("jane", ("system:authenticated",)))
    code, body = await raw.request("GET", CM, token="viewer-token")
    assert code == 403
    assert_status(body, 403, "Forbidden")
    assert body["message"] == (
        'configmaps is forbidden: User "jane" cannot list resource "configmaps" in API group '
        '"" in the namespace "default"'
    )
    assert (await raw.request("GET", "/api", token="viewer-token"))[0] == 200


async def test_discovery_documents(raw: Raw) -> None:
    code, body = await raw.request("GET", "/api")
    assert code == 200 and body["versions"] == ["v1"]
    code, body = await raw.request("GET", "/api/v1")
    names = {r["name"]: r for r in body["resources"]}
    assert names["pods"]["shortNames"] == ["po"]
    assert names["pods"]["namespaced"] is True
    assert "pods/status" in names and "pods/binding" in names and "pods/eviction" in names
    assert names["nodes"]["namespaced"] is False
    assert names["serviceaccounts/token"]["kind"] == "TokenRequest"
    code, body = await raw.request("GET", "/apis")
    groups = {g["name"] for g in body["groups"]}
    assert {"coordination.k8s.io", "authentication.k8s.io", "authorization.k8s.io"} <= groups
    code, body = await raw.request("GET", "/apis/coordination.k8s.io/v1")
    assert [r["name"] for r in body["resources"]] == ["leases"]
    code, body = await raw.request("GET", "/version")
    assert body["major"] == "1"
    code, body = await raw.request("GET", "/openapi/v3")
    assert "api/v1" in body["paths"]
    code, body = await raw.request("GET", body["paths"]["api/v1"]["serverRelativeURL"])
    assert code == 200 and body["openapi"].startswith("3.")
