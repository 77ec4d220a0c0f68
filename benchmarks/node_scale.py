"""Pod controller at scale: N pods on one virtual node (simulated backend, zero delay).

The embedded API server runs in its own process (memory storage), as a real one would; the
virtual node, its simulated backend and the load generator run here. Printed, all from one run:

* **ceiling** — the API server's raw ``pods/status`` PATCH rate (the same status body the
  controller writes, same client stack, ``--workers`` concurrent requests, as many patches as
  the backlog has pods, so that both see the server's garbage collection at the same scale),
  measured first and after each backlog round, with the server's CPU per patch (compare
  it with the backlog's per pod);
* **backlog** — N pods created while the node is down, then the node starts: time until all
  are Running, pods/s, pods/s as a share of the ceiling (each pod needs ≥ 1 status patch), and
  the CPU time the API server and the node process spent per pod (robust to other load). A pod
  counts as Running when the server's answer to the node's status PATCH (the object it stored)
  says so; no extra watcher loads the server, whose ceiling has none either (a watch of the
  backlog cost the server about 0.05 ms per pod, 15 % of its work). One list checks
  afterwards that every pod is Running. There are ``--rounds`` backlogs (a fresh backend and
  fresh pods each): the machine's speed drifts by tens of percent within a minute, so each
  round's share uses the higher of the two ceilings measured around it, and the figure is the
  median share (the first round's bracket is wider: the live, memory and restart phases come
  before its second ceiling);
* **bare client** — after each backlog, the least any node does for the same backlog, with no
  controller and no backend: one list of the node's pods, a watch of them (decoded as the node
  decodes), one status PATCH per pod with the ceiling's body computed from the listed pod.
  Timed and measured as the backlog, between the same two ceilings; the backlog's pods/s as a
  share of the bare client's tells what the controller itself costs, apart from the machine;
* **live** — N more pods created at full speed while the node runs: total time, pods/s,
  p50/p99 create→Running (seen by a separate watch);
* **memory** — RSS growth per managed pod (controller + simulated backend);
* **restart** — the node restarts with 2N pods running: time to steady state and creates
  issued (must be 0).

    python benchmarks/node_scale.py [--pods 10000] [--workers 32] [--rounds 3] [--no-events]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server_process import TLS, apiserver_process  # noqa: E402

from vkcompose.backends.memory import MemoryBackend  # noqa: E402
from vkcompose.node.kube import Kube, connect, path_of  # noqa: E402
from vkcompose.node.runtime import NodeRuntime, virtual_node  # noqa: E402
from vkcompose.node.settings import VirtualNode  # noqa: E402
from vkcompose.node.spec_reuse import SpecReuse  # noqa: E402
from vkcompose.node.status import status_patch  # noqa: E402
from vkcompose.serve import tune_gc  # noqa: E402

NODE = "vk-bench"
BACKLOG_TIMEOUT = 300.0
"""A backlog not Running by then fails the run (its last PATCH answer may have been lost)."""


def _pod(name: str, node: str = NODE) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench"}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "app", "image": "registry.local/app:1.0"}],
            "tolerations": [{"operator": "Exists"}],
        },
    }


def _running_status(i: int) -> dict[str, Any]:
    now = "2026-01-01T00:00:00Z"
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "podIPs": [{"ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"}],
        "startTime": now,
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "containerStatuses": [
            {
                "name": "app",
                "image": "registry.local/app:1.0",
                "imageID": "",
                "containerID": f"sim://{i:016x}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
        ],
    }


async def _parallel(n: int, concurrency: int, fn: Any) -> float:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await fn(i)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return time.perf_counter() - start


async def ceiling(
    kube: Kube, n: int, concurrency: int, server: psutil.Process, prefix: str = "ceil"
) -> tuple[float, float]:
    """Raw status PATCHes/s on pods bound to a node nobody serves, and the API server's CPU
    milliseconds per patch. Each is the controller's first write of a Running status: the same
    body (``status_patch`` from nothing, with the UID precondition), answer not decoded."""
    uids: dict[int, str] = {}

    async def create(i: int) -> None:
        pod = await kube.create(
            path_of("pods", namespace="default"), _pod(f"{prefix}-{i}", "nobody")
        )
        uids[i] = pod["metadata"]["uid"]

    await _parallel(n, concurrency, create)
    bodies = [
        {"metadata": {"uid": uids[i]}, "status": status_patch({}, _running_status(i))}
        for i in range(n)
    ]

    async def patch(i: int) -> None:
        await kube.patch_status(
            path_of("pods", f"{prefix}-{i}", namespace="default", subresource="status"),
            bodies[i],
            decode=False,
        )

    cpu0 = _cpu(server)
    elapsed = await _parallel(n, concurrency, patch)
    cpu_ms = 1000 * (_cpu(server) - cpu0) / n
    # no kubelet serves "nobody": without a zero grace period the pods would stay, terminating,
    # in the server for the rest of the run
    await _delete_pods(kube, "nobody")
    return n / elapsed, cpu_ms


class FirstRunning:
    """When each pod was first seen Running."""

    def __init__(self) -> None:
        self.running: dict[str, float] = {}
        self.changed = anyio.Event()

    def seen(self, name: str) -> None:
        if name not in self.running:
            self.running[name] = time.perf_counter()
            self.changed.set()

    async def wait_running(self, names: set[str]) -> None:
        while not names <= self.running.keys():
            self.changed = anyio.Event()
            await self.changed.wait()


class ConfirmingKube(Kube):
    """The node's connection: a pod is seen Running when the server answers one of the node's
    status PATCHes with the stored pod in phase Running."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube.api_client)
        self.first = FirstRunning()

    async def request_raw(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        status, data = await super().request_raw(method, path, **kwargs)
        if status == 200 and method == "PATCH" and b'"phase":"Running"' in data:
            parts = path.split("/")  # …/namespaces/NS/pods/NAME/status
            if parts[-1] == "status" and parts[-3] == "pods":
                self.first.seen(parts[-2])
        return status, data


class Observer(FirstRunning):
    """Watches pods; records when each is first seen Running.

    It runs in the node's process, so it reads the watch lines without decoding them: the
    name and phase are found in the line's bytes (a decoded watch cost about a tenth of the
    node's CPU). A line whose name it cannot find is decoded.
    """

    def __init__(self, kube: Kube) -> None:
        super().__init__()
        self.kube = kube

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        doc = await self.kube.get(path_of("pods", namespace="default"), query={"limit": "1"})
        query = {
            "resourceVersion": doc["metadata"]["resourceVersion"],
            "fieldSelector": f"spec.nodeName={NODE}",
            "timeoutSeconds": "3600",
            "watch": "1",
        }
        async with self.kube.stream(path_of("pods", namespace="default"), query) as resp:
            assert resp.status == 200, await resp.read()
            task_status.started()
            rest = b""
            async for data in resp.content.iter_any():
                lines = (rest + data).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if b'"phase":"Running"' in line:
                        self.seen(_name_in(line))


def _name_in(line: bytes) -> str:
    """``metadata.name`` of the pod in a watch line: the server writes ``name`` first in
    ``metadata``; a line written otherwise is decoded."""
    start = line.find(b'"metadata":{"name":"')
    if start >= 0:
        start += len(b'"metadata":{"name":"')
        return line[start : line.index(b'"', start)].decode()
    return str(orjson.loads(line)["object"]["metadata"]["name"])


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(
    kubeconfig: str, server_pid: int, pods: int, workers: int, events: bool, rounds: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    server, me = psutil.Process(server_pid), psutil.Process()
    kube = await connect(kubeconfig)
    node_kube = ConfirmingKube(kube)
    ceilings: list[tuple[float, float]] = []
    backlogs: list[dict[str, float]] = []
    bares: list[dict[str, float]] = []
    try:
        # the node's connections open before it is timed, as the ceiling's client's did
        await _parallel(
            workers,
            workers,
            lambda i: node_kube.get(path_of("pods", namespace="default"), query={"limit": "1"}),
        )
        ceilings.append(await ceiling(kube, pods, workers, server))
        # the first round goes on: live pods, memory, restart
        async with MemoryBackend() as backend:
            node = VirtualNode(name=NODE, backend=backend, workers=workers, pod_events=events)
            rss0 = rss_mb()
            observer = Observer(kube)
            async with anyio.create_task_group() as tg:
                names = await _create_pods(kube, pods, "b")
                async with _backlog(kube, node_kube, node, names, server, me) as (rt, figures):
                    backlogs.append(figures)
                    node_kube.first.running.clear()  # not part of the node's memory
                    out["backlog: status patches/pod"] = rt.pods.stats.status_patches / pods
                    out["backlog: Events written / dropped"] = (
                        f"{rt.events.written:,} / {rt.events.dropped:,}"
                    )
                    await tg.start(observer.run)
                    # live: created while the node runs
                    live = {f"l-{i}" for i in range(pods)}
                    created: dict[str, float] = {}

                    async def create(i: int) -> None:
                        name = f"l-{i}"
                        created[name] = time.perf_counter()
                        await kube.create(path_of("pods", namespace="default"), _pod(name))

                    t1 = time.perf_counter()
                    await _parallel(pods, 16, create)
                    await observer.wait_running(live)
                    t_live = time.perf_counter() - t1
                    lat = sorted(observer.running[n] - created[n] for n in live)
                    out["live: time to all Running (s)"] = t_live
                    out["live: pods/s (incl. the client's creates)"] = pods / t_live
                    out["live: create→Running p50 (ms)"] = 1000 * statistics.median(lat)
                    out["live: create→Running p99 (ms)"] = 1000 * lat[int(len(lat) * 0.99) - 1]
                    await _settle(rt)
                    rss1 = rss_mb()
                    out["RSS growth per pod (KiB)"] = (rss1 - rss0) * 1024 / (2 * pods)
                    out["RSS total (MiB)"] = rss1
                    creates_before = backend.creates
                # restart with 2N pods
                t2 = time.perf_counter()
                async with virtual_node(node, kube=node_kube) as rt2:
                    t_ready = time.perf_counter() - t2
                    await _settle(rt2)
                    t_steady = time.perf_counter() - t2
                    out["restart: reconciled (s)"] = t_ready
                    out["restart: steady state (s)"] = t_steady
                    out["restart: creates issued"] = backend.creates - creates_before
                    out["restart: controller creates"] = rt2.pods.stats.creates
                    out["restart: adopted"] = rt2.pods.stats.adopted
                    out["restart: status patches"] = rt2.pods.stats.status_patches
                tg.cancel_scope.cancel()
        # the stopped node's pods are deleted with no grace period, so each phase starts from
        # the same server state
        await _delete_pods(kube, NODE)
        bares.append(await _bare(kube, node_kube, pods, workers, server, me, "bare1"))
        # more rounds, each a backlog on a fresh backend and a bare client between two ceilings
        for r in range(2, rounds + 1):
            ceilings.append(await ceiling(kube, pods, workers, server, prefix=f"ceil{r}"))
            async with MemoryBackend() as backend:
                node = VirtualNode(name=NODE, backend=backend, workers=workers, pod_events=events)
                names = await _create_pods(kube, pods, f"r{r}")
                async with _backlog(kube, node_kube, node, names, server, me) as (_, figures):
                    backlogs.append(figures)
            await _delete_pods(kube, NODE)
            bares.append(await _bare(kube, node_kube, pods, workers, server, me, f"bare{r}"))
        # the ceiling again after the runs: a busy machine moves it; each round's shares use
        # the higher of the ceilings measured just before and just after it
        ceilings.append(await ceiling(kube, pods, workers, server, prefix="ceil-last"))
    finally:
        await node_kube.close()
        await kube.close()
    summary: dict[str, Any] = {}
    summary["ceiling patches/s, each"] = " / ".join(f"{c:,.0f}" for c, _ in ceilings)
    summary["ceiling: API server CPU per patch (ms), each"] = " / ".join(
        f"{cpu:.2f}" for _, cpu in ceilings
    )
    shares = _shares(summary, "backlog", backlogs, ceilings)
    bare_shares = _shares(summary, "bare client", bares, ceilings)
    summary["backlog: slowest time to all Running (s)"] = max(f["time"] for f in backlogs)
    summary[f"backlog: share of ceiling, median of {len(shares)}"] = statistics.median(shares)
    summary[f"bare client: share of ceiling, median of {len(bare_shares)}"] = statistics.median(
        bare_shares
    )
    summary["backlog: share of the bare client's pods/s, median"] = statistics.median(
        b["pods/s"] / r["pods/s"] for b, r in zip(backlogs, bares, strict=True)
    )
    return {**summary, **out}


def _shares(
    summary: dict[str, Any],
    label: str,
    rounds: list[dict[str, float]],
    ceilings: list[tuple[float, float]],
) -> list[float]:
    """Each round's pods/s as a share of the higher ceiling around it; a summary line each."""
    shares = []
    for r, figures in enumerate(rounds):
        shares.append(figures["pods/s"] / max(ceilings[r][0], ceilings[r + 1][0]))
        summary[f"{label} round {r + 1}: time, pods/s, share, server / node CPU per pod"] = (
            f"{figures['time']:.2f} s, {figures['pods/s']:,.0f}/s, {shares[-1]:.0%}, "
            f"{figures['server ms']:.2f} / {figures['node ms']:.2f} ms"
        )
    return shares


async def _create_pods(kube: Kube, pods: int, prefix: str) -> set[str]:
    """Create ``pods`` pods bound to the (stopped) node; return their names."""
    await _parallel(
        pods, 16, lambda i: kube.create(path_of("pods", namespace="default"), _pod(f"{prefix}-{i}"))
    )
    return {f"{prefix}-{i}" for i in range(pods)}


@contextlib.asynccontextmanager
async def _backlog(
    kube: Kube,
    node_kube: ConfirmingKube,
    node: VirtualNode,
    names: set[str],
    server: psutil.Process,
    me: psutil.Process,
) -> AsyncIterator[tuple[NodeRuntime, dict[str, float]]]:
    """Start the node on its backlog ``names``; yield once all are Running (the node runs on)."""
    t0 = time.perf_counter()
    cpu0 = _cpu(server), _cpu(me)
    async with virtual_node(node, kube=node_kube) as rt:
        with anyio.fail_after(BACKLOG_TIMEOUT):
            await node_kube.first.wait_running(names)
        elapsed = time.perf_counter() - t0
        cpu1 = _cpu(server), _cpu(me)
        await _check_running(kube, names)
        yield rt, _figures(len(names), elapsed, cpu0, cpu1)


async def _bare(
    kube: Kube,
    node_kube: ConfirmingKube,
    pods: int,
    workers: int,
    server: psutil.Process,
    me: psutil.Process,
    prefix: str,
) -> dict[str, float]:
    """The least any node does for a backlog, with no controller and no backend: list the
    node's pods, watch them (lines decoded as the node decodes them), and PATCH each listed pod
    once with the Running status computed from it (the ceiling's body). Timed as the backlog:
    from the list until every pod is confirmed Running. Its pods are deleted afterwards."""
    names = await _create_pods(kube, pods, prefix)
    selector = {"fieldSelector": f"spec.nodeName={NODE}"}
    t0 = time.perf_counter()
    cpu0 = _cpu(server), _cpu(me)
    doc = await node_kube.get(path_of("pods"), query=selector)
    specs = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["spec"] for p in doc["items"]}
    query = {
        **selector,
        "resourceVersion": doc["metadata"]["resourceVersion"],
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "3600",
    }

    async def watch(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        decode = SpecReuse(specs.get)
        async with node_kube.watch(path_of("pods"), query, decode=decode) as events:
            task_status.started()
            async for _ in events:
                pass

    async def patch(i: int) -> None:
        pod = doc["items"][i]
        meta = pod["metadata"]
        number = int(meta["name"].rsplit("-", 1)[1])
        body = {
            "metadata": {"uid": meta["uid"]},
            "status": status_patch(pod.get("status") or {}, _running_status(number)),
        }
        await node_kube.patch_status(
            path_of("pods", meta["name"], namespace=meta["namespace"], subresource="status"),
            body,
            decode=False,
        )

    async with anyio.create_task_group() as tg:
        await tg.start(watch)
        await _parallel(len(doc["items"]), workers, patch)
        with anyio.fail_after(BACKLOG_TIMEOUT):
            await node_kube.first.wait_running(names)
        elapsed = time.perf_counter() - t0
        cpu1 = _cpu(server), _cpu(me)
        tg.cancel_scope.cancel()
    node_kube.first.running.clear()
    await _check_running(kube, names)
    await _delete_pods(kube, NODE)
    return _figures(pods, elapsed, cpu0, cpu1)


def _figures(
    pods: int, elapsed: float, cpu0: tuple[float, float], cpu1: tuple[float, float]
) -> dict[str, float]:
    """A round's figures from its pod count, time and (server, node) CPU before and after."""
    return {
        "time": elapsed,
        "pods/s": pods / elapsed,
        "server ms": 1000 * (cpu1[0] - cpu0[0]) / pods,
        "node ms": 1000 * (cpu1[1] - cpu0[1]) / pods,
    }


async def _delete_pods(kube: Kube, node: str) -> None:
    """Delete every bench pod bound to ``node`` at once (grace period 0)."""
    await kube.request(
        "DELETE",
        path_of("pods", namespace="default"),
        query={"labelSelector": "app=bench", "fieldSelector": f"spec.nodeName={node}"},
        body={"gracePeriodSeconds": 0},
    )


async def _check_running(kube: Kube, names: set[str]) -> None:
    """Fail unless the API server lists every pod of ``names`` as Running."""
    doc = await kube.get(path_of("pods", namespace="default"), query={"labelSelector": "app=bench"})
    running = {p["metadata"]["name"] for p in doc["items"] if p["status"].get("phase") == "Running"}
    if not names <= running:
        raise SystemExit(f"{len(names - running)} pods confirmed Running are not listed as Running")


async def _settle(rt: NodeRuntime) -> None:
    quiet = 0
    while quiet < 5:
        await anyio.sleep(0.05)
        # Events are not waited for: they are written at the kubelet's 50/s (bursts of 100)
        quiet = quiet + 1 if rt.pods.is_idle() else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--no-events", action="store_true", help="no Normal lifecycle Events")
    parser.add_argument(
        "--rounds", type=int, default=3, help="backlog rounds, each between two ceilings"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    tune_gc()  # the node runs as under `vkcompose run`
    with apiserver_process("memory") as (kubeconfig, pid):
        results = anyio.run(
            measure, kubeconfig, pid, args.pods, args.workers, not args.no_events, args.rounds
        )
    print(
        f"Pod controller scale (pods={args.pods}, workers={args.workers}, "
        f"events={'off' if args.no_events else 'on'}, TLS={TLS}, cpus={os.cpu_count()})"
    )
    width = max(len(k) for k in results) + 2
    for key, value in results.items():
        if isinstance(value, str):
            shown = value
        elif "share" in key:
            shown = f"{value:.0%}"
        else:
            shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        print(key.ljust(width) + shown.rjust(12))


if __name__ == "__main__":
    main()
