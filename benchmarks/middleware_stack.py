"""Overhead of the default recipes' middleware stack per CreatePod on a realistic pod.

The pod has 3 containers, each with downward-API env (name, namespace, podIP, a label), a
resourceFieldRef, ConfigMap and Secret keys, an ``envFrom`` of a 10-key ConfigMap and a
dependent ``$(VAR)``; the namespace has 6 Services (service links). The backend does nothing,
so the figures are the middlewares' own cost. Measured in one run, interleaved: bare (no
middleware), the memory recipe's stack on replicas of one pod template, the same stack on pods
that each have a template of their own (one more env var whose value differs per pod: the env
layer resolves every such pod in full), and the process recipe's stack (which also
materializes a configMap, a secret, a downwardAPI and the projected service-account volume on
disk). Per-middleware self time comes from the timing hook.

    python benchmarks/middleware_stack.py [--ops 2000] [--rounds 5]

Target: the full stack ≤ 200 µs per CreatePod. CPU time of this thread is reported next to
wall time (CPU time is what other processes on a busy machine cannot inflate).
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.table import Table

from vkcompose.middlewares.config_sources import StaticSources
from vkcompose.middlewares.service_links import StaticServices
from vkcompose.middlewares.timing import TimingRecorder, instrument
from vkcompose.ops import CreatePod, NodeInfo
from vkcompose.pipeline import Pipeline, compose
from vkcompose.recipes._stack import standard_middlewares

UNIQUE = "memory recipe stack, every pod its own template"
NODE = NodeInfo(name="bench", host_ips=("10.0.0.1",), allocatable={"cpu": "8", "memory": "32Gi"})


class NullBackend:
    """Accepts every pod; knows pod IPs."""

    async def create_pod(self, pod: dict[str, Any], /, *, volume_paths: Any = None) -> None:
        """Do nothing."""

    async def pod_ips(self, pod: dict[str, Any], /) -> Sequence[str]:
        """A fixed IP."""
        return ["10.244.0.7"]


class StaticTokens:
    """A token source that needs no API server."""

    async def token(self, ns: str, sa: str, aud: str, exp: int, pod: Any, /) -> str:
        """A fixed token."""
        return "eyJhbGciOiJFUzI1NiJ9.e30." + "x" * 80


def sources() -> StaticSources:
    settings = {f"KEY_{i}": f"value-{i}" for i in range(10)}
    password = base64.b64encode(b"hunter2").decode()
    return StaticSources(
        [
            {"kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "default",
                                               "resourceVersion": "101"},
             "data": {"mode": "fast", "level": "debug", **settings}},
            {"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt", "namespace": "default",
                                               "resourceVersion": "102"},
             "data": {"ca.crt": "-----BEGIN CERTIFICATE-----"}},
            {"kind": "Secret", "metadata": {"name": "app-secret", "namespace": "default",
                                            "resourceVersion": "103"},
             "data": {"password": password}},
        ]
    )  # fmt: skip


def services() -> StaticServices:
    return StaticServices(
        [
            {
                "metadata": {"name": f"svc-{i}", "namespace": "default"},
                "spec": {
                    "clusterIP": f"10.96.0.{10 + i}",
                    "ports": [{"name": "http", "port": 80 + i, "protocol": "TCP"}],
                },
            }
            for i in range(6)
        ]
    )


def container(index: int) -> dict[str, Any]:
    return {
        "name": f"c{index}",
        "image": "busybox",
        "command": ["sh", "-c", "echo $(GREETING) $(POD_NAME)"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "CPU_LIMIT",
             "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "MODE",
             "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "mode"}}},
            {"name": "LEVEL",
             "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "level"}}},
            {"name": "PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": "app-secret", "key": "password"}}},
            {"name": "GREETING", "value": "hello $(POD_NAME) in $(POD_NS)"},
        ],
        "envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "CFG_"}],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/config"},
            {"name": "secret", "mountPath": "/etc/secret"},
            {"name": "podinfo", "mountPath": "/etc/podinfo"},
            {"name": "kube-api-access",
             "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        ],
    }  # fmt: skip


def pod(uid: int, *, unique: bool = False) -> dict[str, Any]:
    """Replica ``uid`` of the pod template; ``unique``: a template of its own (one more env
    var whose value differs per pod), which the env layer cannot reuse."""
    containers = [container(i) for i in range(3)]
    if unique:
        for c in containers:
            c["env"].append({"name": "BUILD", "value": f"build-{uid}"})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-{uid}",
            "namespace": "default",
            "uid": f"uid-{uid}",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"team": "checkout"},
        },
        "spec": {
            "nodeName": "bench",
            "serviceAccountName": "default",
            "containers": containers,
            "volumes": [
                {"name": "config", "configMap": {"name": "app-config"}},
                {"name": "secret", "secret": {"secretName": "app-secret"}},
                {"name": "podinfo", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                {"name": "kube-api-access", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
            ],
        },
    }  # fmt: skip


def pipelines(root: Path) -> dict[str, Pipeline]:
    backend = NullBackend()
    src, svc = sources(), services()
    return {
        "bare": compose(backend=backend),
        "memory recipe stack": compose(
            *standard_middlewares(sources=src, services=svc), backend=backend
        ),
        "process recipe stack (+ volumes on disk)": compose(
            *standard_middlewares(
                volumes_root=root, sources=src, services=svc, tokens=StaticTokens()
            ),
            backend=backend,
        ),
    }


async def measure(
    pipeline: Pipeline, start: int, count: int, *, unique: bool = False
) -> tuple[float, float]:
    """(wall µs, cpu µs) per CreatePod over ``count`` fresh pods."""
    pods = [pod(start + i, unique=unique) for i in range(count)]
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    for p in pods:
        await pipeline(CreatePod(pod=p, node=NODE))
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    return wall / count * 1e6, cpu / count * 1e6


async def main(ops: int, rounds: int) -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="vkcompose-bench-") as tmp:
        named = pipelines(Path(tmp))
        # replicas of one template, and pods each of its own template (the env layer's long
        # way: every pod resolved by DownwardAPI → ServiceLinks → ResolveConfigSources)
        runs = [(name, pipeline, False) for name, pipeline in named.items()]
        runs.insert(2, (UNIQUE, named["memory recipe stack"], True))
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in runs}
        uid = 0
        for _, pipeline, unique in runs:  # warm-up
            await measure(pipeline, uid, 50, unique=unique)
            uid += 50
        for _ in range(rounds):  # interleaved rounds: noise hits every pipeline alike
            for name, pipeline, unique in runs:
                results[name].append(await measure(pipeline, uid, ops, unique=unique))
                uid += ops
        table = Table(title=f"CreatePod cost, 3-container pod ({rounds} rounds x {ops} ops)")
        for column in ("pipeline", "wall µs/op (median)", "CPU µs/op (median)", "vs bare (CPU)"):
            table.add_column(
                column, justify="right" if "op" in column or "vs" in column else "left"
            )
        bare_cpu = statistics.median(c for _, c in results["bare"])
        for name, samples in results.items():
            wall = statistics.median(w for w, _ in samples)
            cpu = statistics.median(c for _, c in samples)
            table.add_row(name, f"{wall:.1f}", f"{cpu:.1f}", f"+{cpu - bare_cpu:.1f} µs")
        console.print(table)

        recorder = TimingRecorder()
        timed = instrument(named["process recipe stack (+ volumes on disk)"], recorder)
        for i in range(ops):
            await timed(CreatePod(pod=pod(uid + i), node=NODE))
        shares = Table(title="self time per layer (process recipe stack, timing hook on)")
        shares.add_column("layer")
        shares.add_column("µs/op", justify="right")
        shares.add_column("share", justify="right")
        rows = recorder.by_layer()
        total = sum(r.self_time for r in rows) or 1.0
        for row in sorted(rows, key=lambda r: -r.self_time):
            shares.add_row(row.layer, f"{row.self_time / ops * 1e6:.1f}",
                           f"{row.self_time / total:.0%}")  # fmt: skip
        console.print(shares)
        full = statistics.median(c for _, c in results["memory recipe stack"])
        alone = statistics.median(c for _, c in results[UNIQUE])
        console.print(
            f"target ≤ 200 µs per CreatePod: memory recipe stack {full:.0f} µs CPU for replicas "
            f"of a template, {alone:.0f} µs for pods each of its own template"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.ops, args.rounds)
