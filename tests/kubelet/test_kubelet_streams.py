"""Exec/attach straight at the kubelet API: SPDY and WebSocket subprotocols, TTY resize, bad
frames, and the auth cache."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Sequence

import aiohttp
import anyio
import pytest

from vkcompose.apiserver import embedded_apiserver
from vkcompose.backends.memory import MemoryBackend
from vkcompose.kubelet.auth import KubeletAuth, User
from vkcompose.kubelet.channels import REMOTE_COMMAND_SPDY_PROTOCOLS
from vkcompose.kubelet.client import spdy_exec, websocket_exec
from vkcompose.kubelet.spdy import SessionConfig
from vkcompose.kubelet.spdy.upgrade import client_upgrade_headers
from vkcompose.ops import ExecIO
from vkcompose.testing.kubelet import KubeletCluster, running_kubelet

pytestmark = pytest.mark.anyio


class SizedBackend(MemoryBackend):
    """The simulated backend plus ``size``: prints the first TTY size it is sent."""

    async def exec(
        self, namespace: str, name: str, container: str, command: Sequence[str], io: ExecIO, /
    ) -> int:
        if list(command) == ["size"] and io.resize is not None and io.stdout is not None:
            size = await io.resize.receive()
            await io.stdout.send(f"{size.width}x{size.height} tty={io.tty}\n".encode())
            return 0
        return await super().exec(namespace, name, container, command, io)

    async def attach(self, namespace: str, name: str, container: str, io: ExecIO, /) -> int:
        """Echo stdin, then end as a main process that exits 3."""
        await super().attach(namespace, name, container, io)
        return 3


@pytest.fixture
async def cluster() -> AsyncIterator[KubeletCluster]:
    async with (
        embedded_apiserver(bookmark_interval=0.2) as server,
        SizedBackend(log_interval=0.05) as backend,
        running_kubelet(
            server,
            backend,
            name="vk-streams",
            session_config=SessionConfig(stream_creation_timeout=2),
        ) as running,
    ):
        await running.create_pod("web")
        yield running


def tls(cluster: KubeletCluster) -> ssl.SSLContext:
    pki = cluster.apiserver.pki
    return pki.client_ssl_context(pki.kubelet_client)


async def test_spdy_exec_from_python(cluster: KubeletCluster) -> None:
    base = f"{cluster.kubelet.url}/exec/default/web/app"
    result = await spdy_exec(
        f"{base}?command=echo&command=hi&stdout=true&stderr=true", tls(cluster)
    )
    assert (result.exit_code, result.stdout) == (0, b"hi\n")
    result = await spdy_exec(f"{base}?command=exit&command=7&stdout=true", tls(cluster))
    assert result.exit_code == 7
    data = bytes(range(256)) * 1024
    result = await spdy_exec(f"{base}?command=cat&stdin=true&stdout=true", tls(cluster), data)
    assert (result.exit_code, result.stdout) == (0, data)


@pytest.mark.parametrize(
    "protocol", ["v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"]
)
async def test_websocket_subprotocols(cluster: KubeletCluster, protocol: str) -> None:
    base = f"{cluster.kubelet.url}/exec/default/web/app"
    result = await websocket_exec(
        f"{base}?command=echo&command=ws&stdout=true", tls(cluster), protocol=protocol
    )
    assert (result.exit_code, result.stdout) == (0, b"ws\n")
    result = await websocket_exec(
        f"{base}?command=exit&command=5&stdout=true", tls(cluster), protocol=protocol
    )
    assert result.exit_code == 5
    if protocol.startswith("v5"):  # stdin EOF needs the v5 close signal
        result = await websocket_exec(
            f"{base}?command=cat&stdin=true&stdout=true", tls(cluster), b"abc", protocol=protocol
        )
        assert result.stdout == b"abc"
    assert cluster.kubelet.sessions["websocket:exec"] >= 2


async def test_tty_with_stderr_runs_without_stderr(cluster: KubeletCluster) -> None:
    """Clients often ask for both; the kubelet drops stderr for a TTY instead of refusing."""
    url = f"{cluster.kubelet.url}/exec/default/web/app?command=echo&command=hi"
    flags = "&stdout=true&stderr=true&tty=true"
    result = await websocket_exec(url + flags, tls(cluster), protocol="v5.channel.k8s.io")
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"hi\n", b"")


async def test_attach_ends_in_success_whatever_the_container_exits_with(
    cluster: KubeletCluster,
) -> None:
    """Only exec reports an exit code; an attach that ends is a Success (the kubelet's)."""
    url = f"{cluster.kubelet.url}/attach/default/web/app?stdin=true&stdout=true"
    result = await websocket_exec(url, tls(cluster), b"abc", protocol="v5.channel.k8s.io")
    assert (result.exit_code, result.stdout) == (0, b"abc")
    result = await spdy_exec(url, tls(cluster), b"abc")
    assert (result.exit_code, result.stdout) == (0, b"abc")


async def test_websocket_refuses_unknown_subprotocol(cluster: KubeletCluster) -> None:
    url = f"{cluster.kubelet.url}/exec/default/web/app?command=true&stdout=true"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(url, protocols=["v9.channel.k8s.io"], ssl=tls(cluster))
        assert caught.value.status == 400


async def test_websocket_tty_resize(cluster: KubeletCluster) -> None:
    url = f"{cluster.kubelet.url}/exec/default/web/app?command=size&stdout=true&tty=true"
    out = b""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=["v5.channel.k8s.io"], ssl=tls(cluster)) as ws,
    ):
        await ws.send_bytes(b"\x04" + json.dumps({"Width": 120, "Height": 40}).encode())
        with anyio.fail_after(30):
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    break
                if msg.data[0] == 1:
                    out += msg.data[1:]
    assert out == b"120x40 tty=True\n"


async def test_bad_spdy_frames_end_that_session_only(cluster: KubeletCluster) -> None:
    host, port = "127.0.0.1", cluster.kubelet.port
    for garbage in (
        b"\x80\x03\x00\x01\x00\x00\x00\x0a" + b"\x00\x00\x00\x01\x00\x00\x00\x00\xde\xad",
        b"\x80\x03\x00\x01\x01\x00\x00\x10" + b"\x00\x00\x00\x01" * 2 + b"\x00\x00" + b"junk!!",
        b"\xff" * 64,
    ):
        stream = await anyio.connect_tcp(
            host, port, ssl_context=tls(cluster), tls_standard_compatible=False
        )
        async with stream:
            lines = [
                "POST /exec/default/web/app?command=cat&stdin=true&stdout=true HTTP/1.1",
                f"Host: {host}:{port}",
                "Content-Length: 0",
                *(f"{k}: {v}" for k, v in client_upgrade_headers(REMOTE_COMMAND_SPDY_PROTOCOLS)),
            ]
            await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive()
            assert head.startswith(b"HTTP/1.1 101")
            await stream.send(garbage)
            with anyio.fail_after(30):  # the session ends (protocol error or creation timeout)
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError)):
                    while True:
                        await stream.receive()
    url = f"{cluster.kubelet.url}/exec/default/web/app?command=echo&command=alive&stdout=true"
    result = await spdy_exec(url, tls(cluster))
    assert result.stdout == b"alive\n"


# ------------------------------------------------------------------------- auth cache
class CountingReviews:
    """A review client answering from a table (pure logic test of the cache)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def create(self, path: str, obj: dict[str, object], /) -> dict[str, object]:
        self.calls.append(path.rsplit("/", 1)[1])
        spec: dict[str, object] = obj["spec"]  # type: ignore[assignment]
        if obj["kind"] == "TokenReview":
            ok = spec["token"] == "good"
            user = {"username": "bob", "groups": ["g"]} if ok else {}
            return {"status": {"authenticated": ok, "user": user}}
        return {"status": {"allowed": spec["user"] == "bob"}}


async def test_auth_results_are_cached_with_ttls() -> None:
    now = [0.0]
    reviews = CountingReviews()
    auth = KubeletAuth("vk", reviews=reviews, clock=lambda: now[0])
    assert await auth.authenticate_token("good") == User("bob", ("g",))
    assert await auth.authenticate_token("good") == User("bob", ("g",))
    assert await auth.authenticate_token("bad") is None
    assert await auth.authenticate_token("bad") is None
    assert reviews.calls == ["tokenreviews", "tokenreviews"]
    bob, eve = User("bob"), User("eve")
    assert await auth.authorize(bob, "get", "stats") is True
    assert await auth.authorize(eve, "get", "stats") is False
    assert await auth.authorize(bob, "get", "stats") is True
    assert await auth.authorize(eve, "get", "stats") is False
    assert reviews.calls.count("subjectaccessreviews") == 2
    now[0] = 31.0  # denial (30 s) and token failure (10 s) expired; the rest not
    await auth.authorize(eve, "get", "stats")
    await auth.authorize(bob, "get", "stats")
    await auth.authenticate_token("bad")
    await auth.authenticate_token("good")
    assert reviews.calls.count("subjectaccessreviews") == 3
    assert reviews.calls.count("tokenreviews") == 3
    now[0] = 400.0
    await auth.authorize(bob, "get", "stats")
    await auth.authenticate_token("good")
    assert reviews.calls.count("subjectaccessreviews") == 4
    assert reviews.calls.count("tokenreviews") == 4
