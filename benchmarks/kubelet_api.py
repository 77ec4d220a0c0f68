"""Kubelet API figures: log streaming throughput (``follow``) and exec round-trip latency over
SPDY/3.1 and WebSocket (v5), against the kubelet API on loopback TLS (no auth), simulated
backend.

    python benchmarks/kubelet_api.py [--log-mib 256] [--execs 300]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio

from vkcompose.backends.memory import MemoryBackend
from vkcompose.kubelet.client import spdy_exec, websocket_exec
from vkcompose.kubelet.server import KubeletServer
from vkcompose.kubelet.tls import self_signed, server_ssl_context
from vkcompose.ops import LogOptions
from vkcompose.pipeline import compose

CHUNK = b"x" * 1023 + b"\n"


class FloodLogs(MemoryBackend):
    """Logs of ``total`` bytes, produced as fast as the client reads them."""

    total = 256 << 20

    async def read_logs(  # type: ignore[override]
        self, namespace: str, name: str, container: str, options: LogOptions, /
    ) -> AsyncIterator[bytes]:
        self._container(namespace, name, container)
        block = CHUNK * 64

        async def stream() -> AsyncIterator[bytes]:
            sent = 0
            while sent < self.total:
                yield block
                sent += len(block)

        return stream()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(log_mib: int, execs: int) -> None:
    async with FloodLogs() as backend:
        backend.total = log_mib << 20
        await backend.create_pod(
            {
                "metadata": {"name": "web", "namespace": "default", "uid": "u"},
                "spec": {"containers": [{"name": "app"}]},
            }
        )
        await backend.settle()
        server = KubeletServer(compose(backend=backend), ["vk-bench"], auth=None)
        files = self_signed("vk-bench", directory=Path(tempfile.mkdtemp()))
        client_tls = ssl.create_default_context(cafile=str(files.cert))
        async with server.running(server_ssl_context(files)):
            base = server.url
            # ---------------------------------------------------------- log throughput
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=client_tls)
            ) as session:
                url = f"{base}/containerLogs/default/web/app?follow=true"
                start = time.perf_counter()
                received = 0
                async with session.get(url) as response:
                    async for chunk in response.content.iter_any():
                        received += len(chunk)
                elapsed = time.perf_counter() - start
            print(
                f"log follow: {received / 2**20:.0f} MiB in {elapsed:.2f} s "
                f"= {received / 2**20 / elapsed:.0f} MiB/s"
            )
            # ---------------------------------------------------------- exec latency
            exec_url = f"{base}/exec/default/web/app?command=echo&command=hi&stdout=true"
            rows = []
            for name in ("SPDY/3.1", "WebSocket v5"):
                samples = []
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=client_tls)
                ) as session:
                    for _ in range(execs):
                        start = time.perf_counter()
                        if name.startswith("SPDY"):
                            result = await spdy_exec(exec_url, client_tls)
                        else:
                            result = await websocket_exec(exec_url, client_tls, session=session)
                        samples.append((time.perf_counter() - start) * 1000)
                        assert result.stdout == b"hi\n"
                rows.append(
                    (name, statistics.median(samples), percentile(samples, 0.99), len(samples))
                )
            print(f"{'exec echo round trip':<22}{'p50 ms':>9}{'p99 ms':>9}{'n':>6}")
            for name, p50, p99, n in rows:
                print(f"{name:<22}{p50:>9.2f}{p99:>9.2f}{n:>6}")
            print(f"ratio WebSocket/SPDY p50: {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log-mib", type=int, default=256)
    parser.add_argument("--execs", type=int, default=300)
    args = parser.parse_args()
    anyio.run(main, args.log_mib, args.execs, backend="asyncio")
