"""Simulated pods: a node whose pods live in memory and follow a scripted lifecycle."""

from __future__ import annotations

from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.settings import VirtualNode
from vkcompose.recipes import RecipeSettings
from vkcompose.recipes._stack import standard_middlewares


def recipe(settings: RecipeSettings) -> VirtualNode:
    """A simulated node: pods run at once unless their ``sim.vkcompose.io/*`` say otherwise.

    The full middleware stack resolves each pod's environment as a kubelet would (so a missing
    ConfigMap shows ``CreateContainerConfigError``); volumes are not materialized, since
    nothing runs that could read them.
    """
    return VirtualNode(
        name=settings.node_name or "vk-memory",
        backend=MemoryBackend(host_ip=settings.internal_ip),
        middlewares=standard_middlewares(),
        capacity={"cpu": "100", "memory": "512Gi", "pods": "20000"},
        internal_ip=settings.internal_ip,
    )
