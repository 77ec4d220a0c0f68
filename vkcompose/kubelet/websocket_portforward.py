"""Port forwarding over WebSocket channels, as the kubelet serves it to clients that do not
tunnel SPDY (the Python client's ``portforward``, ``v4.channel.k8s.io`` or its base64 form).

Each requested port ``i`` has data channel ``2i`` and error channel ``2i + 1``. The kubelet
first writes the port (2 bytes, little-endian) on both; then bytes the client sends on a data
channel go to that port of the pod and what the pod answers comes back on it. A failure to
relay is written as text on the port's error channel. A WebSocket carries one connection per
port; closing it ends them all, and once every port's connection has ended the kubelet closes
it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable

import anyio
import anyio.abc
from aiohttp import WSMsgType, web
from anyio.streams.memory import MemoryObjectReceiveStream

from vkcompose.errors import VKComposeError
from vkcompose.kubelet.status import status_response
from vkcompose.kubelet.websocket_channels import (
    codec_for,
    encode_port_prefix,
    port_forward_channels,
)

__all__ = ["parse_ports", "serve_channel_port_forward"]

Forward = Callable[[int, anyio.abc.ByteStream], Awaitable[None]]
Send = Callable[[int, bytes], Awaitable[None]]


def parse_ports(values: Iterable[str]) -> list[int]:
    """The ports of ``port``/``ports`` query values (repeated or comma-separated).

    >>> parse_ports(["8080,9090", "53"])
    [8080, 9090, 53]
    """
    ports = []
    for value in values:
        for part in value.split(","):
            text = part.strip()
            if not text:
                continue
            if not text.isdigit() or not 0 < int(text) <= 0xFFFF:
                raise ValueError(f"unable to parse {text!r} as a port")
            ports.append(int(text))
    if not ports:
        raise ValueError("at least one port must be specified")
    return ports


class _ChannelStream(anyio.abc.ByteStream):
    """One port's data channel as a byte stream for the backend's relay."""

    def __init__(self, inbox: MemoryObjectReceiveStream[bytes], send: Send, channel: int):
        self._inbox = inbox
        self._send = send
        self._channel = channel
        self._rest = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._rest:
            self._rest = await self._inbox.receive()  # EndOfStream once the client is done
        data, self._rest = self._rest[:max_bytes], self._rest[max_bytes:]
        return data

    async def send(self, item: bytes) -> None:
        await self._send(self._channel, item)

    async def send_eof(self) -> None:
        """Channels have no half-close here: the pod's end is seen when the socket closes."""

    async def aclose(self) -> None:
        await self._inbox.aclose()


async def serve_channel_port_forward(
    request: web.BaseRequest,
    protocol: str,
    forward: Forward,
    *,
    describe: str,
) -> web.StreamResponse:
    """Serve one WebSocket of port forwarding with the channel ``protocol``."""
    try:
        ports = parse_ports([*request.query.getall("port", []), *request.query.getall("ports", [])])
        channels = [port_forward_channels(i) for i in range(len(ports))]
    except ValueError as exc:
        return status_response(400, str(exc))
    codec = codec_for(protocol)
    ws = web.WebSocketResponse(protocols=[protocol] if protocol else (), max_msg_size=1 << 20)
    await ws.prepare(request)
    lock = anyio.Lock()

    async def send(channel: int, data: bytes) -> None:
        message = codec.encode(channel, data)
        async with lock:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)

    pending = len(ports)

    async def relay(port: int, error: int, stream: _ChannelStream) -> None:
        nonlocal pending
        try:
            await forward(port, stream)
        except Exception as exc:
            detail = exc.message if isinstance(exc, VKComposeError) else str(exc)
            text = f"error forwarding port {port} to pod {describe}: {detail or type(exc).__name__}"
            with contextlib.suppress(Exception):
                await send(error, text.encode())
        finally:
            await stream.aclose()  # what the client still sends this port is dropped
            pending -= 1
            if not pending:
                # every connection ended: the kubelet closes the socket
                with contextlib.suppress(ConnectionError):
                    await ws.close()

    inboxes = {}
    try:
        async with anyio.create_task_group() as tg:
            for port, (data, error) in zip(ports, channels, strict=True):
                await send(data, encode_port_prefix(port))
                await send(error, encode_port_prefix(port))
                tx, rx = anyio.create_memory_object_stream[bytes](64)
                inboxes[data] = tx
                tg.start_soon(relay, port, error, _ChannelStream(rx, send, data))
            async for message in ws:
                if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                    break
                try:
                    decoded = codec.decode(message.data)
                except ValueError:
                    break
                if decoded is None or decoded.channel not in inboxes:
                    continue  # nothing to forward (an error channel, an empty frame)
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    # at most 64 messages wait per port (a bounded socket frame each)
                    await inboxes[decoded.channel].send(decoded.data)
            tg.cancel_scope.cancel()  # the client is gone: so are its connections
    except (ConnectionError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        for tx in inboxes.values():
            tx.close()
        with contextlib.suppress(ConnectionError):
            await ws.close()
    return ws
