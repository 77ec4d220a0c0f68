"""The kubelet hook as ``vkcompose up`` wires it (serve.local_cluster), and its failure modes."""

from __future__ import annotations

import socket

import anyio
import pytest

from vkcompose.backends.memory import MemoryBackend
from vkcompose.kubelet.hook import kubelet_hook
from vkcompose.node.kube import Kube, path_of
from vkcompose.node.runtime import virtual_node
from vkcompose.node.settings import VirtualNode
from vkcompose.serve import local_cluster
from vkcompose.testing.kubelet import free_port, kubectl_binary

pytestmark = pytest.mark.anyio


def pod(name: str, node: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox:1"}]},
    }


async def test_local_cluster_serves_exec_and_logs_with_embedded_ca() -> None:
    async with MemoryBackend(log_interval=0.05) as backend:
        node = VirtualNode(name="vk-local", backend=backend, kubelet_port=free_port(), taints=[])
        async with local_cluster(node) as server:
            client = await server.api_client()
            try:
                kube = Kube(client)
                await kube.create(path_of("pods", namespace="default"), pod("web", "vk-local"))
                env = {"KUBECONFIG": str(server.kubeconfig_path), "HOME": str(server.data_dir)}
                with anyio.fail_after(30):
                    while True:  # the pod starts and the kubelet API comes up
                        result = await anyio.run_process(
                            [kubectl_binary(), "exec", "web", "--", "echo", "up"],
                            check=False,
                            env=env,
                        )
                        if result.returncode == 0:
                            break
                        await anyio.sleep(0.05)
                assert result.stdout == b"up\n"
            finally:
                await client.close()


async def test_port_in_use_is_logged_and_the_node_keeps_running(
    apiserver: object, caplog: pytest.LogCaptureFixture
) -> None:
    from vkcompose.apiserver import APIServer

    assert isinstance(apiserver, APIServer)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with MemoryBackend() as backend:
            node = VirtualNode(name="vk-busy", backend=backend, kubelet_port=port, taints=[])
            client = await apiserver.api_client()
            try:
                async with virtual_node(node, api_client=client, kubelet=kubelet_hook()):
                    with anyio.fail_after(30):
                        while True:
                            if any("not served" in r.getMessage() for r in caplog.records):
                                break
                            await anyio.sleep(0.02)
                    kube = Kube(client)
                    created = await kube.create(
                        path_of("pods", namespace="default"), pod("web", "vk-busy")
                    )
                    assert created["metadata"]["name"] == "web"
                    with anyio.fail_after(30):
                        while True:
                            current = await kube.get(path_of("pods", "web", namespace="default"))
                            if (current.get("status") or {}).get("phase") == "Running":
                                break
                            await anyio.sleep(0.02)
            finally:
                await client.close()
