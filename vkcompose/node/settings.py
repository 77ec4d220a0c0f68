"""``VirtualNode``: everything a recipe decides about one virtual node (or a fleet of them).

>>> from vkcompose.backends.memory import MemoryBackend
>>> node = VirtualNode(name="vk-sim", backend=MemoryBackend(), capacity={"cpu": "8", "pods": "110"})
>>> node.effective_taints()
[{'key': 'virtual-kubelet.io/provider', 'value': 'vk-sim', 'effect': 'NoSchedule'}]
>>> [n for n in node.node_names()]
['vk-sim']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vkcompose.ops import NodeInfo
from vkcompose.pipeline import Middleware, Pipeline, compose

PROVIDER_TAINT_KEY = "virtual-kubelet.io/provider"
"""Key of the default taint: pods must tolerate it to be scheduled on a virtual node."""

DEFAULT_CAPACITY: Mapping[str, str] = {"cpu": "20", "memory": "100Gi", "pods": "110"}


@attrs.define(kw_only=True)
class VirtualNode:
    """Settings of a virtual node: what it advertises and what runs its pods.

    * ``taints=None`` gives the default ``virtual-kubelet.io/provider=<provider>:NoSchedule``;
      ``taints=[]`` disables it.
    * ``replicas > 1`` makes a fleet named by ``name_template`` (``{name}`` and ``{index}``),
      all sharing the same pipeline and backend.
    * ``allocatable`` defaults to ``capacity``.
    * Runtime timings: the Lease (``lease_duration_seconds``, renewed every
      ``lease_renew_seconds``), the backend ping (``ping_seconds``), full node-status reports
      (``node_status_seconds``; changes are reported at once), per-pod retry backoff
      (``retry_base_seconds`` doubling up to ``retry_cap_seconds``), backend listing for
      resync (``resync_seconds``) and status polling of backends without notifications
      (``status_poll_seconds``). ``pod_events`` switches Normal lifecycle Events off
      (warnings are always written); ``event_qps``/``event_burst`` limit Event writes as the
      kubelet's ``eventRecordQPS``/``eventBurst`` do (50/s, bursts of 100; 0 lifts the limit).
    * ``status_coalesce_seconds``: for that long after a create, a status that only says the
      pod is still starting (Pending, containers waiting in ContainerCreating) is held back;
      a later backend status (Running, a failure …) replaces it and is written at once, and
      the held one is written when the window ends. A fast-starting pod costs one status
      write instead of three. 0 writes every status at once.
    """

    name: str
    backend: object
    middlewares: Sequence[Middleware] = ()
    provider: str | None = None
    capacity: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_CAPACITY))
    allocatable: Mapping[str, str] | None = None
    labels: Mapping[str, str] = attrs.field(factory=dict)
    annotations: Mapping[str, str] = attrs.field(factory=dict)
    taints: Sequence[Mapping[str, Any]] | None = None
    internal_ip: str = "127.0.0.1"
    hostname: str | None = None
    os: str = "linux"
    arch: str = "amd64"
    host_network: bool = False
    kubelet_port: int = 10250
    replicas: int = 1
    name_template: str = "{name}-{index}"
    workers: int = 32
    resync_seconds: float = 60.0
    status_poll_seconds: float = 5.0
    lease_duration_seconds: int = 40
    lease_renew_seconds: float = 10.0
    ping_seconds: float = 10.0
    node_status_seconds: float = 60.0
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 60.0
    pod_events: bool = True
    event_qps: float = 50.0
    event_burst: int = 100
    status_coalesce_seconds: float = 0.25
    watch_mode: str = "auto"
    """``"node"``: one pod watch per node (``fieldSelector=spec.nodeName=<node>``);
    ``"fleet"``: one watch of all bound pods, filtered locally; ``"auto"``: per node for up to
    ``fleet_watch_threshold`` nodes, else one fleet watch."""
    fleet_watch_threshold: int = 32

    @property
    def pipeline(self) -> Pipeline:
        """The recipe's middlewares composed in front of its backend."""
        return compose(*self.middlewares, backend=self.backend)

    def effective_watch_mode(self, nodes: int | None = None) -> str:
        """``"node"`` (one pod watch per node) or ``"fleet"`` (one watch), ``auto`` resolved
        for ``nodes`` nodes (default: this setting's fleet).

        >>> VirtualNode(name="n", backend=None, replicas=100).effective_watch_mode()
        'fleet'
        """
        if self.watch_mode != "auto":
            return self.watch_mode
        count = len(self.node_names()) if nodes is None else nodes
        return "node" if count <= self.fleet_watch_threshold else "fleet"

    def effective_allocatable(self) -> dict[str, str]:
        """Allocatable resources (``capacity`` when not given)."""
        return dict(self.allocatable if self.allocatable is not None else self.capacity)

    def effective_taints(self) -> list[dict[str, Any]]:
        """The taints to register (the provider taint unless overridden)."""
        if self.taints is not None:
            return [dict(t) for t in self.taints]
        return [
            {
                "key": PROVIDER_TAINT_KEY,
                "value": self.provider or self.name,
                "effect": "NoSchedule",
            }
        ]

    def node_names(self) -> list[str]:
        """Names of the nodes this setting makes (one, or ``replicas`` from the template)."""
        if self.replicas <= 1:
            return [self.name]
        return [self.name_template.format(name=self.name, index=i) for i in range(self.replicas)]

    def node_info(self, node_name: str) -> NodeInfo:
        """What middlewares learn about node ``node_name`` (host IPs, allocatable, labels)."""
        return NodeInfo(
            name=node_name,
            host_ips=(self.internal_ip,),
            allocatable=self.effective_allocatable(),
            labels=dict(self.labels),
            host_network=self.host_network,
        )


__all__ = ["DEFAULT_CAPACITY", "PROVIDER_TAINT_KEY", "VirtualNode"]
