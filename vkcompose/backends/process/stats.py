"""Resource usage of containers and the node, in Summary API shape.

With a container cgroup (see :mod:`~vkcompose.backends.process.cgroups`), CPU is the cgroup's
cumulative usage (``usageCoreNanoSeconds``, including processes that already ended) and memory
its charge (``usageBytes``; ``workingSetBytes`` = usage minus inactive file pages, as cAdvisor;
``rssBytes`` from the processes). Without one, psutil over /proc: CPU is the user+system time
of the container's live processes, memory their resident set. ``usageNanoCores`` is the rate
between two successive reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import psutil

from vkcompose.backends.process.cgroups import ContainerCgroup
from vkcompose.backends.process.supervisor import now_iso


@attrs.frozen
class ContainerProcs:
    """Where to find one container's processes."""

    namespace: str
    pod: str
    uid: str
    container: str
    root_pid: int
    include_root: bool
    start_time: str
    pod_start_time: str
    cgroup: ContainerCgroup | None = None


def _processes(root_pid: int, include_root: bool) -> list[psutil.Process]:
    try:
        root = psutil.Process(root_pid)
        kids = root.children(recursive=True)
    except psutil.Error:
        return []
    return [root, *kids] if include_root else kids


def usage(root_pid: int, include_root: bool) -> tuple[int, int]:
    """``(cpu_nanoseconds, rss_bytes)`` summed over a container's live processes."""
    cpu = 0.0
    rss = 0
    for p in _processes(root_pid, include_root):
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu += t.user + t.system
                rss += p.memory_info().rss
        except psutil.Error:
            continue
    return int(cpu * 1e9), rss


class StatsCollector:
    """Remembers the previous CPU reading of each container to compute rates."""

    def __init__(self) -> None:
        self._prev: dict[tuple[str, ...], tuple[int, int]] = {}

    def _rate(self, key: tuple[str, ...], now_ns: int, cpu_ns: int) -> int:
        prev = self._prev.get(key)
        self._prev[key] = (now_ns, cpu_ns)
        if prev is None or now_ns <= prev[0]:
            return 0
        return max(0, int((cpu_ns - prev[1]) * 1e9 / (now_ns - prev[0])))

    def summary(self, node_name: str, containers: Sequence[ContainerProcs]) -> dict[str, Any]:
        """A kubelet ``/stats/summary`` document (blocking: run in a worker thread)."""
        now = now_iso()
        now_ns = time.time_ns()
        pods: dict[tuple[str, str, str], dict[str, Any]] = {}
        for c in containers:
            cpu_ns, rss = usage(c.root_pid, c.include_root)
            mem_usage = working_set = rss
            accounted = c.cgroup.usage() if c.cgroup is not None else None
            if accounted is not None:
                cpu_ns, mem_usage, working_set = accounted
            key = (c.namespace, c.pod, c.uid, c.container)
            nano_cores = self._rate(key, now_ns, cpu_ns)
            pod = pods.setdefault(
                (c.namespace, c.pod, c.uid),
                {
                    "podRef": {"name": c.pod, "namespace": c.namespace, "uid": c.uid},
                    "startTime": c.pod_start_time,
                    "containers": [],
                },
            )
            pod["containers"].append(
                {
                    "name": c.container,
                    "startTime": c.start_time,
                    "cpu": _cpu(now, nano_cores, cpu_ns),
                    "memory": _memory(now, rss, usage=mem_usage, working_set=working_set),
                }
            )
        for pod in pods.values():
            cs = pod["containers"]
            pod["cpu"] = _cpu(
                now,
                sum(c["cpu"]["usageNanoCores"] for c in cs),
                sum(c["cpu"]["usageCoreNanoSeconds"] for c in cs),
            )
            pod["memory"] = _memory(
                now,
                sum(c["memory"]["rssBytes"] for c in cs),
                usage=sum(c["memory"]["usageBytes"] for c in cs),
                working_set=sum(c["memory"]["workingSetBytes"] for c in cs),
            )
        return {"node": node_stats(node_name, self), "pods": list(pods.values())}


def _cpu(now: str, nano_cores: int, core_ns: int) -> dict[str, Any]:
    return {"time": now, "usageNanoCores": nano_cores, "usageCoreNanoSeconds": core_ns}


def _memory(
    now: str,
    rss: int,
    available: int | None = None,
    *,
    usage: int | None = None,
    working_set: int | None = None,
) -> dict[str, Any]:
    mem: dict[str, Any] = {
        "time": now,
        "usageBytes": rss if usage is None else usage,
        "workingSetBytes": rss if working_set is None else working_set,
        "rssBytes": rss,
        "pageFaults": 0,
        "majorPageFaults": 0,
    }
    if available is not None:
        mem["availableBytes"] = available
    return mem


def node_stats(node_name: str, collector: StatsCollector) -> dict[str, Any]:
    """The ``node`` part of the summary: whole-host CPU and memory."""
    now = now_iso()
    times = psutil.cpu_times()
    busy_ns = int((times.user + times.system + getattr(times, "nice", 0.0)) * 1e9)
    vm = psutil.virtual_memory()
    used = vm.total - vm.available
    boot = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(psutil.boot_time()))
    return {
        "nodeName": node_name,
        "startTime": boot,
        "cpu": _cpu(now, collector._rate(("__node__",), time.time_ns(), busy_ns), busy_ns),
        "memory": _memory(now, used, vm.available) | {"rssBytes": used},
        "systemContainers": [],
    }


def host_memory() -> tuple[int, int]:
    """``(total, available)`` bytes of host memory."""
    vm = psutil.virtual_memory()
    return vm.total, vm.available


def ids(items: Iterable[ContainerProcs]) -> list[str]:
    """``namespace/pod/container`` of each item (for messages)."""
    return [f"{c.namespace}/{c.pod}/{c.container}" for c in items]


__all__ = ["ContainerProcs", "StatsCollector", "host_memory", "node_stats", "usage"]
