"""pytest helpers: a virtual node serving its kubelet API against the embedded API server.

``kubelet_cluster`` runs an in-memory API server and one node (the simulated backend unless
another is given) whose kubelet API is TLS-served with a certificate issued by the API server's
CA — so ``kubectl logs/exec/attach/port-forward`` go kubectl → API server → kubelet as in a real
cluster. :meth:`KubeletCluster.kubectl` runs the pinned kubectl binary against it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import attrs
import pytest

from vkcompose.apiserver import APIServer, embedded_apiserver
from vkcompose.backends.memory import MemoryBackend
from vkcompose.kubelet.hook import kubelet_hook
from vkcompose.kubelet.server import KubeletServer
from vkcompose.kubelet.spdy import SessionConfig
from vkcompose.kubelet.tls import TLSFiles
from vkcompose.node.kube import Kube, path_of
from vkcompose.node.runtime import NodeRuntime, virtual_node
from vkcompose.node.settings import VirtualNode

__all__ = ["KubeletCluster", "free_port", "kubectl_binary", "kubelet_cluster", "running_kubelet"]


def kubectl_binary() -> str:
    """The pinned kubectl next to the Python interpreter (falls back to ``$PATH``)."""
    found = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl not found")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@attrs.define
class KubeletCluster:
    """An API server, a running virtual node and its kubelet API."""

    apiserver: APIServer
    runtime: NodeRuntime
    kubelet: KubeletServer
    kube: Kube
    backend: Any

    @property
    def node_name(self) -> str:
        """The node's name."""
        return self.runtime.node.name

    async def create_pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        containers: Sequence[str] = ("app",),
        running: bool = True,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a pod bound to the node; wait until it is Running (when ``running``)."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {
                "nodeName": self.node_name,
                "containers": [{"name": c, "image": "busybox:1"} for c in containers],
                "tolerations": [{"operator": "Exists"}],
            },
        }
        created: dict[str, Any] = await self.kube.create(path_of("pods", namespace=namespace), pod)
        if not running:
            return created
        with anyio.fail_after(30):
            while True:
                current: dict[str, Any] = await self.kube.get(
                    path_of("pods", name, namespace=namespace)
                )
                if (current.get("status") or {}).get("phase") == "Running":
                    return current
                await anyio.sleep(0.02)

    def kubectl_env(self, **extra: str) -> dict[str, str]:
        """Environment for kubectl: this cluster's kubeconfig, a private HOME."""
        home = self.apiserver.data_dir / "home"
        home.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "KUBECONFIG": str(self.apiserver.kubeconfig_path),
            **extra,
        }

    def kubectl_args(self, *args: str) -> list[str]:
        """The full kubectl command line for ``args``."""
        cache = self.apiserver.data_dir / "kubectl-cache"
        return [kubectl_binary(), f"--cache-dir={cache}", *args]

    async def kubectl(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> tuple[int, bytes, bytes]:
        """Run kubectl to completion; return (exit code, stdout, stderr)."""
        result = await anyio.run_process(
            self.kubectl_args(*args),
            input=stdin,
            check=False,
            env=self.kubectl_env(**(env or {})),
        )
        return result.returncode, result.stdout, result.stderr


@contextlib.asynccontextmanager
async def running_kubelet(
    apiserver: APIServer,
    backend: Any,
    *,
    name: str = "vk-kubelet",
    insecure_allow_anonymous: bool = False,
    session_config: SessionConfig | None = None,
    **settings: Any,
) -> AsyncIterator[KubeletCluster]:
    """Run a virtual node of ``backend`` with its kubelet API against ``apiserver``."""
    port = free_port()
    node = VirtualNode(name=name, backend=backend, kubelet_port=port, taints=[], **settings)
    pair = apiserver.pki.issue_kubelet_serving(name)
    ready = anyio.Event()
    servers: list[KubeletServer] = []

    def on_ready(server: KubeletServer) -> None:
        servers.append(server)
        ready.set()

    hook = kubelet_hook(
        tls=TLSFiles(pair.cert_path, pair.key_path),
        client_ca=apiserver.pki.ca_path,
        insecure_allow_anonymous=insecure_allow_anonymous,
        session_config=session_config,
        on_ready=on_ready,
    )
    client = await apiserver.api_client()
    try:
        async with virtual_node(node, api_client=client, kubelet=hook) as runtime:
            with anyio.fail_after(30):
                await ready.wait()
            yield KubeletCluster(apiserver, runtime, servers[0], runtime.kube, backend)
    finally:
        await client.close()


@pytest.fixture
async def kubelet_cluster() -> AsyncIterator[KubeletCluster]:
    """An embedded API server and a simulated virtual node serving its kubelet API."""
    async with (
        embedded_apiserver(bookmark_interval=0.2) as server,
        MemoryBackend(log_interval=0.05) as backend,
        running_kubelet(server, backend) as cluster,
    ):
        yield cluster
