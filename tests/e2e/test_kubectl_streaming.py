"""End to end with the pinned kubectl: kubectl → embedded API server → kubelet API → pipeline.

The node runs the simulated backend (port-forward: a small echo backend); its kubelet API is
TLS-served with a certificate from the API server's CA and authorizes the API server's
kubelet-client certificate through SubjectAccessReview. Each kubectl process is reaped.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator

import aiohttp
import anyio
import anyio.abc
import orjson
import pytest

from vkcompose.apiserver import embedded_apiserver
from vkcompose.backends.memory import MemoryBackend
from vkcompose.kubelet.websocket_channels import codec_for
from vkcompose.testing.kubelet import KubeletCluster, running_kubelet

pytestmark = pytest.mark.anyio

SPDY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
WEBSOCKET = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true"}


class EchoPortsBackend(MemoryBackend):
    """The simulated backend, plus ports that answer each chunk upper-cased, tagged."""

    async def port_forward(
        self, namespace: str, name: str, port: int, stream: anyio.abc.ByteStream, /
    ) -> None:
        self._get(namespace, name)
        if port == 9999:  # a port whose server says goodbye and closes
            await stream.send(b"bye")
            await stream.aclose()
            return
        try:
            while True:
                chunk = await stream.receive()
                await stream.send(f"{port}:".encode() + chunk.upper())
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass


@pytest.fixture
async def cluster() -> AsyncIterator[KubeletCluster]:
    async with (
        embedded_apiserver(bookmark_interval=0.2) as server,
        EchoPortsBackend(log_interval=0.05) as backend,
        running_kubelet(server, backend, name="vk-e2e") as running,
    ):
        await running.create_pod("web")
        yield running


async def reap(process: anyio.abc.Process) -> None:
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(10, shield=True):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    await process.aclose()


async def test_logs_tail_since_timestamps(cluster: KubeletCluster) -> None:
    await anyio.sleep(0.3)  # a few synthetic lines
    rc, out, err = await cluster.kubectl("logs", "web", "--tail=2")
    assert rc == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 2 and all(line.startswith("app: simulated log line") for line in lines)
    rc, out, err = await cluster.kubectl("logs", "web", "--since=1h", "--timestamps")
    assert rc == 0, err
    first = out.decode().splitlines()[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z app: simulated log line 1$", first), first
    rc, out, err = await cluster.kubectl("logs", "web", "--limit-bytes=5")
    assert (rc, out) == (0, b"app: "), err
    rc, _out, err = await cluster.kubectl("logs", "web", "-c", "nope")
    assert rc != 0 and b"container nope is not valid for pod web" in err
    rc, _out, err = await cluster.kubectl("logs", "missing")
    assert rc != 0 and b'pods "missing" not found' in err


async def test_logs_follow_streams(cluster: KubeletCluster) -> None:
    process = await anyio.open_process(
        cluster.kubectl_args("logs", "-f", "web", "--tail=1"), env=cluster.kubectl_env()
    )
    try:
        assert process.stdout is not None
        seen = b""
        with anyio.fail_after(30):
            while seen.count(b"\n") < 4:  # the tail line, then lines as they are written
                seen += await process.stdout.receive()
        numbers = [int(line.rsplit(" ", 1)[1]) for line in seen.decode().splitlines()[:4]]
        assert numbers == list(range(numbers[0], numbers[0] + 4))
        assert process.returncode is None  # still following
    finally:
        await reap(process)


@pytest.mark.parametrize("transport", ["websocket", "spdy"])
async def test_exec_output_exit_code_and_stdin(cluster: KubeletCluster, transport: str) -> None:
    env = WEBSOCKET if transport == "websocket" else SPDY
    rc, out, err = await cluster.kubectl("exec", "web", "--", "echo", "hi", "there", env=env)
    assert (rc, out) == (0, b"hi there\n"), err
    rc, out, err = await cluster.kubectl("exec", "web", "--", "exit", "3", env=env)
    assert rc == 3, err
    rc, out, err = await cluster.kubectl("exec", "web", "--", "nosuch", env=env)
    assert rc == 127 and b"nosuch: command not found" in err
    payload = bytes(range(256)) * 800  # 200 KiB through stdin and back
    rc, out, err = await cluster.kubectl("exec", "-i", "web", "--", "cat", stdin=payload, env=env)
    assert (rc, len(out)) == (0, len(payload)), err
    assert out == payload
    assert cluster.kubelet.sessions[f"{transport}:exec"] == 4


async def test_exec_errors(cluster: KubeletCluster) -> None:
    rc, _out, err = await cluster.kubectl("exec", "web", "-c", "nope", "--", "true")
    assert rc != 0 and b"container nope is not valid for pod web" in err
    rc, _out, err = await cluster.kubectl("exec", "missing", "--", "true")
    assert rc != 0 and b'pods "missing" not found' in err


@pytest.mark.parametrize("transport", ["websocket", "spdy"])
async def test_attach_with_stdin(cluster: KubeletCluster, transport: str) -> None:
    env = WEBSOCKET if transport == "websocket" else SPDY
    rc, out, err = await cluster.kubectl(
        "attach", "-i", "web", stdin=b"to the main process\n", env=env
    )
    assert rc == 0, err
    assert b"to the main process\n" in out
    assert cluster.kubelet.sessions[f"{transport}:attach"] == 1


@pytest.mark.parametrize("transport", ["websocket", "spdy"])
async def test_port_forward(cluster: KubeletCluster, transport: str) -> None:
    env = WEBSOCKET if transport == "websocket" else SPDY
    process = await anyio.open_process(
        cluster.kubectl_args("port-forward", "--address=127.0.0.1", "pod/web", ":8080"),
        env=cluster.kubectl_env(**env),
    )
    try:
        assert process.stdout is not None
        output = b""
        with anyio.fail_after(30):
            while (match := re.search(rb"127\.0\.0\.1:(\d+) -> 8080", output)) is None:
                output += await process.stdout.receive()
        local_port = int(match.group(1))
        results: dict[bytes, bytes] = {}

        async def roundtrip(text: bytes) -> None:
            async with await anyio.connect_tcp("127.0.0.1", local_port) as conn:
                await conn.send(text)
                answer = b""
                while len(answer) < len(text) + 5:
                    answer += await conn.receive()
                results[text] = answer

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for word in (b"first", b"second", b"third"):
                    tg.start_soon(roundtrip, word)
        assert results == {w: b"8080:" + w.upper() for w in results}
        assert cluster.kubelet.sessions[f"{transport}:portforward"] == 1
    finally:
        await reap(process)


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
async def test_port_forward_over_websocket_channels(cluster: KubeletCluster, protocol: str) -> None:
    """What the Python client speaks: through the API server (``ports=``), a data and an error
    channel per port, each starting with the port; bytes relayed both ways."""
    server = cluster.apiserver
    url = f"{server.url}/api/v1/namespaces/default/pods/web/portforward?ports=8080,9090"
    codec = codec_for(protocol)
    ssl_context = ssl.create_default_context(cafile=str(server.ca_path))
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    received: dict[int, bytes] = {0: b"", 1: b"", 2: b"", 3: b""}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=[protocol], headers=headers, ssl=ssl_context) as ws,
    ):
        for channel, text in ((0, b"hi"), (2, b"there")):
            message = codec.encode(channel, text)
            await (ws.send_str(message) if isinstance(message, str) else ws.send_bytes(message))
        with anyio.fail_after(30):
            while received[0] != b"\x90\x1f8080:HI" or received[2] != b"\x82\x239090:THERE":
                message = await ws.receive()
                assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
                decoded = codec.decode(message.data)
                if decoded is not None:
                    received[decoded.channel] += decoded.data
    assert received[1] == b"\x90\x1f" and received[3] == b"\x82\x23"  # ports, no errors
    assert cluster.kubelet.sessions["websocket:portforward"] == 1


async def test_port_forward_channels_close_once_every_connection_ended(
    cluster: KubeletCluster,
) -> None:
    server = cluster.apiserver
    url = f"{server.url}/api/v1/namespaces/default/pods/web/portforward?ports=9999"
    ssl_context = ssl.create_default_context(cafile=str(server.ca_path))
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    data = b""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url, protocols=["v4.channel.k8s.io"], headers=headers, ssl=ssl_context
        ) as ws,
    ):
        with anyio.fail_after(30):
            async for message in ws:  # ends when the server closes the socket
                if message.data[0] == 0:
                    data += message.data[1:]
    assert data == b"\x0f\x27bye"


async def test_port_forward_unsupported_by_the_simulated_backend() -> None:
    async with (
        embedded_apiserver(bookmark_interval=0.2) as server,
        MemoryBackend(log_interval=0.05) as backend,
        running_kubelet(server, backend, name="vk-sim") as running,
    ):
        await running.create_pod("web")
        process = await anyio.open_process(
            running.kubectl_args("port-forward", "--address=127.0.0.1", "pod/web", ":8080"),
            env=running.kubectl_env(),
        )
        try:
            assert process.stdout is not None and process.stderr is not None
            output = b""
            with anyio.fail_after(30):
                while (match := re.search(rb"127\.0\.0\.1:(\d+) -> 8080", output)) is None:
                    output += await process.stdout.receive()
            async with await anyio.connect_tcp("127.0.0.1", int(match.group(1))) as conn:
                await conn.send(b"hello")
                with anyio.fail_after(30), pytest.raises((anyio.EndOfStream, ConnectionError)):
                    while True:
                        await conn.receive()
            errors = b""
            with anyio.fail_after(30):
                while b"no listening ports" not in errors:
                    errors += await process.stderr.receive()
        finally:
            await reap(process)


async def test_node_proxy_stats_and_metrics(cluster: KubeletCluster) -> None:
    node = cluster.node_name
    rc, out, err = await cluster.kubectl(
        "get", "--raw", f"/api/v1/nodes/{node}/proxy/stats/summary"
    )
    assert rc == 0, err
    summary = orjson.loads(out)
    assert summary["node"]["nodeName"] == node
    assert [p["podRef"]["name"] for p in summary["pods"]] == ["web"]
    rc, out, err = await cluster.kubectl(
        "get", "--raw", f"/api/v1/nodes/{node}/proxy/metrics/resource"
    )
    assert rc == 0, err
    text = out.decode()
    assert re.search(
        r'^pod_memory_working_set_bytes\{namespace="default",pod="web"\} \d+ \d+$', text, re.M
    )
    assert "scrape_error 0" in text
    rc, out, err = await cluster.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/pods")
    assert rc == 0, err
    assert [p["metadata"]["name"] for p in orjson.loads(out)["items"]] == ["web"]
