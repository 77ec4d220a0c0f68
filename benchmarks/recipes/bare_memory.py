"""Bare simulated node: the memory backend with no middleware at all (a baseline).

vkcompose bench memory --compare benchmarks/recipes/bare_memory.py
"""

from __future__ import annotations

from vkcompose.backends.memory import MemoryBackend
from vkcompose.node.settings import VirtualNode
from vkcompose.recipes import RecipeSettings


def recipe(settings: RecipeSettings) -> VirtualNode:
    """The memory backend alone: what the node runtime and the API server cost by themselves."""
    return VirtualNode(
        name=settings.node_name or "vk-bare",
        backend=MemoryBackend(host_ip=settings.internal_ip),
        middlewares=[],
        capacity={"cpu": "100", "memory": "512Gi", "pods": "20000"},
        internal_ip=settings.internal_ip,
    )
