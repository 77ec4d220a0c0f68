"""Process backend: create→Running latency and vkcompose CPU overhead per idle pod.

    python benchmarks/process_backend.py [--isolation auto|namespaces|none] [--runs 30]

Latency is measured from ``create_pod`` to the notification carrying phase ``Running`` (the
moment the node would report it), for one pod at a time and for 50 pods created at once.
Overhead is the CPU time used by the vkcompose process and by the per-container shims while
50 pods run ``sleep`` and nothing else happens, divided by the number of pods.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import statistics
import tempfile
import time
from typing import Any

import anyio
import psutil

from vkcompose.backends.process import ProcessBackend


def pod(name: str, uid: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "bench", "uid": uid},
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Watcher:
    """Records when each pod was first reported Running."""

    def __init__(self) -> None:
        self.running: dict[str, float] = {}
        self.events: dict[str, anyio.Event] = {}

    def __call__(self, p: dict[str, Any]) -> None:
        name = p["metadata"]["name"]
        if p["status"]["phase"] == "Running" and name not in self.running:
            self.running[name] = time.perf_counter()
            self.events.setdefault(name, anyio.Event()).set()

    async def wait(self, name: str) -> None:
        await self.events.setdefault(name, anyio.Event()).wait()


async def latencies(
    backend: ProcessBackend, watcher: Watcher, batch: int, rounds: int
) -> list[float]:
    results: list[float] = []
    counter = 0
    for _ in range(rounds):
        pods = []
        for _ in range(batch):
            counter += 1
            pods.append(pod(f"p{batch}-{counter}", f"u{batch}-{counter}"))
        started: dict[str, float] = {}
        async with anyio.create_task_group() as tg:
            for p in pods:
                tg.start_soon(_create, backend, p, started)
        with anyio.fail_after(60):
            for p in pods:
                await watcher.wait(p["metadata"]["name"])
        for p in pods:
            name = p["metadata"]["name"]
            results.append(watcher.running[name] - started[name])
        async with anyio.create_task_group() as tg:
            for p in pods:
                tg.start_soon(backend.delete_pod, p, 0)
    return results


async def _create(backend: ProcessBackend, p: dict[str, Any], started: dict[str, float]) -> None:
    started[p["metadata"]["name"]] = time.perf_counter()
    await backend.create_pod(p)


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


async def idle_overhead(
    backend: ProcessBackend, watcher: Watcher, count: int, seconds: float
) -> tuple[float, float]:
    pods = [pod(f"idle-{i}", f"idle-{i}") for i in range(count)]
    for p in pods:
        await backend.create_pod(p)
    for p in pods:
        await watcher.wait(p["metadata"]["name"])
    await anyio.sleep(1.0)
    me = psutil.Process()
    instances = [inst for sup in backend._pods.values() for inst in sup.instances.values()]
    shims = [psutil.Process(inst.shim_pid) for inst in instances]
    namespaces = backend.isolation == "namespaces"
    inits = [psutil.Process(inst.target_pid) for inst in instances if namespaces]
    before_me, before_shims = cpu_seconds([me]), cpu_seconds(shims + inits)
    await anyio.sleep(seconds)
    after_me, after_shims = cpu_seconds([me]), cpu_seconds(shims + inits)
    async with anyio.create_task_group() as tg:
        for p in pods:
            tg.start_soon(backend.delete_pod, p, 0)
    return (after_me - before_me) / seconds / count, (after_shims - before_shims) / seconds / count


async def main(isolation: str, runs: int, idle_seconds: float) -> None:
    root = tempfile.mkdtemp(prefix="vkcompose-bench-")
    backend = ProcessBackend(root, isolation=isolation)
    watcher = Watcher()
    backend.notify_pods(watcher)
    try:
        await latencies(backend, watcher, 1, 3)  # warm-up (thread pool, page cache)
        single = await latencies(backend, watcher, 1, runs)
        fifty = await latencies(backend, watcher, 50, max(1, runs // 10))
        me, shims = await idle_overhead(backend, watcher, 50, idle_seconds)
    finally:
        await backend.aclose(stop_pods=True, grace=0)
        for proc in psutil.process_iter(["cmdline"]):  # anything left under our state dir
            if any(root in part for part in proc.info.get("cmdline") or []):
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
    print(f"process backend, isolation={backend.isolation}, {psutil.cpu_count()} CPUs")
    print(f"{'scenario':<28}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for label, values in (("create→Running, 1 pod", single), ("create→Running, 50 at once", fifty)):
        ms = [v * 1000 for v in values]
        print(
            f"{label:<28}{len(ms):>6}{statistics.median(ms):>10.1f}"
            f"{percentile(ms, 99):>10.1f}{max(ms):>10.1f}"
        )
    print(
        f"idle CPU per running pod: vkcompose {me * 100:.4f} % of a core, shims {shims * 100:.4f} %"
    )
    target = statistics.median(single) * 1000
    print(
        f"target p50 <= 100 ms (1 pod): {'met' if target <= 100 else 'NOT met'} ({target:.1f} ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolation", default="auto", choices=["auto", "namespaces", "none"])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    anyio.run(main, args.isolation, args.runs, args.idle_seconds)
