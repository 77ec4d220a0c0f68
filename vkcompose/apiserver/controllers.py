"""In-process control loops of the embedded API server: a minimal scheduler and the node
lifecycle controller.

* :class:`Binder` binds each pod without ``spec.nodeName`` (and with the default scheduler) to
  a Ready, schedulable node whose NoSchedule/NoExecute taints it tolerates, whose labels match
  its ``nodeSelector`` and required node affinity, and which has room under its ``pods``
  allocatable; the least-loaded such node wins. A pod that fits nowhere gets
  ``PodScheduled=False`` with reason ``Unschedulable`` and the scheduler's message shape
  (``0/3 nodes are available: …``); it is retried whenever a node changes.
* :class:`NodeLifecycle` marks a node whose Lease (or Ready heartbeat) is older than the grace
  period (40 s, as ``--node-monitor-grace-period``) ``Ready=Unknown`` (all kubelet conditions,
  reason ``NodeStatusUnknown``) and taints it ``node.kubernetes.io/unreachable:NoSchedule``;
  the taint goes again when the node reports Ready. Pods are not evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from vkcompose.apiserver.errors import APIError
from vkcompose.apiserver.registry import Registry, timestamp
from vkcompose.apiserver.resources import ResourceType
from vkcompose.apiserver.watch import Subscription
from vkcompose.podspec.quantity import parse_quantity
from vkcompose.podspec.selectors import (
    node_selector_terms_match,
    untolerated_taint,
)

log = logging.getLogger(__name__)

UNREACHABLE_TAINT = {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def node_is_ready(node: Mapping[str, Any]) -> bool:
    """Whether the node's Ready condition is True."""
    ready = _condition(node, "Ready")
    return ready is not None and ready.get("status") == "True"


def why_not(pod: Mapping[str, Any], node: Mapping[str, Any], pods_on_node: int) -> str | None:
    """``None`` when ``pod`` fits ``node``, else the scheduler's reason phrase."""
    spec = pod.get("spec") or {}
    node_spec = node.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if not node_is_ready(node):
        return "node(s) were not ready"
    if node_spec.get("unschedulable"):
        return "node(s) were unschedulable"
    taint = untolerated_taint(spec.get("tolerations"), node_spec.get("taints"))
    if taint is not None:
        value = taint.get("value")
        shown = f"{taint.get('key')}: {value}" if value else str(taint.get("key"))
        return f"node(s) had untolerated taint {{{shown}}}"
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if required and not node_selector_terms_match(
        required, labels, fields={"metadata.name": (node.get("metadata") or {}).get("name", "")}
    ):
        return "node(s) didn't match Pod's node affinity/selector"
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    if "pods" in allocatable:
        try:
            room = int(parse_quantity(str(allocatable["pods"])))
        except ValueError:
            room = 0
        if pods_on_node >= room:
            return "Too many pods"
    return None


def unschedulable_message(total: int, reasons: Counter[str]) -> str:
    """``0/N nodes are available: 2 node(s) …, 1 Too many pods.`` as kube-scheduler writes."""
    if total == 0:
        return "no nodes available to schedule pods"
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."


class _Loop:
    """A background loop that runs :meth:`step` when storage changed (checked every ``tick``)
    or at least every ``interval`` seconds."""

    interval: float = 5.0
    tick: float = 0.1

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._task: asyncio.Task[None] | None = None

    def _rt(self, plural: str, group: str = "", version: str = "v1") -> ResourceType:
        rt = self.registry.table.lookup(group, version, plural)
        assert rt is not None, plural
        return rt

    async def start(self) -> None:
        """Start the loop in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop and wait for it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        seen_revision = -1
        last_step = 0.0
        while True:
            revision = self.registry.storage.revision()
            if revision != seen_revision or loop.time() - last_step >= self.interval:
                seen_revision = revision
                last_step = loop.time()
                try:
                    self.step()
                except Exception:  # a broken object must not stop the control loop
                    log.exception("%s step failed", type(self).__name__)
            await asyncio.sleep(self.tick)

    def step(self) -> None:
        """One pass of the control loop."""
        raise NotImplementedError


def _pending(pod: Mapping[str, Any]) -> bool:
    """Unbound, for the default scheduler, not being deleted and still Pending."""
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
        and not (pod.get("metadata") or {}).get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
    )


def _occupies(pod: Mapping[str, Any] | None) -> str | None:
    """The node a bound, non-terminal pod counts against."""
    if pod is None:
        return None
    node = (pod.get("spec") or {}).get("nodeName")
    if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return None
    return str(node)


class Binder(_Loop):
    """Binds pending pods to nodes (see the module docstring).

    The pending pods and each node's pod count are kept up to date from the watch hub's
    events (a full list only at start and when the subscription overflowed), so a step costs
    the changes since the last one, not a pass over every pod.
    """

    interval = 5.0

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self._pods_sub: Subscription | None = None
        self._nodes_sub: Subscription | None = None
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._load: Counter[str] = Counter()
        self._last_full = 0.0

    async def stop(self) -> None:
        """Stop the loop and drop the subscriptions."""
        await super().stop()
        for sub in (self._pods_sub, self._nodes_sub):
            if sub is not None:
                sub.close()
        self._pods_sub = self._nodes_sub = None

    def _relist(self) -> None:
        for sub in (self._pods_sub, self._nodes_sub):
            if sub is not None:
                sub.close()
        pods_rt = self._rt("pods")
        hub = self.registry.hub
        # subscribing and listing run without an await between them: nothing is missed
        self._pods_sub = hub.subscribe(pods_rt.key, None, None, internal=True)
        self._nodes_sub = hub.subscribe(self._rt("nodes").key, None, None, internal=True)
        self._pending.clear()
        self._load.clear()
        for stored in self.registry.storage.list(pods_rt.key, None):
            self._track(stored.obj, None, stored.obj)

    def _track(self, new: dict[str, Any], old: dict[str, Any] | None, cur: Any) -> None:
        meta = new.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        before, after = _occupies(old), _occupies(cur)
        if before != after:
            if before is not None:
                self._load[before] -= 1
                if self._load[before] <= 0:
                    del self._load[before]
            if after is not None:
                self._load[after] += 1
        if cur is not None and _pending(cur):
            self._pending[key] = cur
        else:
            self._pending.pop(key, None)

    def _drain(self) -> tuple[bool, set[tuple[str, str]]]:
        """Apply the queued pod events: (whether a pod left a node, the keys now pending)."""
        sub = self._pods_sub
        assert sub is not None
        freed = False
        fresh: set[tuple[str, str]] = set()
        while sub.queue:
            event = sub.queue.popleft()
            cur = None if event.type == "DELETED" else event.obj
            if _occupies(event.prev) is not None and _occupies(cur) is None:
                freed = True
            self._track(event.obj, event.prev, cur)
            if cur is not None and _pending(cur):
                fresh.add((event.namespace, str(cur["metadata"].get("name", ""))))
        return freed, fresh

    def step(self) -> None:
        """Bind the pods that became pending; retry the others when nodes changed, a pod
        left a node, or every ``interval``."""
        pods_sub, nodes_sub = self._pods_sub, self._nodes_sub
        if pods_sub is None or nodes_sub is None or pods_sub.overflowed or nodes_sub.overflowed:
            self._relist()
            retry_all = True
        else:
            retry_all = bool(nodes_sub.queue)
            nodes_sub.queue.clear()
            freed, fresh = self._drain()
            retry_all = retry_all or freed
        now = asyncio.get_running_loop().time()
        if retry_all or now - self._last_full >= self.interval:
            self._last_full = now
            todo = list(self._pending.values())
        else:
            todo = [self._pending[k] for k in fresh if k in self._pending]
        if not todo:
            return
        pods_rt = self._rt("pods")
        nodes = [s.obj for s in self.registry.storage.list(self._rt("nodes").key, None)]
        for pod in sorted(todo, key=lambda p: p["metadata"].get("creationTimestamp", "")):
            self._schedule(pod, nodes, pods_rt)

    def _schedule(
        self,
        pod: dict[str, Any],
        nodes: list[dict[str, Any]],
        pods_rt: ResourceType,
    ) -> None:
        meta = pod["metadata"]
        load = self._load
        reasons: Counter[str] = Counter()
        fitting = []
        for node in nodes:
            name = node["metadata"]["name"]
            reason = why_not(pod, node, load[name])
            if reason is None:
                fitting.append(name)
            else:
                reasons[reason] += 1
        try:
            if fitting:
                chosen = min(fitting, key=lambda n: (load[n], n))
                self.registry.bind(
                    meta.get("namespace", ""),
                    meta["name"],
                    {
                        "apiVersion": "v1",
                        "kind": "Binding",
                        "metadata": {"name": meta["name"], "uid": meta.get("uid")},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": chosen},
                    },
                )
                self._drain()  # the binding's event, queued already, counts it on its node
                return
            self._mark_unschedulable(pod, unschedulable_message(len(nodes), reasons), pods_rt)
        except APIError as error:  # the pod changed or went away meanwhile
            log.debug("scheduling %s/%s: %s", meta.get("namespace"), meta.get("name"), error)

    def _mark_unschedulable(self, pod: dict[str, Any], message: str, pods_rt: ResourceType) -> None:
        current = _condition(pod, "PodScheduled")
        if (
            current is not None
            and current.get("status") == "False"
            and current.get("message") == message
        ):
            return
        updated = copy.deepcopy(pod)
        status = updated.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": timestamp(),
                "reason": "Unschedulable",
                "message": message,
            }
        )
        status["conditions"] = conditions
        status.setdefault("phase", "Pending")
        meta = pod["metadata"]
        self.registry.update(
            pods_rt, meta.get("namespace", ""), meta["name"], updated, subresource="status"
        )


class NodeLifecycle(_Loop):
    """Marks nodes whose heartbeats stopped ``Ready=Unknown`` (see the module docstring)."""

    def __init__(
        self, registry: Registry, *, grace_seconds: float = 40.0, interval: float = 5.0
    ) -> None:
        super().__init__(registry)
        self.grace_seconds = grace_seconds
        self.interval = interval
        self._started = datetime.datetime.now(datetime.UTC).timestamp()

    def step(self) -> None:
        """Check every node's heartbeat."""
        nodes_rt = self._rt("nodes")
        leases_rt = self.registry.table.lookup("coordination.k8s.io", "v1", "leases")
        now = datetime.datetime.now(datetime.UTC).timestamp()
        for stored in self.registry.storage.list(nodes_rt.key, None):
            node = stored.obj
            name = node["metadata"]["name"]
            heard = [self._started]
            ready = _condition(node, "Ready")
            if ready is not None:
                heard.append(_parse_time(ready.get("lastHeartbeatTime")) or 0.0)
            if leases_rt is not None:
                lease = self.registry.storage.get(leases_rt.key, "kube-node-lease", name)
                if lease is not None:
                    renew = (lease.obj.get("spec") or {}).get("renewTime")
                    heard.append(_parse_time(renew) or 0.0)
            stale = now - max(heard) > self.grace_seconds
            try:
                if stale and (ready is None or ready.get("status") != "Unknown"):
                    self._mark_unknown(nodes_rt, node)
                elif stale and not _has_unreachable_taint(node):
                    self._set_taint(nodes_rt, node, present=True)
                elif not stale and node_is_ready(node) and _has_unreachable_taint(node):
                    self._set_taint(nodes_rt, node, present=False)
            except APIError as error:
                log.debug("node lifecycle %s: %s", name, error)

    def _mark_unknown(self, nodes_rt: ResourceType, node: dict[str, Any]) -> None:
        updated = copy.deepcopy(node)
        now = timestamp()
        conditions = []
        by_type = {c.get("type"): c for c in (updated.get("status") or {}).get("conditions") or ()}
        for kind in NODE_CONDITIONS:
            previous = by_type.pop(kind, {"type": kind})
            conditions.append(
                {
                    **previous,
                    "status": "Unknown",
                    "reason": "NodeStatusUnknown",
                    "message": "Kubelet stopped posting node status.",
                    "lastTransitionTime": now,
                }
            )
        conditions.extend(by_type.values())
        updated.setdefault("status", {})["conditions"] = conditions
        stored = self.registry.update(
            nodes_rt, "", node["metadata"]["name"], updated, subresource="status"
        )
        self._set_taint(nodes_rt, stored.obj, present=True)

    def _set_taint(self, nodes_rt: ResourceType, node: dict[str, Any], *, present: bool) -> None:
        updated = copy.deepcopy(node)
        spec = updated.setdefault("spec", {})
        taints = [t for t in spec.get("taints") or () if t.get("key") != UNREACHABLE_TAINT["key"]]
        if present:
            taints.append({**UNREACHABLE_TAINT, "timeAdded": timestamp()})
        if taints:
            spec["taints"] = taints
        else:
            spec.pop("taints", None)
        self.registry.update(nodes_rt, "", node["metadata"]["name"], updated)


def _has_unreachable_taint(node: Mapping[str, Any]) -> bool:
    return any(
        t.get("key") == UNREACHABLE_TAINT["key"]
        for t in (node.get("spec") or {}).get("taints") or ()
    )


async def start_controllers(
    registry: Registry, *, node_grace_seconds: float = 40.0, node_check_interval: float = 5.0
) -> list[_Loop]:
    """Start the binder and the node lifecycle controller; ``await c.stop()`` each to end."""
    loops: list[_Loop] = [
        Binder(registry),
        NodeLifecycle(registry, grace_seconds=node_grace_seconds, interval=node_check_interval),
    ]
    for loop in loops:
        await loop.start()
    return loops


__all__ = [
    "Binder",
    "NodeLifecycle",
    "node_is_ready",
    "start_controllers",
    "unschedulable_message",
    "why_not",
]
