"""Blocking entry points behind ``vkcompose run``, ``up`` and ``apiserver``.

They wire the embedded API server, the node runtime and the live view together; the CLI only
parses arguments and calls them. Ctrl-C stops cleanly: pods are left as a kubelet leaves them
(running), and the next start re-adopts them.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from vkcompose.apiserver import APIServer, embedded_apiserver
from vkcompose.kubelet.hook import kubelet_hook
from vkcompose.kubelet.tls import TLSFiles
from vkcompose.middlewares.metrics import Metrics, serve_metrics
from vkcompose.node.runtime import KubeletHook, run_virtual_node
from vkcompose.node.settings import VirtualNode

log = logging.getLogger(__name__)


SERVER_GC_THRESHOLDS = (50_000, 20, 10)
"""Collector thresholds of the long-running commands (Python's default is ``(700, 10, 10)``).

A node or API server keeps every pod in memory, so each collection of the older generations
walks tens of thousands of live dicts, while the garbage of a request is freed by reference
counting. Collecting the youngest generation every 50,000 allocations instead of every 700
cut the node's CPU per pod by about a quarter in ``benchmarks/node_scale.py``."""


def tune_gc(thresholds: tuple[int, int, int] = SERVER_GC_THRESHOLDS) -> None:
    """Set the process's collector thresholds for a long-running server (see
    :data:`SERVER_GC_THRESHOLDS`); ``vkcompose run``, ``up`` and ``apiserver`` call it.

    Process-wide, so a program embedding a node decides for itself whether to call it.
    """
    gc.set_threshold(*thresholds)


def _blocking(main: Callable[[], Awaitable[None]], console: Console) -> None:
    """Run ``main`` on asyncio until it ends or SIGINT/SIGTERM arrives."""
    tune_gc()

    async def guarded() -> None:
        async with anyio.create_task_group() as tg:

            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        console.print(f"received {signal.Signals(signum).name}, stopping …")
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch_signals)
            await main()
            tg.cancel_scope.cancel()

    anyio.run(guarded, backend="asyncio")


def free_kubelet_port(node: VirtualNode, console: Console) -> None:
    """Keep ``node.kubelet_port`` if it can be bound on the node's address, else pick a free one
    (several local nodes on one host cannot all listen on 10250). Port 0 means any free port."""
    host = node.internal_ip
    with socket.socket() as probe:
        try:
            if node.kubelet_port:
                probe.bind((host, node.kubelet_port))
                return
        except OSError:
            pass
        probe.bind((host, 0))
        chosen = int(probe.getsockname()[1])
    if node.kubelet_port:
        console.print(f"kubelet port {node.kubelet_port} is busy on {host}; using {chosen}")
    node.kubelet_port = chosen


def serve_node_metrics(node: VirtualNode, port: int | None, console: Console) -> list[Any]:
    """Serve the Prometheus registries of the node's ``Metrics`` middlewares on ``port``."""
    if port is None:
        return []
    registries = [m.registry for m in node.middlewares if isinstance(m, Metrics)]
    if not registries:
        console.print("the recipe has no Metrics middleware: nothing to serve")
        return []
    server = serve_metrics(port, registries[0])
    console.print(f"metrics on {server.url}")
    return [server]


def run_node_blocking(
    node: VirtualNode,
    *,
    kubeconfig: Path | None,
    console: Console,
    metrics_port: int | None = None,
) -> None:
    """Run ``node`` against the cluster of ``kubeconfig`` until Ctrl-C."""
    servers = serve_node_metrics(node, metrics_port, console)

    async def main() -> None:
        names = ", ".join(node.node_names()[:5]) + (" …" if node.replicas > 5 else "")
        console.print(f"running virtual node(s) {names}; Ctrl-C to stop")
        await run_virtual_node(node, kubeconfig=kubeconfig, kubelet=kubelet_hook())

    try:
        _blocking(main, console)
    finally:
        for server in servers:
            server.close()


def apiserver_blocking(*, data_dir: Path, storage: str, port: int, console: Console) -> None:
    """Run only the embedded API server until Ctrl-C."""

    data_dir = data_dir.resolve()

    async def main() -> None:
        async with embedded_apiserver(data_dir, storage=storage, port=port) as server:
            _announce(server, console)
            await anyio.sleep_forever()

    _blocking(main, console)


def _announce(server: APIServer, console: Console) -> None:
    console.print(f"API server listening on [bold]{server.url}[/bold]")
    console.print(f"kubeconfig: [bold]{server.kubeconfig_path}[/bold]")
    console.print(f"  export KUBECONFIG={server.kubeconfig_path}\n  kubectl get nodes,pods -A")


def up_blocking(
    node: VirtualNode,
    *,
    data_dir: Path,
    port: int,
    tui: bool,
    console: Console,
    metrics_port: int | None = None,
) -> None:
    """Start the embedded API server (SQLite in ``data_dir``), then ``node`` against it."""

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        async with embedded_apiserver(data_dir, storage="sqlite", port=port) as server:
            _announce(server, console)
            client = await server.api_client()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_run_node, node, client, server)
                    view = _live_table if tui else _log_changes
                    await view(client, console)
                    tg.cancel_scope.cancel()
            finally:
                await client.close()

    free_kubelet_port(node, console)
    servers = serve_node_metrics(node, metrics_port, console)
    try:
        _blocking(main, console)
    finally:
        for server in servers:
            server.close()


def embedded_kubelet(server: APIServer) -> KubeletHook:
    """The kubelet API hook for nodes of the embedded API server: serving certificates from its
    CA, client certificates (its kubelet-client one) verified against that CA."""

    def issue(names: Any, ip: str) -> TLSFiles:
        pair = server.pki.issue_kubelet_serving(names[0], sorted({ip, "127.0.0.1"}))
        return TLSFiles(pair.cert_path, pair.key_path)

    return kubelet_hook(tls=issue, client_ca=server.pki.ca_path)


async def _run_node(node: VirtualNode, client: Any, server: APIServer) -> None:
    await run_virtual_node(node, api_client=client, kubelet=embedded_kubelet(server))


async def _list(client: Any, path: str) -> list[dict[str, Any]]:
    response = await client.call_api(
        path,
        "GET",
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    body = await response[0].read() if isinstance(response, tuple) else await response.read()
    items: list[dict[str, Any]] = orjson.loads(body).get("items") or []
    return items


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return ""
    then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _pod_state(pod: dict[str, Any]) -> str:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        waiting = (status.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return str((pod.get("status") or {}).get("phase", "Pending"))


def _node_state(node: dict[str, Any]) -> str:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return {"True": "Ready", "False": "NotReady"}.get(condition.get("status"), "Unknown")
    return "Unknown"


async def _snapshot(client: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    nodes = await _list(client, "/api/v1/nodes")
    pods = await _list(client, "/api/v1/pods")
    return nodes, pods


def _render(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> Group:
    node_table = Table(title="nodes", expand=True)
    for column in ("name", "status", "pods", "age"):
        node_table.add_column(column)
    per_node: dict[str, int] = {}
    for pod in pods:
        name = (pod.get("spec") or {}).get("nodeName") or ""
        per_node[name] = per_node.get(name, 0) + 1
    for node in nodes[:30]:
        meta = node["metadata"]
        node_table.add_row(
            meta["name"],
            _node_state(node),
            str(per_node.get(meta["name"], 0)),
            _age(meta.get("creationTimestamp")),
        )
    pod_table = Table(title=f"pods ({len(pods)})", expand=True)
    for column in ("namespace", "name", "status", "node", "ip", "age"):
        pod_table.add_column(column)
    for pod in pods[:40]:
        meta = pod["metadata"]
        pod_table.add_row(
            meta.get("namespace", ""),
            meta["name"],
            _pod_state(pod),
            (pod.get("spec") or {}).get("nodeName") or "",
            (pod.get("status") or {}).get("podIP") or "",
            _age(meta.get("creationTimestamp")),
        )
    return Group(node_table, pod_table)


async def _live_table(client: Any, console: Console) -> None:
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while True:
            with contextlib.suppress(Exception):
                live.update(_render(*await _snapshot(client)))
            await anyio.sleep(1)


async def _log_changes(client: Any, console: Console) -> None:
    seen: dict[str, str] = {}
    while True:
        try:
            nodes, pods = await _snapshot(client)
        except Exception as error:  # keep the view alive while the server is busy
            log.debug("snapshot failed: %s", error)
            await anyio.sleep(1)
            continue
        current = {f"node/{n['metadata']['name']}": _node_state(n) for n in nodes}
        current.update(
            {
                f"pod/{p['metadata'].get('namespace')}/{p['metadata']['name']}": _pod_state(p)
                for p in pods
            }
        )
        for key, state in sorted(current.items()):
            if seen.get(key) != state:
                console.print(f"{key} {state}", highlight=False)
        for key in sorted(set(seen) - set(current)):
            console.print(f"{key} gone", highlight=False)
        seen = current
        await anyio.sleep(1)


@contextlib.asynccontextmanager
async def local_cluster(
    node: VirtualNode, *, data_dir: Path | None = None, storage: str = "memory"
) -> AsyncIterator[APIServer]:
    """An embedded API server with ``node`` running against it (for tests and benchmarks)."""
    async with embedded_apiserver(data_dir, storage=storage) as server:
        client = await server.api_client()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(
                    functools.partial(
                        run_virtual_node, node, api_client=client, kubelet=embedded_kubelet(server)
                    )
                )
                yield server
                tg.cancel_scope.cancel()
        finally:
            await client.close()


__all__ = [
    "apiserver_blocking",
    "embedded_kubelet",
    "local_cluster",
    "run_node_blocking",
    "up_blocking",
]
