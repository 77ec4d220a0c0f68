"""Simulated pods: a node whose pods live in memory and follow a scripted lifecycle."""

from __future__ import annotations

from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.settings import VirtualNode
from vkcompose.recipes import RecipeSettings


def recipe(settings: RecipeSettings) -> VirtualNode:
    """A simulated node: pods run instantly unless their ``sim.vkcompose.io/*`` say otherwise."""
    return VirtualNode(
        name=settings.node_name or "vk-memory",
        backend=MemoryBackend(host_ip=settings.internal_ip),
        middlewares=[],
        capacity={"cpu": "100", "memory": "512Gi", "pods": "20000"},
        internal_ip=settings.internal_ip,
    )
