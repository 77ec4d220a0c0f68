"""The node controller: registration, node status, Lease heartbeats — for one node or a fleet.

One :class:`NodeController` serves every node of a
:class:`~vkcompose.node.settings.VirtualNode`:

* it registers each Node (:func:`~vkcompose.node.registration.register_node`) and its Lease in
  ``kube-node-lease`` (``ownerReference`` to the Node);
* a single **health check** pings the backend (``Ping`` through the pipeline; ``Unsupported``
  means healthy) every ``ping_seconds``. A failing ping turns every node ``Ready=False``
  (NotReady) and **stops lease renewal**, so the cluster's node lifecycle controller treats
  the nodes as it would an unreachable kubelet;
* node status (Ready, MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable, capacity,
  addresses, nodeInfo) is written by a strategic-merge PATCH of ``nodes/<name>/status`` — only
  our condition types are sent, so conditions written by others stay — at once when health
  changes and otherwise every ``node_status_seconds``; backends with ``GetNodeStatus`` may add
  or override conditions and capacity;
* a **single scheduler task** renews all Leases (every ``lease_renew_seconds``, spread evenly
  over the interval, fixed-rate so renewals never drift) through a bounded pool of requests —
  a thousand nodes cost one task and ~100 small PATCHes a second, not a thousand loops;
* a Node or Lease someone deletes is created again (a node watch notices at once; failed
  renewals and status writes notice too).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import attrs
from anyio.abc import TaskGroup

from vkcompose import ops
from vkcompose.errors import Unsupported
from vkcompose.node.events import NORMAL, EventRecorder, rfc3339
from vkcompose.node.informer import Informer
from vkcompose.node.kube import Kube, KubeError, path_of
from vkcompose.node.registration import (
    LEASE_NAMESPACE,
    node_status_static,
    register_node,
)
from vkcompose.node.settings import VirtualNode
from vkcompose.node.status import merge_conditions
from vkcompose.pipeline import Pipeline
from vkcompose.podspec import JSON

log = logging.getLogger(__name__)

LEASE_API: Final = "coordination.k8s.io/v1"

_HEALTHY: Final = {
    "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
    "MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    "NetworkUnavailable": ("False", "RouteCreated", "virtual node network is available"),
}
OUR_CONDITIONS: Final = tuple(_HEALTHY)

__all__ = [
    "OUR_CONDITIONS",
    "HeartbeatStats",
    "NodeController",
    "micro_time",
    "node_conditions",
]


def micro_time(ts: float | None = None) -> str:
    """A Kubernetes MicroTime (as Lease ``renewTime`` uses).

    >>> micro_time(0.5)
    '1970-01-01T00:00:00.500000Z'
    """
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_conditions(
    *,
    healthy: bool,
    message: str,
    backend: Iterable[Mapping[str, Any]] = (),
    previous: Iterable[Mapping[str, Any]] = (),
    now: str,
) -> list[JSON]:
    """Our five node conditions: healthy defaults, backend overrides, Ready from the ping.

    ``lastTransitionTime`` is kept from ``previous`` while a condition's status holds;
    ``lastHeartbeatTime`` is ``now``.

    >>> [c["status"] for c in node_conditions(healthy=False, message="down", now="t")][:1]
    ['False']
    """
    conds: dict[str, JSON] = {}
    for ctype, (status, reason, msg) in _HEALTHY.items():
        conds[ctype] = {"type": ctype, "status": status, "reason": reason, "message": msg}
    for c in backend:
        if c.get("type"):
            conds[str(c["type"])] = {k: v for k, v in c.items() if k != "lastTransitionTime"}
    if not healthy:
        conds["Ready"] = {
            "type": "Ready",
            "status": "False",
            "reason": "KubeletNotReady",
            "message": f"backend health check failed: {message}",
        }
    merged = merge_conditions(previous, list(conds.values()), now)
    for c in merged:
        c["lastHeartbeatTime"] = now
    return merged


@attrs.define
class HeartbeatStats:
    """Lease and status counters (for tests and benchmarks)."""

    renewals: int = 0
    late_renewals: int = 0
    """Renewals that started more than one renew interval after they were due."""
    max_lateness: float = 0.0
    """Largest delay (seconds) between a renewal's due time and its completion."""
    skipped_renewals: int = 0
    """Renewals skipped because the backend was unhealthy."""
    status_updates: int = 0
    registrations: int = 0
    lease_creates: int = 0
    failures: int = 0


@attrs.define
class _NodeState:
    name: str
    uid: str = ""
    conditions: list[JSON] = attrs.field(factory=list)
    """The Node's conditions as the server last showed them (our writes and others')."""
    rv: int = -1
    """The resourceVersion :attr:`conditions` were read at."""
    registered: bool = False
    backend: JSON = attrs.field(factory=dict)
    """The backend's last node status (kept while its status call fails)."""
    sent: dict[str, frozenset[str]] = attrs.field(factory=dict)
    """Keys of ``capacity``/``allocatable`` last written, and (``conditions``) the condition
    types the backend added: what it stops reporting is deleted from the Node."""


class NodeController:
    """Registers and heartbeats the nodes ``node_names`` (see the module docstring)."""

    def __init__(
        self,
        node: VirtualNode,
        kube: Kube,
        *,
        pipeline: Pipeline | None = None,
        events: EventRecorder | None = None,
        node_names: Iterable[str] | None = None,
        concurrency: int = 32,
    ) -> None:
        self.node = node
        self.kube = kube
        self.pipeline = pipeline or node.pipeline
        self.events = events
        self.node_names = list(node_names or node.node_names())
        self._nodes = {n: _NodeState(n) for n in self.node_names}
        self._limiter = anyio.CapacityLimiter(concurrency)
        # renewals have their own pool: slow status reports never hold a lease back
        self._lease_limiter = anyio.CapacityLimiter(concurrency)
        self.healthy = True
        self.health_message = ""
        self.stats = HeartbeatStats()
        self.ready = anyio.Event()
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._wakeup = anyio.Event()
        self._tg: TaskGroup | None = None
        self._ensuring: set[str] = set()
        self.informer = Informer(
            kube,
            path_of("nodes"),
            label_selector="type=virtual-kubelet",
            on_list=self._on_node_list,
            on_event=self._on_node_event,
            name=f"nodes@{node.name}",
        )

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, due: float, kind: str, name: str) -> None:
        entry = (due, next(self._seq), kind, name)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wakeup.set()

    async def _scheduler(self) -> None:
        assert self._tg is not None
        while True:
            now = anyio.current_time()
            while self._heap and self._heap[0][0] <= now:
                due, _, kind, name = heapq.heappop(self._heap)
                self._tg.start_soon(self._run_job, due, kind, name)
            self._wakeup = anyio.Event()
            wait = self._heap[0][0] - anyio.current_time() if self._heap else 3600.0
            with anyio.move_on_after(max(0.0, wait)):
                await self._wakeup.wait()

    async def _run_job(self, due: float, kind: str, name: str) -> None:
        if kind == "lease":
            interval = self.node.lease_renew_seconds
            try:
                async with self._lease_limiter:
                    await self._renew(name, due)
            finally:
                # fixed rate: the next renewal is due one interval after this one was due
                nxt = due + interval
                if nxt < anyio.current_time():
                    nxt = anyio.current_time() + interval
                self._schedule(nxt, "lease", name)
        elif kind == "status":
            try:
                async with self._limiter:
                    await self._report(name)
            finally:
                self._schedule(due + self.node.node_status_seconds, "status", name)
        elif kind == "status-now":
            async with self._limiter:
                await self._report(name)
        elif kind == "ensure":
            async with self._limiter:
                await self._ensure(name)

    # -- node watch ----------------------------------------------------------------------------

    def _on_node_list(self, items: list[JSON]) -> None:
        present = {}
        for item in items:
            meta = item.get("metadata") or {}
            present[meta.get("name")] = meta.get("uid")
            state = self._nodes.get(meta.get("name") or "")
            if state is not None:
                self._observe(state, item)
        for name, state in self._nodes.items():
            # gone, or deleted and created again by someone else while the watch was down
            if state.registered and (name not in present or present[name] != state.uid):
                self._request_ensure(name)

    def _on_node_event(self, etype: str, obj: JSON) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        state = self._nodes.get(name)
        if state is None:
            return
        if (
            etype == "ADDED"
            and state.registered
            and (obj.get("metadata") or {}).get("uid") not in ("", None, state.uid)
        ):
            # someone created the Node again: register over theirs (the Lease follows its uid)
            self._request_ensure(name)
        elif etype != "DELETED":
            self._observe(state, obj)
        elif state.registered:
            uid = (obj.get("metadata") or {}).get("uid", "")
            if not uid or uid == state.uid:
                log.warning("node %s was deleted: registering it again", name)
                self._request_ensure(name)

    @staticmethod
    def _observe(state: _NodeState, obj: JSON) -> None:
        """Take the conditions of a newer server copy of our Node (a write's answer, a watch
        event): a condition someone else changed (the node lifecycle controller's Ready=Unknown)
        then counts as a transition when we report ours again."""
        meta = obj.get("metadata") or {}
        if state.uid and meta.get("uid") != state.uid:
            return
        try:
            rv = int(meta.get("resourceVersion") or "")
        except ValueError:
            rv = state.rv  # an opaque version: the newest copy seen is the one to use
        if rv < state.rv:
            return
        state.rv = rv
        state.conditions = list((obj.get("status") or {}).get("conditions") or [])

    def _request_ensure(self, name: str) -> None:
        if name in self._ensuring:
            return
        self._ensuring.add(name)
        self._schedule(anyio.current_time(), "ensure", name)

    # -- actions -------------------------------------------------------------------------------

    async def _ensure(self, name: str) -> None:
        """(Re-)register the node, write its status, and create its Lease."""
        state = self._nodes[name]
        try:
            obj = await register_node(self.kube, self.node, name)
            self.stats.registrations += 1
            uid = (obj.get("metadata") or {}).get("uid", "")
            if uid != state.uid:
                state.uid, state.rv = uid, -1
            self._observe(state, obj)
            state.registered = True
            # the Lease first: a slow backend status call must not hold the heartbeat back
            await self._ensure_lease(name)
            await self._report(name)
        except Exception as exc:
            self.stats.failures += 1
            log.warning("registering node %s failed: %s; retrying", name, exc)
            self._ensuring.discard(name)
            await anyio.sleep(min(self.node.lease_renew_seconds, 5.0))
            self._request_ensure(name)
            return
        self._ensuring.discard(name)

    def _lease_body(self, name: str) -> JSON:
        state = self._nodes[name]
        meta: JSON = {"name": name, "namespace": LEASE_NAMESPACE}
        if state.uid:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": state.uid}
            ]
        return {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": self.node.lease_duration_seconds,
                "renewTime": micro_time(),
            },
        }

    async def _ensure_lease(self, name: str) -> None:
        path = path_of("leases", namespace=LEASE_NAMESPACE, group_version=LEASE_API)
        try:
            await self.kube.create(path, self._lease_body(name))
            self.stats.lease_creates += 1
        except KubeError as exc:
            if not exc.conflict:
                raise
            await self._patch_lease(name)

    async def _patch_lease(self, name: str) -> None:
        body = self._lease_body(name)
        patch = {"metadata": {"ownerReferences": body["metadata"].get("ownerReferences")}}
        patch["spec"] = body["spec"]
        await self.kube.patch(
            path_of("leases", name, namespace=LEASE_NAMESPACE, group_version=LEASE_API), patch
        )

    async def _renew(self, name: str, due: float) -> None:
        state = self._nodes[name]
        if not state.registered:
            return
        if not self.healthy:
            self.stats.skipped_renewals += 1
            return
        try:
            await self.kube.patch(
                path_of("leases", name, namespace=LEASE_NAMESPACE, group_version=LEASE_API),
                {"spec": {"renewTime": micro_time(), "holderIdentity": name}},
            )
        except KubeError as exc:
            if exc.not_found:
                log.warning("lease of node %s is gone: creating it again", name)
                self._request_ensure(name)
                return
            self.stats.failures += 1
            log.warning("renewing the lease of node %s failed: %s", name, exc)
            return
        except Exception as exc:
            self.stats.failures += 1
            log.warning("renewing the lease of node %s failed: %s", name, exc)
            return
        done = anyio.current_time()
        self.stats.renewals += 1
        lateness = done - due
        self.stats.max_lateness = max(self.stats.max_lateness, lateness)
        if lateness > self.node.lease_renew_seconds:
            self.stats.late_renewals += 1

    async def _backend_node_status(self, state: _NodeState) -> JSON:
        """The backend's node status, bounded by the ping's timeout; on failure the last one
        it gave (capacity does not come and go with a flaky call; Ready comes from the ping)."""
        if not self.pipeline.supports(ops.GetNodeStatus):
            return {}
        try:
            with anyio.fail_after(self._call_timeout()):
                op = ops.GetNodeStatus(node=self.node.node_info(state.name))
                result: JSON = await self.pipeline(op)
        except Unsupported:
            return {}
        except Exception as exc:
            message = "no answer in time" if isinstance(exc, TimeoutError) else exc
            log.warning("node status of %s from the backend failed: %s", state.name, message)
            return state.backend
        state.backend = result or {}
        return state.backend

    def _call_timeout(self) -> float:
        return max(1.0, self.node.ping_seconds)

    async def _report(self, name: str) -> None:
        """Write node ``name``'s status (conditions from health + backend, capacity …)."""
        state = self._nodes[name]
        if not state.registered:
            return
        backend = await self._backend_node_status(state)
        now = rfc3339()
        backend_conditions = [c for c in backend.get("conditions") or [] if c.get("type")]
        conds = node_conditions(
            healthy=self.healthy,
            message=self.health_message,
            backend=backend_conditions,
            previous=state.conditions,
            now=now,
        )
        status = node_status_static(self.node, name)
        sent: dict[str, frozenset[str]] = {}
        for field in ("capacity", "allocatable"):
            values: dict[str, Any] = {**status[field], **(backend.get(field) or {})}
            sent[field] = frozenset(values)
            # what we advertised before and no longer do is deleted (null in a merge patch)
            values.update(dict.fromkeys(state.sent.get(field, frozenset()) - sent[field]))
            status[field] = values
        added = frozenset(str(c["type"]) for c in backend_conditions) - set(OUR_CONDITIONS)
        sent["conditions"] = added
        dropped = state.sent.get("conditions", frozenset()) - added
        if self.kube.strategic_status_patch:
            deletes = [{"type": t, "$patch": "delete"} for t in sorted(dropped)]
            status["conditions"] = conds + deletes
        else:
            # a merge patch replaces the list: send the others' conditions back as they are
            ours = {c["type"] for c in conds} | dropped
            others = [c for c in state.conditions if c.get("type") not in ours]
            status["conditions"] = conds + others
        try:
            updated = await self.kube.patch_status(
                path_of("nodes", name, subresource="status"), {"status": status}
            )
        except KubeError as exc:
            if exc.not_found:
                self._request_ensure(name)
                return
            self.stats.failures += 1
            log.warning("writing the status of node %s failed: %s", name, exc)
            return
        except Exception as exc:
            # the API server is unreachable or slow: the next report tries again (as the
            # kubelet's status loop does); the lease tells the cluster meanwhile
            self.stats.failures += 1
            log.warning(
                "writing the status of node %s failed: %s", name, str(exc) or type(exc).__name__
            )
            return
        self.stats.status_updates += 1
        state.sent = sent
        if isinstance(updated, dict):
            self._observe(state, updated)

    # -- health --------------------------------------------------------------------------------

    async def check_health(self) -> bool:
        """Ping the backend once; on a change, report every node's status at once."""
        healthy, message = True, ""
        try:
            with anyio.fail_after(self._call_timeout()):
                await self.pipeline(ops.Ping())
        except Unsupported:
            pass
        except Exception as exc:
            healthy = False
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        changed = healthy != self.healthy
        self.healthy, self.health_message = healthy, message
        if changed:
            if healthy:
                log.info("backend healthy again: nodes Ready")
            else:
                log.warning("backend health check failed (%s): nodes NotReady", message)
            now = anyio.current_time()
            for name in self.node_names:
                self._schedule(now, "status-now", name)
                if self.events is not None and self.node.pod_events:
                    reason = "NodeReady" if healthy else "NodeNotReady"
                    self.events.emit(
                        {"kind": "Node", "metadata": {"name": name}},
                        type=NORMAL,
                        reason=reason,
                        message=f"Node {name} status is now: {reason}",
                    )
        return healthy

    async def _health_loop(self) -> None:
        while True:
            await anyio.sleep(self.node.ping_seconds)
            await self.check_health()

    # -- running -------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Register every node, then keep statuses and leases fresh until cancelled."""
        await self.check_health()
        async with anyio.create_task_group() as tg:
            self._tg = tg

            async def first(name: str) -> None:
                async with self._limiter:
                    await self._ensure(name)

            async with anyio.create_task_group() as boot:
                for name in self.node_names:
                    self._ensuring.add(name)
                    boot.start_soon(first, name)
            start = anyio.current_time()
            n = max(1, len(self.node_names))
            renew = self.node.lease_renew_seconds
            report = self.node.node_status_seconds
            for i, name in enumerate(self.node_names):
                self._schedule(start + renew * (i + 1) / n, "lease", name)
                self._schedule(start + report * (i + 1) / n, "status", name)
            tg.start_soon(self._scheduler)
            tg.start_soon(self._health_loop)
            tg.start_soon(self.informer.run)
            if self.events is not None and self.node.pod_events:
                for name in self.node_names:
                    self.events.emit(
                        {"kind": "Node", "metadata": {"name": name}},
                        type=NORMAL,
                        reason="Starting",
                        message="Starting vkcompose virtual node.",
                    )
            self.ready.set()
            task_status.started()

    def uid(self, name: str) -> str:
        """UID of the registered Node ``name`` (empty before registration)."""
        return self._nodes[name].uid
