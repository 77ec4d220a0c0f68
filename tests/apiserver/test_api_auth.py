"""TokenRequest / TokenReview / access reviews, client-certificate identity, Table output."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.apiserver.conftest import Raw

pytestmark = pytest.mark.anyio


async def test_token_request_token_authenticates(raw: Raw) -> None:
    code, tr = await raw.request(
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    assert code == 201, tr
    assert tr["kind"] == "TokenRequest"
    token = tr["status"]["token"]
    assert tr["status"]["expirationTimestamp"].endswith("Z")
    # the token works as a bearer token (service accounts may use the API)
    code, lst = await raw.request("GET", "/api/v1/namespaces/default/pods", token=token)
    assert code == 200 and lst["kind"] == "PodList"
    code, review = await raw.request(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
    )
    assert code == 201
    status = review["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == "system:serviceaccount:default:default"
    assert "system:serviceaccounts" in status["user"]["groups"]
    code, review = await raw.request(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token + "x"},
        },
    )
    assert review["status"]["authenticated"] is False
    # too short a lifetime is invalid; an unknown service account is 404
    code, _ = await raw.request(
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        {"spec": {"expirationSeconds": 60}},
    )
    assert code == 422
    code, _ = await raw.request(
        "POST", "/api/v1/namespaces/default/serviceaccounts/nobody/token", {"spec": {}}
    )
    assert code == 404


async def test_pod_bound_token(raw: Raw) -> None:
    code, pod = await raw.request(
        "POST",
        "/api/v1/namespaces/default/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "tok"},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "x"}]},
        },
    )
    assert code == 201
    code, tr = await raw.request(
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        {
            "spec": {
                "audiences": ["vault"],
                "boundObjectRef": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "name": "tok",
                    "uid": pod["metadata"]["uid"],
                },
            }
        },
    )
    assert code == 201, tr
    code, review = await raw.request(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        {"spec": {"token": tr["status"]["token"], "audiences": ["vault"]}},
    )
    extra = review["status"]["user"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["tok"]


async def test_access_reviews(raw: Raw) -> None:
    code, sar = await raw.request(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": "system:node:n1",
                "groups": ["system:nodes"],
                "resourceAttributes": {"verb": "get", "resource": "pods"},
            },
        },
    )
    assert code == 201 and sar["status"]["allowed"] is True
    code, sar = await raw.request(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "spec": {
                "user": "jane",
                "groups": ["system:authenticated"],
                "resourceAttributes": {"verb": "delete", "resource": "pods"},
            }
        },
    )
    assert sar["status"]["allowed"] is False


async def test_client_certificate_identity(api: Any) -> None:
    auth = client.AuthenticationV1Api(api)
    resp = await auth.create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        _preload_content=False,
    )
    info = json.loads(await resp.read())["status"]["userInfo"]
    assert info["username"] == "kubernetes-admin"
    assert "system:masters" in info["groups"]


async def test_table_responses(raw: Raw) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, table = await raw.request("GET", "/api/v1/namespaces", headers={"Accept": accept})
    assert code == 200
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["columnDefinitions"][0]["name"] == "Name"
    assert {r["cells"][0] for r in table["rows"]} >= {"default", "kube-system"}
    assert table["metadata"]["resourceVersion"]
    code, one = await raw.request("GET", "/api/v1/namespaces/default", headers={"Accept": accept})
    assert one["kind"] == "Table" and len(one["rows"]) == 1
