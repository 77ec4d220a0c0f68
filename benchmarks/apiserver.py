"""Embedded API server throughput: creates/s, status patches/s (a one-condition patch and a
kubelet-style one with conditions and container statuses), watch events/s (1 and 10
watchers), for memory and SQLite storage, over real HTTP with kubernetes_asyncio.

The server runs in its own process (as in production); the client runs here with several
concurrent keep-alive connections.

    python benchmarks/apiserver.py [--count 3000] [--concurrency 16] [--storage memory sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from server_process import TLS, apiserver_process  # noqa: E402


async def _client(kubeconfig: str, concurrency: int) -> Any:
    from kubernetes_asyncio import client, config

    cfg = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = concurrency * 2
    return client.ApiClient(cfg)


async def _run_parallel(n: int, concurrency: int, fn: Any) -> float:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await fn(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


def _pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"bench-{i}", "labels": {"app": "bench"}},
        "spec": {
            "nodeName": "bench-node",
            "containers": [
                {
                    "name": "c",
                    "image": "registry.local/app:1.0",
                    "env": [{"name": "N", "value": str(i)}],
                }
            ],
        },
    }


def _kubelet_status(i: int, round_: int) -> dict[str, Any]:
    """A status patch as the node controller sends it: phase, IPs, the standard conditions and
    container statuses (strategic merge, conditions merged by type)."""
    now = "2026-01-01T00:00:00Z"
    ready = "True" if round_ % 2 else "False"
    ip = f"10.0.{i // 256 % 256}.{i % 256}"
    return {
        "status": {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "conditions": [
                {"type": t, "status": ready, "lastTransitionTime": now, "lastProbeTime": None}
                for t in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": "c",
                    "image": "registry.local/app:1.0",
                    "imageID": "",
                    "containerID": f"sim://{i:016x}",
                    "ready": ready == "True",
                    "started": True,
                    "restartCount": round_,
                    "state": {"running": {"startedAt": now}},
                }
            ],
        },
    }


def _server_cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


async def measure(
    kubeconfig: str, count: int, concurrency: int, server_pid: int
) -> dict[str, float]:
    from kubernetes_asyncio import client

    api = await _client(kubeconfig, concurrency)
    out: dict[str, float] = {}
    try:
        v1 = client.CoreV1Api(api)
        pods = min(count, 500)

        async def create(i: int) -> None:
            resp = await v1.create_namespaced_pod("default", _pod(i), _preload_content=False)
            await resp.read()

        out["creates/s"] = pods / await _run_parallel(pods, concurrency, create)

        async def status(i: int) -> None:
            body = {
                "status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True" if i % 2 else "False"}],
                }
            }
            resp = await v1.patch_namespaced_pod_status(
                f"bench-{i % pods}", "default", body, _preload_content=False
            )
            await resp.read()

        cpu0 = _server_cpu(server_pid)
        out["status patches/s"] = count / await _run_parallel(count, concurrency, status)
        out["server CPU us per status patch"] = (_server_cpu(server_pid) - cpu0) / count * 1e6

        async def kubelet_status(i: int) -> None:
            body = _kubelet_status(i, i // pods)
            resp = await v1.patch_namespaced_pod_status(
                f"bench-{i % pods}", "default", body, _preload_content=False
            )
            await resp.read()

        cpu0 = _server_cpu(server_pid)
        out["kubelet-style status patches/s"] = count / await _run_parallel(
            count, concurrency, kubelet_status
        )
        out["server CPU us per kubelet-style patch"] = (
            (_server_cpu(server_pid) - cpu0) / count * 1e6
        )

        # the same patches from the node runtime's own lean client (raw aiohttp on the
        # kubeconfig's connection settings): what the server takes when the client is cheap
        from vkcompose.node.kube import connect, path_of

        kube = await connect(kubeconfig, pool_size=concurrency)
        try:

            async def lean_status(i: int) -> None:
                await kube.patch_status(
                    path_of("pods", f"bench-{i % pods}", namespace="default",
                            subresource="status"),
                    _kubelet_status(i, i // pods),
                )  # fmt: skip

            cpu0 = _server_cpu(server_pid)
            out["kubelet-style status patches/s (lean client)"] = count / await _run_parallel(
                count, concurrency, lean_status
            )
            out["server CPU us per patch (lean client)"] = (
                (_server_cpu(server_pid) - cpu0) / count * 1e6
            )
        finally:
            await kube.close()

        for watchers in (1, 10):
            out[
                f"watch events/s ({watchers} watcher{'s' if watchers > 1 else ''})"
            ] = await _watch_rate(v1, watchers, min(count, 2000), pods, concurrency)
    finally:
        await api.close()
    return out


async def _watch_rate(v1: Any, watchers: int, events: int, pods: int, concurrency: int) -> float:
    lst = await v1.list_namespaced_pod("default", limit=1, _preload_content=False)
    rv = json.loads(await lst.read())["metadata"]["resourceVersion"]
    ready = asyncio.Event()
    done = 0

    async def watch() -> None:
        nonlocal done
        resp = await v1.list_namespaced_pod(
            "default", watch=True, resource_version=rv, timeout_seconds=120, _preload_content=False
        )
        seen = 0
        ready.set()
        async for line in resp.content:
            if line.strip():
                seen += 1
                if seen >= events:
                    break
        resp.release()
        done += 1

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    await ready.wait()
    start = time.perf_counter()

    async def patch(i: int) -> None:
        body = {"metadata": {"annotations": {"seq": str(i)}}}
        resp = await v1.patch_namespaced_pod(
            f"bench-{i % pods}", "default", body, _preload_content=False
        )
        await resp.read()

    await _run_parallel(events, concurrency, patch)
    await asyncio.gather(*tasks)
    return events * watchers / (time.perf_counter() - start)


def _patch_worker(
    kubeconfig: str, names: list[str], count: int, concurrency: int, barrier: Any
) -> tuple[float, float]:
    """One client process: ``count`` status patches; returns its (start, end) wall times."""
    from kubernetes_asyncio import client

    async def run() -> tuple[float, float]:
        api = await _client(kubeconfig, concurrency)
        try:
            v1 = client.CoreV1Api(api)

            async def status(i: int) -> None:
                body = {
                    "status": {
                        "conditions": [{"type": "Ready", "status": "True" if i % 2 else "False"}]
                    }
                }
                resp = await v1.patch_namespaced_pod_status(
                    names[i % len(names)], "default", body, _preload_content=False
                )
                await resp.read()

            await status(0)  # connect before the clock starts
            barrier.wait()
            start = time.time()
            await _run_parallel(count, concurrency, status)
            return start, time.time()
        finally:
            await api.close()

    return asyncio.run(run())


def multi_process_patches(kubeconfig: str, processes: int, count: int, concurrency: int) -> float:
    """Status patches/s with ``processes`` client processes (aggregate wall-clock rate)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    barrier = manager.Barrier(processes)
    names = [f"bench-{i}" for i in range(100)]
    per = count // processes
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        futures = [
            pool.submit(_patch_worker, kubeconfig, names, per, concurrency, barrier)
            for _ in range(processes)
        ]
        spans = [f.result() for f in futures]
    manager.shutdown()
    return per * processes / (max(e for _, e in spans) - min(s for s, _ in spans))


def bench(storage: str, count: int, concurrency: int, processes: int = 1) -> dict[str, float]:
    with apiserver_process(storage) as (kubeconfig, pid):
        out = asyncio.run(measure(kubeconfig, count, concurrency, pid))
        if processes > 1:
            out[f"status patches/s ({processes} client procs)"] = multi_process_patches(
                kubeconfig, processes, count, concurrency
            )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=3000, help="patches per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel requests")
    parser.add_argument("--storage", nargs="+", default=["memory", "sqlite"])
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2,
        help="client processes for the extra status-patch measurement",
    )
    args = parser.parse_args()
    results = {
        s: bench(s, args.count, args.concurrency, args.client_processes) for s in args.storage
    }
    metrics = list(next(iter(results.values())))
    width = max(len(m) for m in metrics) + 2
    print(
        f"API server throughput (TLS={TLS}, concurrency={args.concurrency}, "
        f"count={args.count}, cpus={os.cpu_count()})"
    )
    print(
        "metric".ljust(width)
        + "".join(s.rjust(12) for s in args.storage)
        + ("   sqlite/memory" if {"memory", "sqlite"} <= set(args.storage) else "")
    )
    for m in metrics:
        row = m.ljust(width) + "".join(f"{results[s][m]:12.0f}" for s in args.storage)
        if {"memory", "sqlite"} <= set(args.storage):
            row += f"   {results['sqlite'][m] / results['memory'][m]:14.2f}"
        print(row)


if __name__ == "__main__":
    main()
