"""Local processes: a node whose pods run as real processes on this host.

Each container runs its ``command`` (or its image's mapped host command) under a small shim;
with root, in a private mount/PID/UTS namespace over an overlay of the host root, with its
volumes at their mount paths. State under ``<state_dir>/pods`` survives restarts: a restarted
node re-adopts running pods. See ``docs/process-backend.md``.
"""

from __future__ import annotations

import os

from vkcompose.backends.process import ProcessBackend
from vkcompose.node.settings import VirtualNode
from vkcompose.recipes import RecipeSettings
from vkcompose.recipes._stack import standard_middlewares


def recipe(settings: RecipeSettings) -> VirtualNode:
    """Pods as local processes, with env, config sources and volumes resolved first."""
    state_dir = settings.state_dir
    cpus = str(os.cpu_count() or 1)
    return VirtualNode(
        name=settings.node_name or "vk-process",
        backend=ProcessBackend(state_dir / "pods", host_ip=settings.internal_ip, expand_vars=False),
        middlewares=standard_middlewares(volumes_root=state_dir / "volumes"),
        capacity={"cpu": cpus, "memory": _memory(), "pods": "110"},
        internal_ip=settings.internal_ip,
        host_network=True,
    )


def _memory() -> str:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return "8Gi"
    return f"{pages // (1024 * 1024)}Mi"
