"""The kubelet API over real HTTPS: logs, errors as Status bodies, stats, metrics, auth.

The node runs against the embedded API server (TokenReview / SubjectAccessReview are real);
requests come from aiohttp with the API server's kubelet-client certificate unless a test
says otherwise.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from vkcompose.apiserver import embedded_apiserver
from vkcompose.apiserver.pki import issue
from vkcompose.backends.memory import MemoryBackend
from vkcompose.errors import NotFound
from vkcompose.kubelet.server import KubeletServer
from vkcompose.kubelet.tls import self_signed, server_ssl_context
from vkcompose.node.kube import path_of
from vkcompose.pipeline import compose
from vkcompose.podspec import Pod
from vkcompose.testing.kubelet import KubeletCluster, running_kubelet

pytestmark = pytest.mark.anyio


def client_context(cluster: KubeletCluster, pair: Any = "kubelet-client") -> ssl.SSLContext:
    pki = cluster.apiserver.pki
    return pki.client_ssl_context(pki.kubelet_client if pair == "kubelet-client" else pair)


async def get(
    cluster: KubeletCluster,
    path: str,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, str]:
    ctx = context or client_context(cluster)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.get(f"{cluster.kubelet.url}{path}", headers=headers) as response,
    ):
        return response.status, await response.read(), response.headers.get("Content-Type", "")


def status_of(body: bytes) -> dict[str, Any]:
    status: dict[str, Any] = orjson.loads(body)
    assert status["kind"] == "Status" and status["status"] == "Failure"
    return status


@pytest.fixture
async def cluster() -> AsyncIterator[KubeletCluster]:
    async with (
        embedded_apiserver(bookmark_interval=0.2) as server,
        MemoryBackend(log_interval=0.05) as backend,
        running_kubelet(server, backend, name="vk-api") as running,
    ):
        await running.create_pod("web")
        await running.create_pod("two", containers=("a", "b"))
        await anyio.sleep(0.3)
        yield running


# ------------------------------------------------------------------------------ logs
async def test_container_logs_options(cluster: KubeletCluster) -> None:
    code, body, ctype = await get(cluster, "/containerLogs/default/web/app")
    assert code == 200 and ctype.startswith("text/plain")
    lines = body.decode().splitlines()
    assert len(lines) >= 3 and lines[0] == "app: simulated log line 1"
    code, body, _ = await get(cluster, "/containerLogs/default/web/app?tailLines=1")
    assert code == 200 and len(body.decode().splitlines()) == 1
    code, body, _ = await get(cluster, "/containerLogs/default/web/app?limitBytes=7")
    assert (code, body) == (200, b"app: si")
    code, body, _ = await get(cluster, "/containerLogs/default/web/app?timestamps=true&tailLines=1")
    assert re.match(rb"^\d{4}-\d\d-\d\dT\S+Z app: simulated", body)
    code, body, _ = await get(cluster, "/containerLogs/default/two/b?tailLines=1")
    assert code == 200 and body.startswith(b"b: simulated")


async def test_container_logs_follow_streams_chunks(cluster: KubeletCluster) -> None:
    ctx = client_context(cluster)
    url = f"{cluster.kubelet.url}/containerLogs/default/web/app?follow=true&tailLines=0"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session,
        session.get(url) as response,
    ):
        assert response.status == 200
        seen = b""
        with anyio.fail_after(30):
            while seen.count(b"\n") < 3:
                seen += await response.content.readany()
    assert seen.startswith(b"app: simulated log line")


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        # the kubelet: options that do not decode are 400, options that do not validate 422
        ("tailLines=-1", 422, "tailLines"),
        ("tailLines=x", 400, "tailLines"),
        ("limitBytes=0", 422, "limitBytes"),
        ("sinceSeconds=10&sinceTime=2024-01-01T00:00:00Z", 422, "at most one of"),
        ("sinceTime=yesterday", 400, "sinceTime"),
        ("previous=true", 400, "previous terminated container"),
    ],
)
async def test_container_logs_bad_parameters_are_400_or_422(
    cluster: KubeletCluster, query: str, code: int, message: str
) -> None:
    answered, body, _ = await get(cluster, f"/containerLogs/default/web/app?{query}")
    assert answered == code
    status = status_of(body)
    assert status["code"] == code and message in status["message"]


async def test_unknown_pod_container_and_path_are_404(cluster: KubeletCluster) -> None:
    for path in (
        "/containerLogs/default/missing/app",
        "/containerLogs/default/web/nope",
        "/exec/default/missing/app?command=true&stdout=true",
        "/exec/default/web/nope?command=true&stdout=true",
        "/portForward/default/missing",
        "/no/such/path",
    ):
        code, body, _ = await get(cluster, path)
        assert code == 404, path
        assert status_of(body)["reason"] == "NotFound"


async def test_exec_parameter_errors_are_400(cluster: KubeletCluster) -> None:
    for query in (
        "command=true&stdout=true&stderr=true&tty=true",  # tty with stderr
        "command=true",  # no stream at all
        "stdout=true",  # no command
    ):
        code, body, _ = await get(cluster, f"/exec/default/web/app?{query}")
        assert code == 400, query
        assert status_of(body)["code"] == 400
    code, body, _ = await get(cluster, "/exec/default/web/app?command=true&stdout=true")
    assert code == 400 and "Upgrade request required" in status_of(body)["message"]


async def test_exec_spdy_negotiation_failures(cluster: KubeletCluster) -> None:
    upgrade = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
    path = "/exec/default/web/app?command=true&stdout=true"
    code, body, _ = await get(cluster, path, headers=upgrade)
    assert code == 400 and "X-Stream-Protocol-Version" in status_of(body)["message"]
    code, body, _ = await get(
        cluster, path, headers={**upgrade, "X-Stream-Protocol-Version": "v9.channel.k8s.io"}
    )
    assert code == 403 and "unable to negotiate protocol" in status_of(body)["message"]


# ----------------------------------------------------------------------- stats/metrics/pods
async def test_stats_summary_shape(cluster: KubeletCluster) -> None:
    code, body, ctype = await get(cluster, "/stats/summary")
    assert code == 200 and ctype == "application/json"
    summary = orjson.loads(body)
    assert summary["node"]["nodeName"] == "vk-api"
    assert {"time", "usageNanoCores"} <= set(summary["node"]["cpu"])
    pods = {p["podRef"]["name"]: p for p in summary["pods"]}
    assert set(pods) == {"web", "two"}
    assert [c["name"] for c in pods["two"]["containers"]] == ["a", "b"]
    assert pods["web"]["memory"]["workingSetBytes"] > 0


async def test_metrics_resource_text(cluster: KubeletCluster) -> None:
    code, body, ctype = await get(cluster, "/metrics/resource")
    assert code == 200 and ctype.startswith("text/plain")
    text = body.decode()
    for name in (
        "node_cpu_usage_seconds_total",
        "node_memory_working_set_bytes",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "pod_cpu_usage_seconds_total",
        "pod_memory_working_set_bytes",
    ):
        assert re.search(rf"^# TYPE {name} (counter|gauge)$", text, re.M), name
        assert re.search(rf"^{name}(\{{[^}}]*\}})? [\d.e+-]+ \d{{13}}$", text, re.M), name
    sample = r'container_memory_working_set_bytes\{container="b",namespace="default",pod="two"\}'
    assert re.search(rf"^{sample} \d+ \d+$", text, re.M)
    assert re.search(r"^scrape_error 0$", text, re.M)


async def test_pods_and_running_pods(cluster: KubeletCluster) -> None:
    for path in ("/pods", "/runningpods/"):
        code, body, _ = await get(cluster, path)
        assert code == 200
        doc = orjson.loads(body)
        assert doc["kind"] == "PodList"
        assert sorted(p["metadata"]["name"] for p in doc["items"]) == ["two", "web"]
    code, body, _ = await get(cluster, "/healthz")
    assert (code, body) == (200, b"ok")


# ------------------------------------------------------------------------------ auth
async def test_no_or_bad_credentials_are_401(cluster: KubeletCluster) -> None:
    pki = cluster.apiserver.pki
    anonymous = ssl.create_default_context(cafile=str(pki.ca_path))
    code, body, _ = await get(cluster, "/pods", context=anonymous)
    assert code == 401 and status_of(body)["reason"] == "Unauthorized"
    code, _, _ = await get(
        cluster, "/pods", context=anonymous, headers={"Authorization": "Bearer not-a-token"}
    )
    assert code == 401
    code, _, _ = await get(
        cluster, "/pods", context=anonymous, headers={"Authorization": "Basic abc"}
    )
    assert code == 401


async def test_service_account_token_is_reviewed_and_authorized(cluster: KubeletCluster) -> None:
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}
    await cluster.kube.create(path_of("serviceaccounts", namespace="default"), sa)
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    answer = await cluster.kube.create(
        path_of("serviceaccounts", "reader", namespace="default", subresource="token"), request
    )
    token = answer["status"]["token"]
    anonymous = ssl.create_default_context(cafile=str(cluster.apiserver.pki.ca_path))
    auth = {"Authorization": f"Bearer {token}"}
    code, body, _ = await get(cluster, "/stats/summary", context=anonymous, headers=auth)
    assert code == 200, body
    code, _, _ = await get(
        cluster, "/containerLogs/default/web/app", context=anonymous, headers=auth
    )
    assert code == 200


async def test_certificate_user_without_rights_is_403(
    cluster: KubeletCluster, tmp_path: Path
) -> None:
    pki = cluster.apiserver.pki
    alice = issue(pki.ca, tmp_path, "alice", "alice", client=True)
    code, body, _ = await get(cluster, "/stats/summary", context=client_context(cluster, alice))
    assert code == 403
    status = status_of(body)
    assert status["reason"] == "Forbidden" and "subresource=stats" in status["message"]
    code, body, _ = await get(
        cluster, "/containerLogs/default/web/app", context=client_context(cluster, alice)
    )
    assert code == 403 and "subresource=proxy" in status_of(body)["message"]


async def test_insecure_allow_anonymous(caplog: pytest.LogCaptureFixture) -> None:
    async with (
        embedded_apiserver(bookmark_interval=0.2) as server,
        MemoryBackend(log_interval=0.05) as backend,
        running_kubelet(server, backend, name="vk-anon", insecure_allow_anonymous=True) as cl,
    ):
        anonymous = ssl.create_default_context(cafile=str(server.pki.ca_path))
        code, body, _ = await get(cl, "/pods", context=anonymous)
        assert code == 200, body
    assert any("anonymous requests are allowed" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- capability absent → 501
class LifecycleOnly:
    """A backend with the pod lifecycle and nothing else."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], Pod] = {}

    async def create_pod(self, pod: Pod, /) -> None:
        meta = pod["metadata"]
        self.pods[(meta["namespace"], meta["name"])] = pod

    async def update_pod(self, pod: Pod, /) -> None:
        await self.create_pod(pod)

    async def delete_pod(self, pod: Pod, grace: int | None, /) -> None:
        self.pods.pop((pod["metadata"]["namespace"], pod["metadata"]["name"]), None)

    async def get_pod_status(self, namespace: str, name: str, /) -> Pod:
        try:
            return {**self.pods[(namespace, name)], "status": {"phase": "Running"}}
        except KeyError:
            raise NotFound(f"pod {namespace}/{name} not found") from None

    async def list_pods(self) -> list[Pod]:
        return list(self.pods.values())


async def test_absent_capabilities_are_501(tmp_path: Path) -> None:
    backend = LifecycleOnly()
    await backend.create_pod(
        {"metadata": {"namespace": "default", "name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    )
    server = KubeletServer(compose(backend=backend), ["vk-bare"], auth=None)
    files = self_signed("vk-bare", directory=tmp_path)
    async with server.running(server_ssl_context(files)):
        ctx = ssl.create_default_context(cafile=str(files.cert))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
            for path in (
                "/containerLogs/default/p/c",
                "/exec/default/p/c?command=true&stdout=true",
                "/attach/default/p/c?stdout=true",
                "/portForward/default/p",
                "/stats/summary",
            ):
                async with session.get(server.url + path) as response:
                    assert response.status == 501, path
                    status = status_of(await response.read())
                    assert status["code"] == 501 and status["reason"] == "NotImplemented"
            async with session.get(server.url + "/metrics/resource") as response:
                assert response.status == 200
                assert "scrape_error 1" in await response.text()
