"""A small client of the remote-command protocols (what kubectl does for ``exec``), for tests,
benchmarks and tools talking to a kubelet API directly.

>>> import inspect
>>> list(inspect.signature(spdy_exec).parameters)[:3]
['url', 'ssl_context', 'stdin']
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import anyio
import anyio.abc

from vkcompose.kubelet.channels import (
    REMOTE_COMMAND_SPDY_PROTOCOLS,
    STREAM_PROTOCOL_V5,
    Channel,
    decode_exit_status,
)
from vkcompose.kubelet.spdy import SpdySession
from vkcompose.kubelet.spdy.upgrade import check_upgrade_response, client_upgrade_headers
from vkcompose.kubelet.websocket_channels import codec_for

__all__ = ["ExecResult", "spdy_exec", "websocket_exec"]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a remote command produced."""

    exit_code: int
    stdout: bytes
    stderr: bytes


class _Prefixed:
    """A byte stream whose first bytes were already read (after the HTTP response head)."""

    def __init__(self, stream: anyio.abc.ByteStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self._stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _drain(stream: anyio.abc.ByteReceiveStream, sink: bytearray) -> None:
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            sink += await stream.receive()


async def spdy_exec(
    url: str,
    ssl_context: ssl.SSLContext,
    stdin: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> ExecResult:
    """Run the exec/attach at ``url`` (``https://host:port/exec/...?command=..&stdout=true``)
    over SPDY/3.1, feeding ``stdin``; return the exit code and output."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 10250
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await anyio.connect_tcp(
        host, port, ssl_context=ssl_context, tls_standard_compatible=False
    )
    async with stream:
        lines = [f"POST {target} HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 0"]
        lines += [f"{k}: {v}" for k, v in client_upgrade_headers(REMOTE_COMMAND_SPDY_PROTOCOLS)]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive()
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        pairs = [tuple(x.strip() for x in line.split(":", 1)) for line in header_lines]
        protocol = check_upgrade_response(
            status,
            [(k, v) for k, v in pairs],
            REMOTE_COMMAND_SPDY_PROTOCOLS,
            rest,
        )
        async with SpdySession(_Prefixed(stream, rest), server=False) as session:
            error = await session.open_stream({"streamType": "error"})
            stdin_stream = None
            if stdin is not None:  # the URL must ask for stdin=true
                stdin_stream = await session.open_stream({"streamType": "stdin"})
            wanted = dict(parse_qsl(parts.query))
            out, err, status_bytes = bytearray(), bytearray(), bytearray()
            async with anyio.create_task_group() as tg:
                for kind, sink in (("stdout", out), ("stderr", err)):
                    if wanted.get(kind) in ("1", "true"):
                        opened = await session.open_stream({"streamType": kind})
                        tg.start_soon(_drain, opened, sink)
                tg.start_soon(_drain, error, status_bytes)
                if stdin_stream is not None and stdin is not None:
                    await stdin_stream.send(stdin)
                    await stdin_stream.send_eof()
        code = decode_exit_status(bytes(status_bytes)) if protocol else 0
        return ExecResult(code, bytes(out), bytes(err))


async def websocket_exec(
    url: str,
    ssl_context: ssl.SSLContext,
    stdin: bytes | None = None,
    *,
    protocol: str = STREAM_PROTOCOL_V5,
    session: aiohttp.ClientSession | None = None,
) -> ExecResult:
    """Run the exec/attach at ``url`` over WebSocket with ``protocol`` (v5 closes stdin with
    the close signal); return the exit code and output."""
    codec = codec_for(protocol)
    own = session is None
    client = session or aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context))
    out, err, status = bytearray(), bytearray(), bytearray()
    try:
        async with client.ws_connect(url, protocols=[protocol], ssl=ssl_context) as ws:
            if stdin is not None:
                message = codec.encode(Channel.STDIN, stdin)
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)
                if codec.supports_close:
                    await ws.send_bytes(codec.encode_close(Channel.STDIN))
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    break
                decoded = codec.decode(msg.data)
                if decoded is None or decoded.close:
                    continue
                sinks = {Channel.STDOUT: out, Channel.STDERR: err, Channel.ERROR: status}
                sink = sinks.get(decoded.channel)  # type: ignore[call-overload]
                if sink is not None:
                    sink += decoded.data
    finally:
        if own:
            await client.close()
    return ExecResult(decode_exit_status(bytes(status)), bytes(out), bytes(err))
