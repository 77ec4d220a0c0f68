"""Defaulting on create, as kube-apiserver's defaulters and admission plugins do it."""

from __future__ import annotations

import secrets
from typing import Any

__all__ = [
    "SA_MOUNT_PATH",
    "default_namespace",
    "default_pod",
    "default_secret",
    "default_service",
    "pod_qos_class",
    "random_suffix",
]

SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_COMPUTE = ("cpu", "memory")


def random_suffix(n: int = 5) -> str:
    """The random tail kube-apiserver appends to ``generateName``."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def _pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if "image" in c:
        c.setdefault("imagePullPolicy", _pull_policy(str(c["image"])))
    res = c.setdefault("resources", {})
    limits = res.get("limits") or {}
    if limits:
        requests = res.setdefault("requests", {})
        for key, value in limits.items():
            requests.setdefault(key, value)
    for port in c.get("ports") or ():
        port.setdefault("protocol", "TCP")


def pod_qos_class(pod: dict[str, Any]) -> str:
    """``Guaranteed``, ``Burstable`` or ``BestEffort`` from container requests and limits."""
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        requests = {k: v for k, v in (res.get("requests") or {}).items() if k in _COMPUTE}
        limits = {k: v for k, v in (res.get("limits") or {}).items() if k in _COMPUTE}
        if requests or limits:
            any_set = True
        if set(limits) != set(_COMPUTE) or any(
            requests.get(k, limits[k]) != limits[k] for k in limits
        ):
            guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_pod(pod: dict[str, Any], *, token_volume: bool = True) -> None:
    """Apply the pod defaults kube-apiserver applies on create (in place)."""
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                _default_container(c)
    tolerations = spec.setdefault("tolerations", [])
    keys = {t.get("key") for t in tolerations if isinstance(t, dict)}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if key not in keys:
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    if token_volume and spec.get("automountServiceAccountToken") is not False:
        _add_token_volume(spec)
    pod["status"] = {"phase": "Pending", "qosClass": pod_qos_class(pod)}


def _add_token_volume(spec: dict[str, Any]) -> None:
    volumes = spec.setdefault("volumes", [])
    containers = [
        c
        for key in ("containers", "initContainers")
        for c in spec.get(key) or ()
        if isinstance(c, dict)
    ]
    if any(
        m.get("mountPath") == SA_MOUNT_PATH for c in containers for m in c.get("volumeMounts") or ()
    ):
        return
    name = "kube-api-access-" + random_suffix()
    volumes.append(
        {
            "name": name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                }
                            ]
                        }
                    },
                ],
            },
        }
    )
    for c in containers:
        c.setdefault("volumeMounts", []).append(
            {"name": name, "readOnly": True, "mountPath": SA_MOUNT_PATH}
        )


def default_namespace(ns: dict[str, Any]) -> None:
    """Namespace defaults: the ``kubernetes`` finalizer, phase Active, the name label."""
    name = ns["metadata"]["name"]
    ns["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    ns.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    ns["status"] = {"phase": "Active"}


def default_secret(secret: dict[str, Any]) -> None:
    """Secret defaults: type Opaque."""
    secret.setdefault("type", "Opaque")


def default_service(svc: dict[str, Any], cluster_ip: str | None) -> None:
    """Service defaults (type, IP families, port protocol/targetPort) and the allocated IP."""
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if cluster_ip is not None and not spec.get("clusterIP"):
            spec["clusterIP"] = cluster_ip
        if spec.get("clusterIP"):
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    svc["status"] = {"loadBalancer": {}}
