"""What a benchmark creates: its namespace, ConfigMap, Secret and pods.

The default pod is what a typical application pod looks like to a kubelet: env from a ConfigMap
and a Secret (``valueFrom`` and ``envFrom``), downward-API env (``metadata.name``,
``status.podIP``, ``spec.nodeName``, ``limits.cpu``) and a downward-API volume, a ConfigMap
volume, resources, a toleration of the virtual node's provider taint, ``sleep 3600`` as its
command (what the process backend runs) and a 10 s grace period.

With one node, pods are created **bound** (``spec.nodeName`` set) so the figures are those of
the node and the API server, not of the embedded scheduler; with ``--nodes M > 1`` they are
created unbound and the embedded binder spreads them (its time is then part of create→Running).

>>> pod = pod_body(default_template(), "bench-7", node_name="vk-memory")
>>> pod["metadata"]["name"], pod["metadata"]["namespace"], pod["spec"]["nodeName"]
('bench-7', 'vkcompose-bench', 'vk-memory')
>>> "nodeName" in pod_body(default_template(), "bench-8", node_name=None)["spec"]
False
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from vkcompose.node.settings import PROVIDER_TAINT_KEY

__all__ = [
    "CONFIGMAP",
    "LABEL",
    "NAMESPACE",
    "SECRET",
    "TemplateError",
    "default_template",
    "fixtures",
    "load_template",
    "pod_body",
]

NAMESPACE = "vkcompose-bench"
"""Namespace of the benchmark's pods and sources."""
CONFIGMAP = "bench-config"
SECRET = "bench-secret"
LABEL = "bench.vkcompose.io/run"
"""Label set on every benchmark pod (the load generator watches by it)."""

Pod = dict[str, Any]


class TemplateError(ValueError):
    """A ``--pod-template`` file is not a usable Pod manifest."""


def fixtures() -> list[tuple[str, dict[str, Any]]]:
    """``(plural, object)`` to create before the node starts: namespace, ConfigMap, Secret."""
    return [
        ("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
        (
            "configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE},
                "data": {
                    "LOG_LEVEL": "info",
                    "FEATURE_FLAGS": "a,b,c",
                    "app.properties": "threads=4\ncache=256\n",
                },
            },
        ),
        (
            "secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SECRET, "namespace": NAMESPACE},
                "type": "Opaque",
                # base64 of made-up benchmark values
                "data": {"DB_PASSWORD": "YmVuY2gtcGFzc3dvcmQ=", "API_TOKEN": "YmVuY2gtdG9rZW4="},
            },
        ),
    ]


def default_template() -> Pod:
    """The default benchmark pod (see the module docstring)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "labels": {"app": "bench", "tier": "backend"},
            "annotations": {"bench.vkcompose.io/template": "default"},
        },
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 10,
            "tolerations": [
                {"key": PROVIDER_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "busybox:1.36",
                    "command": ["sleep", "3600"],
                    "env": [
                        {"name": "MODE", "value": "bench"},
                        {
                            "name": "LOG_LEVEL",
                            "valueFrom": {
                                "configMapKeyRef": {"name": CONFIGMAP, "key": "LOG_LEVEL"}
                            },
                        },
                        {
                            "name": "DB_PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "DB_PASSWORD"}},
                        },
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                        {
                            "name": "NODE_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                        },
                        {
                            "name": "CPU_LIMIT",
                            "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}},
                        },
                        {"name": "GREETING", "value": "hello $(POD_NAME)"},
                    ],
                    "envFrom": [{"configMapRef": {"name": CONFIGMAP}, "prefix": "CFG_"}],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "64Mi"},
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/app", "readOnly": True},
                        {"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": CONFIGMAP}},
                {
                    "name": "podinfo",
                    "downwardAPI": {
                        "items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        ]
                    },
                },
            ],
        },
    }


def load_template(path: Path) -> Pod:
    """A Pod manifest from a YAML or JSON file (``metadata.name``/``namespace`` are replaced)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise TemplateError(f"cannot read pod template {path}: {error.strerror}") from None
    try:
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise TemplateError(f"pod template {path} is not valid YAML/JSON: {error}") from None
    if not isinstance(loaded, dict) or loaded.get("kind", "Pod") != "Pod":
        raise TemplateError(f"pod template {path} is not a Pod manifest")
    spec = loaded.get("spec")
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise TemplateError(f"pod template {path} has no spec.containers")
    loaded.setdefault("apiVersion", "v1")
    loaded.setdefault("kind", "Pod")
    return loaded


def _tolerates_provider(spec: dict[str, Any]) -> bool:
    for toleration in spec.get("tolerations") or ():
        if toleration.get("operator") == "Exists" and not toleration.get("key"):
            return True
        if toleration.get("key") == PROVIDER_TAINT_KEY:
            return True
    return False


def pod_body(template: Pod, name: str, *, node_name: str | None, run: str = "1") -> Pod:
    """The pod ``name`` from ``template``: bound to ``node_name`` (or left to the binder)."""
    pod = copy.deepcopy(template)
    meta = pod.setdefault("metadata", {})
    for key in ("generateName", "resourceVersion", "uid", "creationTimestamp"):
        meta.pop(key, None)
    meta["name"] = name
    meta["namespace"] = NAMESPACE
    meta["labels"] = {**(meta.get("labels") or {}), LABEL: run}
    spec = pod["spec"]
    pod.pop("status", None)
    if node_name is None:
        spec.pop("nodeName", None)
    else:
        spec["nodeName"] = node_name
    if not _tolerates_provider(spec):
        spec["tolerations"] = [
            *(spec.get("tolerations") or []),
            {"key": PROVIDER_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
        ]
    return pod
