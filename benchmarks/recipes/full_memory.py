"""Simulated node behind a full middleware stack (to price the middlewares against a bare node).

Tracing, Timeout, Retry, DownwardAPI, ResolveConfigSources (a watch-fed ConfigMap/Secret cache)
and Volumes (ConfigMap, Secret, downward-API and token volumes written to disk; the token is a
simulated one, a recipe has no API connection to request real ones) in front of the memory
backend::

    vkcompose bench benchmarks/recipes/bare_memory.py --compare benchmarks/recipes/full_memory.py
"""

from __future__ import annotations

from vkcompose.backends.memory import MemoryBackend
from vkcompose.middlewares.config_sources import ResolveConfigSources
from vkcompose.middlewares.downward_api import DownwardAPI
from vkcompose.middlewares.retry import Retry
from vkcompose.middlewares.timeout import Timeout
from vkcompose.middlewares.tracing import Tracing
from vkcompose.middlewares.volumes import Volumes
from vkcompose.node.events import LateEventSink
from vkcompose.node.settings import VirtualNode
from vkcompose.node.sources import ClusterSources
from vkcompose.podspec import Pod
from vkcompose.recipes import RecipeSettings


class SimulatedTokens:
    """A token source that hands out a fixed, meaningless token (no TokenRequest)."""

    async def token(
        self, namespace: str, service_account: str, audience: str, expiration: int, pod: Pod, /
    ) -> str:
        """The same simulated token for everyone."""
        return "simulated-token"


def recipe(settings: RecipeSettings) -> VirtualNode:
    """The memory backend behind the environment and control middlewares."""
    sources = ClusterSources()
    events = LateEventSink()
    return VirtualNode(
        name=settings.node_name or "vk-full",
        backend=MemoryBackend(host_ip=settings.internal_ip),
        middlewares=[
            Tracing(),
            Timeout(30.0),
            Retry(),
            DownwardAPI(),
            ResolveConfigSources(sources, events),
            Volumes(settings.state_dir / "volumes", sources, SimulatedTokens(), events=events),
        ],
        capacity={"cpu": "100", "memory": "512Gi", "pods": "20000"},
        internal_ip=settings.internal_ip,
    )
