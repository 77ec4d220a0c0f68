"""The built-in recipes end to end: kubectl → embedded API server → node runtime → full
middleware stack → backend. One pod exercises the downward API, a ConfigMap (env and volume),
a Secret, service links and the projected service-account token; the process recipe runs it
as a real process and its log shows the values the kubelet would have given it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes_asyncio import client

from vkcompose.node.cluster import ClusterServices, ClusterTokens
from vkcompose.node.runtime import NodeRuntime
from vkcompose.node.sources import ClusterSources
from vkcompose.recipes import RecipeSettings, build_node
from vkcompose.serve import free_kubelet_port, local_cluster

pytestmark = pytest.mark.anyio

SCRIPT = (
    'echo "name=$POD_NAME greeting=$GREETING password=$PASSWORD '
    'svc=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"; '
    "echo file=$(cat /etc/cfg/greeting); "
    "echo ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace); "
    "echo token=$(wc -c < /var/run/secrets/kubernetes.io/serviceaccount/token)"
)


def the_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", SCRIPT],
                    "env": [
                        {"name": "POD_NAME",
                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "GREETING",
                         "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                        {"name": "PASSWORD",
                         "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    ],
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                }
            ],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
        },
    }  # fmt: skip


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[client.CoreV1Api]:
    node = build_node("process", RecipeSettings(state_dir=tmp_path / "state"))
    node.kubelet_port = 0
    free_kubelet_port(node, _Quiet())  # type: ignore[arg-type]
    async with local_cluster(node) as server:
        api = await server.api_client()
        try:
            yield client.CoreV1Api(api)
        finally:
            await api.close()
        backend: Any = node.backend
        with anyio.move_on_after(15, shield=True):
            await backend.aclose(stop_pods=True, grace=0)


class _Quiet:
    def print(self, *args: object) -> None:
        """Discard."""


async def test_process_recipe_runs_a_pod_with_every_kind_of_input(
    core: client.CoreV1Api,
) -> None:
    await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cfg"}, "data": {"greeting": "hello"}}
    )
    await core.create_namespaced_secret(
        "default",
        {"metadata": {"name": "creds"}, "data": {"password": base64.b64encode(b"s3cr3t").decode()}},
    )
    await core.create_namespaced_pod("default", the_pod())
    with anyio.fail_after(30):
        while True:
            pod = await core.read_namespaced_pod("web", "default")
            if pod.status.phase in ("Succeeded", "Failed"):
                break
            await anyio.sleep(0.1)
    assert pod.status.phase == "Succeeded", pod.status
    log = await core.read_namespaced_pod_log("web", "default")
    lines = dict(part.split("=", 1) for line in log.splitlines() for part in line.split(" "))
    assert lines["name"] == "web"
    assert lines["greeting"] == "hello"
    assert lines["password"] == "s3cr3t"
    assert lines["svc"] == "10.96.0.1:443"
    assert lines["file"] == "hello"
    assert lines["ns"] == "default"
    assert int(lines["token"]) > 100


async def test_missing_configmap_is_create_container_config_error_then_starts(
    core: client.CoreV1Api,
) -> None:
    await core.create_namespaced_secret(
        "default", {"metadata": {"name": "creds"}, "data": {"password": "eA=="}}
    )
    await core.create_namespaced_pod("default", the_pod())
    with anyio.fail_after(30):
        while True:
            pod = await core.read_namespaced_pod("web", "default")
            statuses = pod.status.container_statuses or []
            waiting = statuses[0].state.waiting if statuses else None
            if waiting is not None and waiting.reason == "CreateContainerConfigError":
                break
            await anyio.sleep(0.1)
    assert waiting.message == 'configmap "cfg" not found'
    await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cfg"}, "data": {"greeting": "later"}}
    )
    with anyio.fail_after(30):
        while pod.status.phase not in ("Succeeded", "Failed"):
            await anyio.sleep(0.2)
            pod = await core.read_namespaced_pod("web", "default")
    assert pod.status.phase == "Succeeded"


def test_runtime_finds_every_cluster_bound_helper_of_the_recipes(tmp_path: Path) -> None:
    for name in ("memory", "process"):
        node = build_node(name, RecipeSettings(state_dir=tmp_path / name))
        runtime = NodeRuntime.build(node, kube=None)  # type: ignore[arg-type]
        kinds = {type(b) for b in runtime.cluster_bound()}
        expected = {ClusterSources, ClusterServices}
        if name == "process":
            expected.add(ClusterTokens)
        assert kinds == expected, name
