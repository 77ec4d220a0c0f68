"""Port-forward sessions: SPDY ``portforward.k8s.io``, directly or tunnelled in WebSocket.

kubectl opens one connection per ``kubectl port-forward`` and, for every local connection, a
pair of streams (``error`` then ``data``) sharing a ``requestID`` and naming the ``port``. The
data stream is handed to ``forward(port, stream)`` (which sends a ``PortForward`` op through the
pipeline); a failure is reported on the error stream, as the kubelet does.

KEP-4006 clients (kubectl ≥ 1.31) first try a WebSocket with subprotocol
``SPDY/3.1+portforward.k8s.io``: the same SPDY session, its bytes carried in binary WebSocket
messages. Both are served here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import anyio.abc
from aiohttp import WSMsgType, web

from vkcompose.errors import VKComposeError
from vkcompose.kubelet.channels import (
    PORT_FORWARD_PROTOCOL_V1,
    PORT_FORWARD_SPDY_PROTOCOLS,
    PORT_HEADER,
    STREAM_TYPE_HEADER,
    StreamType,
    parse_port,
    port_forward_error,
    port_forward_request_id,
)
from vkcompose.kubelet.hijack import switch_protocols
from vkcompose.kubelet.spdy import (
    ByteTransport,
    SessionConfig,
    SpdySession,
    SpdySessionClosed,
    SpdyStream,
    negotiate_upgrade,
)
from vkcompose.kubelet.spdy.frames import Headers, first_header
from vkcompose.kubelet.status import status_response

__all__ = [
    "TUNNELING_PROTOCOL",
    "Forward",
    "WebSocketTransport",
    "run_port_forward_session",
    "serve_spdy_port_forward",
    "serve_websocket_port_forward",
]

log = logging.getLogger(__name__)

TUNNELING_PROTOCOL: Final = "SPDY/3.1+" + PORT_FORWARD_PROTOCOL_V1
"""The WebSocket subprotocol of SPDY-over-WebSocket port forwarding (KEP-4006)."""

Forward = Callable[[int, anyio.abc.ByteStream], Awaitable[None]]
"""Relays one connection to ``port`` of the pod until either side closes."""

_BROKEN: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError)


def _valid_stream(headers: Headers) -> bool:
    kind = first_header(headers, STREAM_TYPE_HEADER)
    if kind not in (StreamType.DATA, StreamType.ERROR):
        return False
    try:
        parse_port(first_header(headers, PORT_HEADER))
    except ValueError:
        return False
    return True


async def _serve_pair(data: SpdyStream, error: SpdyStream, forward: Forward, describe: str) -> None:
    port = parse_port(data.header(PORT_HEADER))
    message = ""
    try:
        await forward(port, data)
    except VKComposeError as exc:
        message = f"error forwarding port {port} to pod {describe}: {exc.message or exc.reason}"
    except _BROKEN:
        pass
    except Exception as exc:
        log.exception("port-forward to %s:%d failed", describe, port)
        message = f"error forwarding port {port} to pod {describe}: {type(exc).__name__}"
    with contextlib.suppress(*_BROKEN):
        if message:
            await error.send(port_forward_error(message))
        await error.close()
        await data.close()


async def run_port_forward_session(
    transport: ByteTransport, forward: Forward, *, config: SessionConfig, describe: str
) -> None:
    """Serve port-forward stream pairs over ``transport`` until the client goes away."""
    session = SpdySession(transport, server=True, config=config, stream_filter=_valid_stream)
    pending: dict[str, dict[str, SpdyStream]] = {}

    async def expire(request_id: str) -> None:
        await anyio.sleep(config.stream_creation_timeout)
        pair = pending.pop(request_id, None)
        if pair:
            log.info("port-forward: stream pair %s incomplete, resetting", request_id)
            for stream in pair.values():
                await stream.reset()

    async with session, anyio.create_task_group() as tg:
        timers: dict[str, anyio.CancelScope] = {}
        while True:
            try:
                stream = await session.accept()
            except SpdySessionClosed:
                break
            request_id = port_forward_request_id(stream.headers, stream.id)
            kind = stream.header(STREAM_TYPE_HEADER) or ""
            pair = pending.setdefault(request_id, {})
            if kind in pair:
                await stream.reset()
                continue
            pair[kind] = stream
            if len(pair) == 1:
                scope = anyio.CancelScope()
                timers[request_id] = scope

                async def timer(rid: str = request_id, cs: anyio.CancelScope = scope) -> None:
                    with cs:
                        await expire(rid)

                tg.start_soon(timer)
                continue
            del pending[request_id]
            timers.pop(request_id).cancel()
            tg.start_soon(
                _serve_pair, pair[StreamType.DATA], pair[StreamType.ERROR], forward, describe
            )
        tg.cancel_scope.cancel()


async def serve_spdy_port_forward(
    request: web.BaseRequest, forward: Forward, *, config: SessionConfig, describe: str
) -> web.StreamResponse:
    """Upgrade ``request`` to SPDY/3.1 (``portforward.k8s.io``) and serve forwards over it."""
    decision = negotiate_upgrade(request.headers.items(), PORT_FORWARD_SPDY_PROTOCOLS)
    if not decision.ok:
        return web.Response(
            status=decision.status,
            headers=dict(decision.headers),
            body=decision.body,
            content_type=decision.content_type,
        )
    response, connection = await switch_protocols(request, decision.headers)
    try:
        await run_port_forward_session(connection, forward, config=config, describe=describe)
    except _BROKEN:
        pass
    finally:
        await connection.aclose()
    return response


class WebSocketTransport:
    """A byte transport over binary WebSocket messages (how KEP-4006 tunnels SPDY)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._pending = b""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Bytes of the next binary message(s); ``anyio.EndOfStream`` once closed."""
        while not self._pending:
            msg = await self._ws.receive()
            if msg.type is WSMsgType.BINARY:
                self._pending = msg.data
            elif msg.type is WSMsgType.TEXT:
                self._pending = msg.data.encode()
            elif msg.type in (WSMsgType.PING, WSMsgType.PONG):
                continue
            else:
                raise anyio.EndOfStream
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send(self, item: bytes) -> None:
        """Send ``item`` as one binary message."""
        if self._ws.closed:
            raise anyio.BrokenResourceError
        try:
            await self._ws.send_bytes(item)
        except ConnectionError as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        """Close the WebSocket."""
        with contextlib.suppress(ConnectionError):
            await self._ws.close()


async def serve_websocket_port_forward(
    request: web.BaseRequest,
    offered: list[str],
    forward: Forward,
    *,
    config: SessionConfig,
    describe: str,
) -> web.StreamResponse:
    """Serve SPDY-over-WebSocket port forwarding (``SPDY/3.1+portforward.k8s.io``)."""
    if TUNNELING_PROTOCOL not in offered:
        return status_response(
            400, f"none of the requested subprotocols {offered} is supported for port-forward"
        )
    ws = web.WebSocketResponse(protocols=[TUNNELING_PROTOCOL], max_msg_size=16 << 20)
    await ws.prepare(request)
    transport = WebSocketTransport(ws)
    try:
        await run_port_forward_session(transport, forward, config=config, describe=describe)
    except _BROKEN:
        pass
    finally:
        await transport.aclose()
    return ws
