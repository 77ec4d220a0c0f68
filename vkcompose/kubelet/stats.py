"""Kubelet resource metrics (``/metrics/resource``) rendered from a Summary API document.

metrics-server scrapes ``/metrics/resource`` and reads these series (names and labels as the
kubelet's resource-metrics collector emits them, each sample with a millisecond timestamp)::

    node_cpu_usage_seconds_total, node_memory_working_set_bytes,
    pod_cpu_usage_seconds_total{namespace,pod}, pod_memory_working_set_bytes{namespace,pod},
    container_cpu_usage_seconds_total{container,namespace,pod},
    container_memory_working_set_bytes{container,namespace,pod},
    container_start_time_seconds{container,namespace,pod}, scrape_error, resource_scrape_error

>>> summary = {"node": {"cpu": {"time": "2024-01-01T00:00:00Z", "usageCoreNanoSeconds": 2e9}},
...            "pods": []}
>>> [line for line in resource_metrics(summary).splitlines() if line.startswith("node_cpu")]
['node_cpu_usage_seconds_total 2 1704067200000']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

__all__ = ["METRICS_CONTENT_TYPE", "resource_metrics"]

METRICS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_HELP: Final = {
    "container_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    ),
    "container_memory_working_set_bytes": (
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    ),
    "container_start_time_seconds": (
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    ),
    "node_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    ),
    "node_memory_working_set_bytes": (
        "gauge",
        "[STABLE] Current working set of the node in bytes",
    ),
    "pod_cpu_usage_seconds_total": (
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    ),
    "pod_memory_working_set_bytes": (
        "gauge",
        "[STABLE] Current working set of the pod in bytes",
    ),
    "resource_scrape_error": (
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    ),
    "scrape_error": (
        "gauge",
        "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise",
    ),
}


def _millis(timestamp: Any) -> int | None:
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _cpu_seconds(cpu: Mapping[str, Any] | None, parts: Iterable[Mapping[str, Any]] = ()) -> Any:
    """Cumulative core-seconds of ``cpu`` (summing ``parts`` when it lacks the counter)."""
    if cpu and isinstance(cpu.get("usageCoreNanoSeconds"), int | float):
        return cpu["usageCoreNanoSeconds"] / 1e9
    values: list[float] = []
    for part in parts:
        value = (part.get("cpu") or {}).get("usageCoreNanoSeconds")
        if isinstance(value, int | float):
            values.append(value)
    return sum(values) / 1e9 if values else None


def resource_metrics(summary: Mapping[str, Any] | None, *, error: bool = False) -> str:
    """The Prometheus text exposition of ``summary`` (``error``: the scrape failed)."""
    samples: dict[str, list[str]] = {name: [] for name in _HELP}

    def add(name: str, labels: Mapping[str, str], value: Any, timestamp: Any) -> None:
        if not isinstance(value, int | float):
            return
        millis = _millis(timestamp)
        suffix = f" {millis}" if millis is not None else ""
        samples[name].append(f"{name}{_labels(labels)} {_number(value)}{suffix}")

    node = (summary or {}).get("node") or {}
    pods = (summary or {}).get("pods") or []
    containers_all = [c for p in pods for c in p.get("containers") or []]
    node_cpu = node.get("cpu") or {}
    node_mem = node.get("memory") or {}
    add(
        "node_cpu_usage_seconds_total",
        {},
        _cpu_seconds(node_cpu, containers_all),
        node_cpu.get("time"),
    )
    add("node_memory_working_set_bytes", {}, node_mem.get("workingSetBytes"), node_mem.get("time"))
    for pod in pods:
        ref = pod.get("podRef") or {}
        pod_labels = {"namespace": str(ref.get("namespace", "")), "pod": str(ref.get("name", ""))}
        containers = pod.get("containers") or []
        cpu = pod.get("cpu") or {}
        mem = pod.get("memory") or {}
        add(
            "pod_cpu_usage_seconds_total",
            pod_labels,
            _cpu_seconds(cpu, containers),
            cpu.get("time"),
        )
        add("pod_memory_working_set_bytes", pod_labels, mem.get("workingSetBytes"), mem.get("time"))
        for container in containers:
            labels = {**pod_labels, "container": str(container.get("name", ""))}
            ccpu = container.get("cpu") or {}
            cmem = container.get("memory") or {}
            add("container_cpu_usage_seconds_total", labels, _cpu_seconds(ccpu), ccpu.get("time"))
            add(
                "container_memory_working_set_bytes",
                labels,
                cmem.get("workingSetBytes"),
                cmem.get("time"),
            )
            started = _millis(container.get("startTime"))
            if started is not None:
                add("container_start_time_seconds", labels, started / 1000, ccpu.get("time"))
    flag = 1 if error else 0
    samples["scrape_error"].append(f"scrape_error {flag}")
    samples["resource_scrape_error"].append(f"resource_scrape_error {flag}")
    lines: list[str] = []
    for name, (kind, text) in sorted(_HELP.items()):
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(lines) + "\n"
