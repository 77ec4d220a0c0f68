"""Many virtual nodes in one process: registration time, Lease renewals on time, RSS.

The embedded API server runs in its own process; one :class:`VirtualNode` with ``replicas=N``
runs here (one shared connection pool, one lease scheduler task, one fleet pod watch). After
registration the fleet runs for ``--seconds``; a renewal is *late* when it completes more than
one renew interval after it was due (the Lease would still be valid: it lasts 4 intervals).
An independent check reads every Lease at the end: its ``renewTime`` must be younger than the
lease duration.

    python benchmarks/node_fleet.py [--nodes 1000] [--seconds 35] [--renew 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server_process import TLS, apiserver_process  # noqa: E402

from vkcompose.backends.memory import MemoryBackend  # noqa: E402
from vkcompose.node.heartbeat import LEASE_API  # noqa: E402
from vkcompose.node.kube import connect, path_of  # noqa: E402
from vkcompose.node.runtime import virtual_node  # noqa: E402
from vkcompose.node.settings import VirtualNode  # noqa: E402


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


async def measure(kubeconfig: str, nodes: int, seconds: float, renew: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kube = await connect(kubeconfig)
    try:
        async with MemoryBackend() as backend:
            node = VirtualNode(
                name="fleet",
                backend=backend,
                replicas=nodes,
                name_template="{name}-{index:04d}",
                lease_renew_seconds=renew,
                pod_events=False,
            )
            rss0 = rss_mb()
            t0 = time.perf_counter()
            async with virtual_node(node, kube=kube) as rt:
                out["registration of all nodes (s)"] = time.perf_counter() - t0
                out["tasks after start"] = len(asyncio.all_tasks())
                await anyio.sleep(seconds)
                stats = rt.nodes.stats
                out["lease renewals"] = stats.renewals
                out["expected renewals (nodes * seconds / renew)"] = int(nodes * seconds / renew)
                out["late renewals (> 1 interval)"] = stats.late_renewals
                out["max lateness (s)"] = stats.max_lateness
                out["renewal failures"] = stats.failures
                doc = await kube.get(
                    path_of("leases", namespace="kube-node-lease", group_version=LEASE_API)
                )
                now = datetime.now(UTC)
                stale = 0
                oldest = 0.0
                for lease in doc["items"]:
                    renewed = datetime.strptime(
                        lease["spec"]["renewTime"], "%Y-%m-%dT%H:%M:%S.%fZ"
                    ).replace(tzinfo=UTC)
                    age = (now - renewed).total_seconds()
                    oldest = max(oldest, age)
                    if age > lease["spec"]["leaseDurationSeconds"]:
                        stale = stale + 1
                out["leases in API"] = len(doc["items"])
                out["expired leases at the end"] = stale
                out["oldest renewTime at the end (s)"] = oldest
                rss1 = rss_mb()
                out["RSS growth (MiB)"] = rss1 - rss0
                out["RSS per node (KiB)"] = (rss1 - rss0) * 1024 / nodes
                out["CPU time of this process (s)"] = sum(psutil.Process().cpu_times()[:2])
    finally:
        await kube.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=35.0)
    parser.add_argument("--renew", type=float, default=10.0, help="lease renew interval")
    args = parser.parse_args()
    with apiserver_process("memory") as (kubeconfig, _pid):
        results = anyio.run(measure, kubeconfig, args.nodes, args.seconds, args.renew)
    print(
        f"Virtual node fleet (nodes={args.nodes}, run={args.seconds:g}s, "
        f"renew every {args.renew:g}s, TLS={TLS}, cpus={os.cpu_count()})"
    )
    width = max(len(k) for k in results) + 2
    for key, value in results.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        print(key.ljust(width) + shown.rjust(12))


if __name__ == "__main__":
    main()
