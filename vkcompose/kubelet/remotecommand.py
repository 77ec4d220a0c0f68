"""Exec and attach sessions over SPDY/3.1 and WebSocket (the kubelet's remote-command server).

Both transports end in the same place: an :class:`~vkcompose.ops.ExecIO` whose stdin, stdout,
stderr and resize streams are backed by the client's streams (SPDY) or channels (WebSocket),
handed to ``run`` (which sends an ``Exec`` or ``Attach`` op through the pipeline). When ``run``
returns, the outcome goes on the error stream/channel (``metav1.Status`` from v4 on: the exit
code travels as a ``NonZeroExitCode`` cause) and the session is closed.
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
    REMOTE_COMMAND_SPDY_PROTOCOLS,
    Channel,
    ExecOptions,
    ResizeDecoder,
    StreamType,
    error_stream_payload,
    expected_stream_types,
)
from vkcompose.kubelet.hijack import switch_protocols
from vkcompose.kubelet.spdy import SessionConfig, SpdySession, SpdyStream, negotiate_upgrade
from vkcompose.kubelet.status import status_response
from vkcompose.kubelet.websocket_channels import (
    EXEC_WEBSOCKET_PROTOCOLS,
    ChannelCodec,
    codec_for,
    select_subprotocol,
)
from vkcompose.ops import ExecIO, TerminalSize

__all__ = [
    "RunCommand",
    "is_websocket_request",
    "serve_spdy",
    "serve_websocket",
    "websocket_protocols",
]

log = logging.getLogger(__name__)

RunCommand = Callable[[ExecIO], Awaitable[int]]
"""Runs the command (or attaches) wired to the given streams; returns the exit code."""

_BROKEN: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError)


def is_websocket_request(request: web.BaseRequest) -> bool:
    """Whether ``request`` asks for a WebSocket upgrade."""
    return request.headers.get("Upgrade", "").lower() == "websocket"


def websocket_protocols(request: web.BaseRequest) -> list[str]:
    """The subprotocols a WebSocket request offers, in its order."""
    values = request.headers.getall("Sec-WebSocket-Protocol", [])
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


async def _run(run: RunCommand, io: ExecIO) -> tuple[int | None, str | None]:
    try:
        return await run(io), None
    except VKComposeError as exc:
        return None, exc.message or exc.reason
    except _BROKEN:
        return None, "the client went away"


async def _pump_resize(
    source: anyio.abc.ByteReceiveStream, sink: anyio.abc.ObjectSendStream[TerminalSize]
) -> None:
    decoder = ResizeDecoder()
    async with sink:
        with contextlib.suppress(anyio.EndOfStream, ValueError, *_BROKEN):
            while True:
                for size in decoder.feed(await source.receive()):
                    await sink.send(size)


# ------------------------------------------------------------------------------------ SPDY
async def serve_spdy(
    request: web.BaseRequest,
    options: ExecOptions,
    run: RunCommand,
    *,
    config: SessionConfig | None = None,
) -> web.StreamResponse:
    """Upgrade ``request`` to SPDY/3.1 and run one remote-command session over it."""
    decision = negotiate_upgrade(request.headers.items(), REMOTE_COMMAND_SPDY_PROTOCOLS)
    if not decision.ok:
        return web.Response(
            status=decision.status,
            headers=dict(decision.headers),
            body=decision.body,
            content_type=decision.content_type,
        )
    protocol = decision.protocol or ""
    config = config or SessionConfig()
    response, connection = await switch_protocols(request, decision.headers)
    try:
        async with SpdySession(connection, server=True, config=config) as session:
            expected = expected_stream_types(options, protocol)
            streams: dict[str, SpdyStream] = {}
            try:
                with anyio.fail_after(config.stream_creation_timeout):
                    while set(streams) != set(expected):
                        stream = await session.accept()
                        kind = stream.header("streamType") or ""
                        if kind not in expected or kind in streams:
                            await stream.reset()
                            continue
                        streams[kind] = stream
            except TimeoutError:
                log.info("exec: the client did not create its streams in time")
                return response
            await _spdy_session(streams, protocol, options, run)
    except _BROKEN:
        pass
    finally:
        await connection.aclose()
    return response


async def _spdy_session(
    streams: dict[str, SpdyStream], protocol: str, options: ExecOptions, run: RunCommand
) -> None:
    error = streams[StreamType.ERROR]
    async with anyio.create_task_group() as tg:
        resize_rx: anyio.abc.ObjectReceiveStream[TerminalSize] | None = None
        if StreamType.RESIZE in streams:
            resize_tx, resize_rx = anyio.create_memory_object_stream[TerminalSize](16)
            tg.start_soon(_pump_resize, streams[StreamType.RESIZE], resize_tx)
        io = ExecIO(
            stdin=streams.get(StreamType.STDIN),
            stdout=streams.get(StreamType.STDOUT),
            stderr=streams.get(StreamType.STDERR),
            tty=options.tty,
            resize=resize_rx,
        )
        code, message = await _run(run, io)
        with contextlib.suppress(*_BROKEN):
            payload = error_stream_payload(protocol, code, message)
            if payload:
                await error.send(payload)
            for kind in (StreamType.STDOUT, StreamType.STDERR, StreamType.ERROR):
                if kind in streams:
                    await streams[kind].close()
        tg.cancel_scope.cancel()


# ------------------------------------------------------------------------------- WebSocket
class _ChannelReader(anyio.abc.ByteReceiveStream):
    """stdin fed by the WebSocket reader."""

    def __init__(self) -> None:
        self.tx, self._rx = anyio.create_memory_object_stream[bytes](64)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return await self._rx.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise anyio.EndOfStream from None

    async def aclose(self) -> None:
        await self._rx.aclose()


class _ChannelWriter(anyio.abc.ByteSendStream):
    """stdout/stderr/error as messages on one channel."""

    def __init__(self, ws: web.WebSocketResponse, codec: ChannelCodec, channel: int) -> None:
        self._ws = ws
        self._codec = codec
        self._channel = channel
        self._closed = False

    async def send(self, item: bytes) -> None:
        if self._closed or self._ws.closed:
            raise anyio.BrokenResourceError
        message = self._codec.encode(self._channel, item)
        try:
            if isinstance(message, str):
                await self._ws.send_str(message)
            else:
                await self._ws.send_bytes(message)
        except ConnectionError as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._codec.supports_close and not self._ws.closed:
            with contextlib.suppress(ConnectionError):
                await self._ws.send_bytes(self._codec.encode_close(self._channel))


async def serve_websocket(
    request: web.BaseRequest,
    options: ExecOptions,
    run: RunCommand,
    *,
    idle_timeout: float | None = None,
) -> web.StreamResponse:
    """Accept a WebSocket remote-command session (binary, base64 and v5 subprotocols)."""
    offered = websocket_protocols(request)
    chosen = select_subprotocol(offered, EXEC_WEBSOCKET_PROTOCOLS)
    if chosen is None:
        return status_response(
            400, f"none of the requested subprotocols {offered} is supported for exec"
        )
    ws = web.WebSocketResponse(
        protocols=[chosen] if chosen else (), max_msg_size=16 << 20, autoping=True
    )
    await ws.prepare(request)
    codec = codec_for(ws.ws_protocol or "")
    stdin = _ChannelReader() if options.stdin else None
    decoder = ResizeDecoder()
    resize_tx, resize_rx = anyio.create_memory_object_stream[TerminalSize](16)

    async def read_loop() -> None:
        try:
            while True:
                with anyio.fail_after(idle_timeout) if idle_timeout else contextlib.nullcontext():
                    msg = await ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if msg.type is WSMsgType.ERROR:
                    break
                if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                    continue
                try:
                    decoded = codec.decode(msg.data)
                except ValueError:
                    break
                if decoded is None:
                    continue
                if decoded.close:
                    if decoded.channel == Channel.STDIN and stdin is not None:
                        await stdin.tx.aclose()
                    continue
                if decoded.channel == Channel.STDIN and stdin is not None and decoded.data:
                    with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                        await stdin.tx.send(decoded.data)
                elif decoded.channel == Channel.RESIZE and options.tty:
                    try:
                        sizes = decoder.feed(decoded.data)
                    except ValueError:
                        continue
                    for size in sizes:
                        with contextlib.suppress(anyio.WouldBlock):
                            resize_tx.send_nowait(size)
        except TimeoutError:
            log.info("exec: WebSocket session idle for too long")
        finally:
            if stdin is not None:
                await stdin.tx.aclose()
            await resize_tx.aclose()

    error = _ChannelWriter(ws, codec, Channel.ERROR)
    stdout = _ChannelWriter(ws, codec, Channel.STDOUT) if options.stdout else None
    stderr = _ChannelWriter(ws, codec, Channel.STDERR) if options.stderr else None
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_loop)
        io = ExecIO(
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            tty=options.tty,
            resize=resize_rx if options.tty else None,
        )
        code, message = await _run(run, io)
        with contextlib.suppress(*_BROKEN):
            payload = error_stream_payload(codec.protocol, code, message)
            if payload:
                await error.send(payload)
        with contextlib.suppress(*_BROKEN):
            await ws.close()
        tg.cancel_scope.cancel()
    return ws
