"""Interop with the real kubectl: ``kubectl exec`` over SPDY/3.1 against a tiny fake API server.

The fake server (below, deliberately minimal) answers discovery and ``GET pod``, and serves the
``exec`` subresource the way a kubelet does: SPDY upgrade, one stream per channel, the exit
status on the error stream. kubectl's side is the Go implementation Kubernetes ships
(moby/spdystream), so this checks frames, header compression, stream handshakes and the
no-WINDOW_UPDATE behaviour of real peers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
import pytest

from vkcompose.kubelet.channels import (
    PORT_FORWARD_SPDY_PROTOCOLS,
    PORT_HEADER,
    REMOTE_COMMAND_SPDY_PROTOCOLS,
    STREAM_TYPE_HEADER,
    ExecOptions,
    StreamType,
    error_stream_payload,
    expected_stream_types,
    parse_port,
    port_forward_request_id,
)
from vkcompose.kubelet.spdy.frames import Headers, first_header
from vkcompose.kubelet.spdy.session import SpdySession, SpdySessionClosed, SpdyStream
from vkcompose.kubelet.spdy.upgrade import negotiate_upgrade

pytestmark = pytest.mark.anyio

KUBECTL = shutil.which("kubectl", path=os.path.dirname(sys.executable))


# ----------------------------------------------------------------------- minimal HTTP bits
@dataclass
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")


class PrefixedStream:
    """A socket stream whose first bytes were already read by the HTTP parser."""

    def __init__(self, stream: anyio.abc.ByteStream, prefix: bytes, tap: list[bytes]) -> None:
        self.stream = stream
        self.prefix = prefix
        self.tap = tap  # bytes received from kubectl after the upgrade

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.prefix:
            data, self.prefix = self.prefix[:max_bytes], self.prefix[max_bytes:]
        else:
            data = await self.stream.receive(max_bytes)
        self.tap.append(data)
        return data

    async def send(self, item: bytes) -> None:
        await self.stream.send(item)

    async def aclose(self) -> None:
        await self.stream.aclose()


async def read_request(stream: anyio.abc.ByteStream, buf: bytearray) -> Request | None:
    while b"\r\n\r\n" not in buf:
        try:
            buf += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    request = Request(method, urlsplit(target).path, parse_qsl(urlsplit(target).query), headers)  # type: ignore[arg-type]
    length = int(request.header("Content-Length") or 0)
    while len(buf) < length:
        buf += await stream.receive()
    del buf[:length]
    return request


async def respond(stream: anyio.abc.ByteStream, status: int, body: object) -> None:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    await stream.send(head.encode() + data)


# ----------------------------------------------------------------------- fake API server
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "demo", "namespace": "default", "uid": "1"},
    "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    "status": {"phase": "Running"},
}
DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get", "list"],
                "shortNames": ["po"],
            },
            {
                "name": "pods/exec",
                "singularName": "",
                "namespaced": True,
                "kind": "PodExecOptions",
                "verbs": ["create", "get"],
            },
        ],
    },
}


@dataclass
class FakeServer:
    port: int = 0
    protocols: list[str] = field(default_factory=list)  # negotiated per exec
    offered: list[str] = field(default_factory=list)  # what kubectl offered
    taps: list[list[bytes]] = field(default_factory=list)

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        buf = bytearray()
        async with stream:
            while (request := await read_request(stream, buf)) is not None:
                if request.path.endswith("/exec"):
                    await self.exec(stream, request, bytes(buf))
                    return
                if request.path.endswith("/portforward"):
                    await self.port_forward(stream, request, bytes(buf))
                    return
                if request.path == "/api/v1/namespaces/default/pods/demo":
                    await respond(stream, 200, POD)
                elif request.path in DISCOVERY:
                    await respond(stream, 200, DISCOVERY[request.path])
                else:
                    await respond(stream, 404, {"kind": "Status", "status": "Failure", "code": 404})

    async def exec(self, stream: anyio.abc.SocketStream, request: Request, rest: bytes) -> None:
        if request.header("Upgrade").lower() == "websocket":
            await respond(stream, 400, {"kind": "Status", "message": "SPDY only here"})
            return
        self.offered = [v for k, v in request.headers if k.lower() == "x-stream-protocol-version"]
        decision = negotiate_upgrade(request.headers, REMOTE_COMMAND_SPDY_PROTOCOLS)
        await stream.send(decision.response_head() + decision.body)
        if not decision.ok:
            return
        assert decision.protocol is not None
        self.protocols.append(decision.protocol)
        opts = ExecOptions.from_query(request.query)
        tap: list[bytes] = []
        self.taps.append(tap)
        async with SpdySession(PrefixedStream(stream, rest, tap), server=True) as session:
            streams: dict[str, SpdyStream] = {}
            with anyio.fail_after(10):
                for _ in expected_stream_types(opts, decision.protocol):
                    s = await session.accept()
                    streams[s.header("streamType") or ""] = s
            code = await run_command(list(opts.command), streams)
            await streams[StreamType.ERROR].send(error_stream_payload(decision.protocol, code))
            for s in streams.values():
                await s.close()

    async def port_forward(
        self, stream: anyio.abc.SocketStream, request: Request, rest: bytes
    ) -> None:
        decision = negotiate_upgrade(request.headers, PORT_FORWARD_SPDY_PROTOCOLS)
        await stream.send(decision.response_head() + decision.body)
        if not decision.ok:
            return

        def valid(headers: Headers) -> bool:
            kind = first_header(headers, STREAM_TYPE_HEADER)
            try:
                parse_port(first_header(headers, PORT_HEADER))
            except ValueError:
                return False
            return kind in (StreamType.DATA, StreamType.ERROR)

        tap: list[bytes] = []
        self.taps.append(tap)
        pairs: dict[str, dict[str, SpdyStream]] = {}
        session = SpdySession(PrefixedStream(stream, rest, tap), server=True, stream_filter=valid)
        async with session, anyio.create_task_group() as tg:
            while True:
                try:
                    s = await session.accept()
                except SpdySessionClosed:
                    break
                pair = pairs.setdefault(port_forward_request_id(s.headers, s.id), {})
                pair[s.header(STREAM_TYPE_HEADER) or ""] = s
                if len(pair) == 2:
                    tg.start_soon(echo_upper, pair[StreamType.DATA], pair[StreamType.ERROR])


async def echo_upper(data: SpdyStream, error: SpdyStream) -> None:
    """The 'container port': answers every chunk upper-cased, tagged with the port."""
    port = data.header(PORT_HEADER)
    try:
        while True:
            chunk = await data.receive()
            await data.send(f"{port}:".encode() + chunk.upper())
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        pass
    with contextlib.suppress(anyio.BrokenResourceError):
        await data.close()
        await error.close()


async def run_command(argv: list[str], streams: dict[str, SpdyStream]) -> int:
    """A tiny built-in command set."""
    out, err = streams.get(StreamType.STDOUT), streams.get(StreamType.STDERR)
    name, args = argv[0], argv[1:]
    if name == "echo" and out:
        await out.send((" ".join(args) + "\n").encode())
        return 0
    if name == "exit":
        return int(args[0])
    if name == "big" and out:
        total, chunk = int(args[0]), bytes(range(256)) * 256
        sent = 0
        while sent < total:
            piece = chunk[: total - sent]
            await out.send(piece)
            sent += len(piece)
        return 0
    if name == "cat" and out:
        stdin = streams[StreamType.STDIN]
        while True:
            try:
                await out.send(await stdin.receive())
            except anyio.EndOfStream:
                return 0
    if name == "warn" and err:
        await err.send(" ".join(args).encode() + b"\n")
        return 1
    return 127


@asynccontextmanager
async def fake_apiserver(tmp_path: Path) -> AsyncIterator[tuple[FakeServer, list[str]]]:
    server = FakeServer()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    kubeconfig = tmp_path / "kubeconfig"
    cluster = {"server": f"http://127.0.0.1:{server.port}"}
    context = {"cluster": "c", "user": "u", "namespace": "default"}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "x", "context": context}],
        "current-context": "x",
    }
    kubeconfig.write_text(json.dumps(config))
    base = [str(KUBECTL), f"--kubeconfig={kubeconfig}", f"--cache-dir={tmp_path / 'cache'}"]
    # no cancel scope around the yield: a deadline firing inside the caller's frame would exit
    # scopes out of order; pytest-timeout guards against hangs instead
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        try:
            yield server, base
        finally:
            tg.cancel_scope.cancel()


async def kubectl(
    base: list[str], *args: str, stdin: bytes | None = None
) -> tuple[int, bytes, bytes]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(Path(base[1].split("=", 1)[1]).parent),
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false",
        "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false",
    }
    result = await anyio.run_process([*base, *args], input=stdin, check=False, env=env)
    return result.returncode, result.stdout, result.stderr


# ------------------------------------------------------------------------------- tests
async def test_kubectl_exec_stdout_and_exit_status(tmp_path: Path) -> None:
    async with fake_apiserver(tmp_path) as (server, base):
        rc, out, err = await kubectl(base, "exec", "demo", "--", "echo", "hello", "SPDY")
        assert (rc, out) == (0, b"hello SPDY\n"), err
        assert server.offered == list(REMOTE_COMMAND_SPDY_PROTOCOLS)  # kubectl's preference
        assert server.protocols == ["v5.channel.k8s.io"]
        rc, out, err = await kubectl(base, "exec", "demo", "--", "exit", "3")
        assert rc == 3, err
        assert out == b""
        rc, out, err = await kubectl(base, "exec", "demo", "--", "warn", "careful")
        assert rc == 1 and out == b"" and err.startswith(b"careful\n"), err


async def test_kubectl_exec_large_output_without_window_updates(tmp_path: Path) -> None:
    """kubectl never sends WINDOW_UPDATE: output far beyond 64 KiB must still flow."""
    async with fake_apiserver(tmp_path) as (_server, base):
        rc, out, err = await kubectl(base, "exec", "demo", "--", "big", "1000000")
        assert rc == 0, err
        assert out == (bytes(range(256)) * 4000)[:1_000_000]


async def test_kubectl_exec_stdin_round_trip(tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    async with fake_apiserver(tmp_path) as (server, base):
        rc, out, err = await kubectl(base, "exec", "-i", "demo", "--", "cat", stdin=payload)
        assert rc == 0, err
        assert out == payload
        assert server.taps and b"".join(server.taps[0])  # kubectl spoke SPDY to us


async def test_kubectl_port_forward(tmp_path: Path) -> None:
    async with fake_apiserver(tmp_path) as (server, base):
        env = {**os.environ, "HOME": str(tmp_path), "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
        cmd = [*base, "port-forward", "--address=127.0.0.1", "pod/demo", ":8080"]
        process = await anyio.open_process(cmd, env=env)
        try:
            assert process.stdout is not None
            output = b""
            while (match := re.search(rb"127\.0\.0\.1:(\d+) -> 8080", output)) is None:
                output += await process.stdout.receive()
            local_port = int(match.group(1))

            async def roundtrip(text: bytes) -> bytes:
                async with await anyio.connect_tcp("127.0.0.1", local_port) as conn:
                    await conn.send(text)
                    answer = b""
                    while len(answer) < len(text) + 5:
                        answer += await conn.receive()
                    return answer

            results: dict[bytes, bytes] = {}

            async def one(text: bytes) -> None:
                results[text] = await roundtrip(text)

            async with anyio.create_task_group() as tg:
                for word in (b"first", b"second", b"third"):
                    tg.start_soon(one, word)
            assert results == {w: b"8080:" + w.upper() for w in results}
            assert len(server.taps) == 1  # one SPDY connection, one stream pair per connection
        finally:
            process.terminate()
            with anyio.move_on_after(10, shield=True):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()
