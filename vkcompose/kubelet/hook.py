"""The hook that serves the kubelet API of a running virtual node.

``run_virtual_node(node, kubelet=kubelet_hook(...))`` starts it once the nodes are registered::

    hook = kubelet_hook(tls=TLSFiles(cert, key), client_ca=ca_path)

It listens on the node's ``internal_ip`` and ``kubelet_port`` (what registration advertises in
``status.daemonEndpoints.kubeletEndpoint.Port``), authenticates with TokenReview and authorizes
with SubjectAccessReview through the node's own API connection, and runs every request through
the node's pipeline. Without ``tls`` a self-signed certificate is generated.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio

from vkcompose.kubelet.auth import KubeletAuth, ReviewClient
from vkcompose.kubelet.server import KubeletServer
from vkcompose.kubelet.spdy import SessionConfig
from vkcompose.kubelet.tls import TLSFiles, self_signed, server_ssl_context
from vkcompose.ops import NodeInfo

__all__ = ["NodeSettings", "RunningNode", "cluster_ca", "kubelet_hook"]

log = logging.getLogger(__name__)


class NodeSettings(Protocol):
    """What the hook reads from a node's settings (``VirtualNode``)."""

    internal_ip: str
    kubelet_port: int

    def node_names(self) -> list[str]:
        """Names of the node(s)."""
        ...

    def node_info(self, node_name: str) -> NodeInfo:
        """Node facts for ops."""
        ...


class RunningNode(Protocol):
    """What the hook reads from a running node (``NodeRuntime``)."""

    @property
    def node(self) -> NodeSettings:
        """The node's settings."""
        ...

    @property
    def pipeline(self) -> Any:
        """The node's pipeline."""
        ...

    @property
    def kube(self) -> ReviewClient:
        """The node's API connection."""
        ...


def kubelet_hook(
    *,
    tls: TLSFiles | Callable[[Sequence[str], str], TLSFiles] | None = None,
    client_ca: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    insecure_allow_anonymous: bool = False,
    session_config: SessionConfig | None = None,
    on_ready: Callable[[KubeletServer], None] | None = None,
) -> Callable[[RunningNode], Coroutine[Any, Any, None]]:
    """A kubelet hook for ``run_virtual_node``.

    ``tls`` is the serving pair, or a function ``(node_names, ip) -> TLSFiles`` issuing one;
    ``None`` generates a self-signed pair. ``client_ca`` verifies client certificates (the API
    server's kubelet-client certificate); by default the CA of the node's API connection.
    ``host``/``port`` default to the node's ``internal_ip``/``kubelet_port``. ``on_ready``
    receives the listening server. A port that cannot be bound is logged as an error; the node
    keeps running without its kubelet API.
    """

    async def serve(runtime: RunningNode) -> None:
        node = runtime.node
        names = node.node_names()
        bind_host = host or node.internal_ip
        generated: Path | None = None
        if tls is None:
            files = self_signed(names[0], _ips(node.internal_ip))
            generated = files.cert.parent
        elif isinstance(tls, TLSFiles):
            files = tls
        else:
            files = tls(names, node.internal_ip)
        ca = client_ca if client_ca is not None else cluster_ca(runtime.kube)
        auth = KubeletAuth(
            names[0], reviews=runtime.kube, insecure_allow_anonymous=insecure_allow_anonymous
        )
        server = KubeletServer(
            runtime.pipeline,
            names,
            auth=auth,
            node_info=node.node_info,
            session_config=session_config or SessionConfig(),
        )
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(_cleanup, generated)
            context = server_ssl_context(files, ca)
            bind_port = node.kubelet_port if port is None else port
            try:
                running = await stack.enter_async_context(
                    server.running(context, host=bind_host, port=bind_port)
                )
            except OSError as exc:
                log.error(
                    "kubelet API of %s not served: cannot listen on %s:%d (%s)",
                    names[0],
                    bind_host,
                    bind_port,
                    exc.strerror or exc,
                )
                return
            if on_ready is not None:
                on_ready(running)
            await anyio.sleep_forever()

    return serve


def _cleanup(directory: Path | None) -> None:
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def cluster_ca(kube: object) -> Path | None:
    """The CA file of the node's API connection (``ssl_ca_cert`` of its kubernetes_asyncio
    configuration), used to verify client certificates when no client CA is given: clusters
    usually sign the API server's kubelet-client certificate with that CA."""
    configuration = getattr(getattr(kube, "api_client", None), "configuration", None)
    path = getattr(configuration, "ssl_ca_cert", None)
    return Path(path) if isinstance(path, str) and path and Path(path).is_file() else None


def _ips(ip: str) -> list[str]:
    return [ip] if ip in ("127.0.0.1", "::1") else [ip, "127.0.0.1"]
