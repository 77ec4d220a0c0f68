"""Discovery documents (/api, /apis, group versions, /version) and a minimal OpenAPI v3."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from vkcompose.apiserver.resources import ResourceTable, ResourceType

__all__ = [
    "KUBE_VERSION",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "openapi_v3_document",
    "openapi_v3_index",
    "version_info",
]

KUBE_VERSION = (1, 37, 0)

_SUB_KINDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    # subresource -> (group, version, kind, verbs)
    "binding": ("", "", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
}


def version_info() -> dict[str, str]:
    """``/version``."""
    major, minor, patch = KUBE_VERSION
    return {
        "major": str(major),
        "minor": str(minor),
        "emulationMajor": str(major),
        "emulationMinor": str(minor),
        "minCompatibilityMajor": str(major),
        "minCompatibilityMinor": str(minor - 1),
        "gitVersion": f"v{major}.{minor}.{patch}+vkcompose",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """``/api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group(table: ResourceTable, group: str) -> dict[str, Any]:
    """``/apis/<group>``."""
    versions = table.group_versions()[group]
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list(table: ResourceTable) -> dict[str, Any]:
    """``/apis``."""
    groups = []
    for group in table.group_versions():
        if group:
            g = api_group(table, group)
            del g["kind"], g["apiVersion"]
            groups.append(g)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entry(r: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": sorted(r.verbs),
    }
    if r.short_names:
        entry["shortNames"] = list(r.short_names)
    if r.categories:
        entry["categories"] = list(r.categories)
    if not r.virtual:
        digest = hashlib.sha256(f"{r.group_version}/{r.kind}".encode()).digest()[:8]
        import base64

        entry["storageVersionHash"] = base64.b64encode(digest).decode()
    return entry


def api_resource_list(table: ResourceTable, group: str, version: str) -> dict[str, Any]:
    """``/api/v1`` or ``/apis/<group>/<version>``: resources and their subresources."""
    resources: list[dict[str, Any]] = []
    for r in table.in_group_version(group, version):
        resources.append(_resource_entry(r))
        for sub in r.subresources:
            entry: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
            }
            if sub in _SUB_KINDS:
                g, v, kind, verbs = _SUB_KINDS[sub]
                if g:
                    entry["group"] = g
                    entry["version"] = v
                entry["kind"] = kind
                entry["verbs"] = list(verbs)
            elif sub == "finalize":
                entry["kind"] = r.kind
                entry["verbs"] = ["update"]
            else:
                entry["kind"] = r.kind
                entry["verbs"] = ["get", "patch", "update"]
            resources.append(entry)
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


# ------------------------------------------------------------------------- OpenAPI v3
_PATCH_PARAMS = [
    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for name in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")
]
_WRITE_PARAMS = [p for p in _PATCH_PARAMS if p["name"] != "force"]


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_document(table: ResourceTable, group: str, version: str) -> dict[str, Any]:
    """A minimal OpenAPI v3 document for one group/version: every path with its verbs, the
    ``x-kubernetes-group-version-kind`` extension and the ``fieldValidation`` parameter that
    kubectl looks for before it relies on server-side field validation."""
    paths: dict[str, Any] = {}
    base = "/" + _gv_path(group, version)
    for r in table.in_group_version(group, version):
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        item = f"{base}{ns}/{r.plural}/{{name}}"
        coll = f"{base}{ns}/{r.plural}"

        def op(
            action: str,
            params: list[dict[str, Any]],
            gvk: dict[str, str] = gvk,
            r: ResourceType = r,
        ) -> dict[str, Any]:
            return {
                "operationId": f"{action}{r.kind}",
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            }

        if r.virtual:
            paths[coll] = {"post": op("post", _WRITE_PARAMS)}
            continue
        paths[coll] = {"get": op("list", []), "post": op("post", _WRITE_PARAMS)}
        paths[item] = {
            "get": op("get", []),
            "put": op("put", _WRITE_PARAMS),
            "patch": op("patch", _PATCH_PARAMS),
            "delete": op("delete", []),
        }
        for sub in r.subresources:
            if sub in ("status", "finalize"):
                paths[f"{item}/{sub}"] = {
                    "get": op("get", []),
                    "put": op("put", _WRITE_PARAMS),
                    "patch": op("patch", _PATCH_PARAMS),
                }
    title = "Kubernetes"
    major, minor, patch = KUBE_VERSION
    return {
        "openapi": "3.0.0",
        "info": {"title": title, "version": f"v{major}.{minor}.{patch}"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_v3_index(table: ResourceTable) -> dict[str, Any]:
    """``/openapi/v3``: the group-version documents and their (content-hash) URLs."""
    paths: dict[str, Any] = {}
    for group, versions in table.group_versions().items():
        for version in versions:
            doc = orjson.dumps(openapi_v3_document(table, group, version))
            digest = hashlib.sha512(doc).hexdigest().upper()[:128]
            rel = _gv_path(group, version)
            paths[rel] = {"serverRelativeURL": f"/openapi/v3/{rel}?hash={digest}"}
    return {"paths": paths}
