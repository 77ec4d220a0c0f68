"""The Node object of a virtual node: what it advertises, and registering it.

:func:`node_object` builds the Node JSON (pure); :func:`register_node` creates it, or — when it
already exists — merges our labels, annotations and taints into it without dropping what other
components added (taints such as ``node.kubernetes.io/unreachable``, labels set by admins).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from vkcompose._version import __version__
from vkcompose.node.kube import STRATEGIC_PATCH, Kube, KubeError, path_of
from vkcompose.node.settings import VirtualNode
from vkcompose.podspec import JSON

log = logging.getLogger(__name__)

LEASE_NAMESPACE: Final = "kube-node-lease"
KUBELET_VERSION: Final = f"vkcompose/{__version__}"

__all__ = [
    "KUBELET_VERSION",
    "LEASE_NAMESPACE",
    "merge_taints",
    "node_labels",
    "node_object",
    "register_node",
]


def node_labels(node: VirtualNode, name: str) -> dict[str, str]:
    """Labels of node ``name``: the well-known ones (as Virtual Kubelet sets them) + the recipe's.

    >>> from vkcompose.node.settings import VirtualNode
    >>> node_labels(VirtualNode(name="vk", backend=object()), "vk")["type"]
    'virtual-kubelet'
    """
    labels = {
        "type": "virtual-kubelet",
        "kubernetes.io/role": "agent",
        "kubernetes.io/hostname": node.hostname or name,
        "kubernetes.io/os": node.os,
        "kubernetes.io/arch": node.arch,
        "beta.kubernetes.io/os": node.os,
        "beta.kubernetes.io/arch": node.arch,
        # Virtual Kubelet keeps virtual nodes out of cloud load balancers
        "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
    }
    labels.update(node.labels)
    return labels


def node_object(node: VirtualNode, name: str) -> JSON:
    """The Node JSON for node ``name`` of ``node`` (status includes our default conditions)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(node, name),
            "annotations": dict(node.annotations),
        },
        "spec": {"taints": node.effective_taints()},
        "status": node_status_static(node, name),
    }


def node_status_static(node: VirtualNode, name: str) -> JSON:
    """The parts of the node status that come from the settings (not from health checks)."""
    return {
        "capacity": dict(node.capacity),
        "allocatable": node.effective_allocatable(),
        "addresses": [
            {"type": "InternalIP", "address": node.internal_ip},
            {"type": "Hostname", "address": node.hostname or name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": node.kubelet_port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": "",
            "osImage": "",
            "containerRuntimeVersion": f"{type(node.backend).__name__.lower()}://{__version__}",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": node.os,
            "architecture": node.arch,
        },
    }


def merge_taints(
    current: list[Mapping[str, Any]] | None, ours: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``current`` taints with ours set (matched by key and effect); others' taints are kept.

    >>> merge_taints([{"key": "a", "effect": "NoExecute"}], [{"key": "b", "effect": "NoSchedule"}])
    [{'key': 'a', 'effect': 'NoExecute'}, {'key': 'b', 'effect': 'NoSchedule'}]
    """
    out = [dict(t) for t in current or []]
    for taint in ours:
        ident = (taint.get("key"), taint.get("effect"))
        for i, existing in enumerate(out):
            if (existing.get("key"), existing.get("effect")) == ident:
                out[i] = dict(taint)
                break
        else:
            out.append(dict(taint))
    return out


async def register_node(kube: Kube, node: VirtualNode, name: str) -> JSON:
    """Create node ``name``, or update the existing one; return the Node as the server has it.

    An existing Node gets our labels and annotations (strategic merge: others' are kept) and our
    taints merged into its list, guarded by its resourceVersion (retried on conflict).
    """
    body = node_object(node, name)
    try:
        created: JSON = await kube.create(path_of("nodes"), body)
        log.info("registered node %s", name)
        return created
    except KubeError as exc:
        if not exc.conflict:
            raise
    for _ in range(5):
        current: JSON = await kube.get(path_of("nodes", name))
        meta = current.get("metadata") or {}
        taints = merge_taints((current.get("spec") or {}).get("taints"), body["spec"]["taints"])
        patch = {
            "metadata": {
                "labels": body["metadata"]["labels"],
                "annotations": body["metadata"]["annotations"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "spec": {"taints": taints},
        }
        try:
            updated: JSON = await kube.patch(
                path_of("nodes", name), patch, content_type=STRATEGIC_PATCH
            )
            log.info("node %s already registered: updated", name)
            return updated
        except KubeError as exc:
            if not exc.conflict:
                raise
    raise KubeError(409, "Conflict", f"node {name} keeps changing; could not update it")
