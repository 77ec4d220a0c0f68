"""Take over an aiohttp server connection after ``101 Switching Protocols``.

aiohttp serves WebSocket itself, but SPDY (exec, attach, port-forward) needs the raw bytes of the
connection once the upgrade is answered. :func:`switch_protocols` writes the 101 and returns a
:class:`HijackedConnection`, a byte transport (``receive`` / ``send`` / ``aclose``) that a
:class:`~vkcompose.kubelet.spdy.SpdySession` runs over. The request handler must keep running
while the connection is in use; when it returns, aiohttp closes the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import anyio
from aiohttp import web

__all__ = ["HijackedConnection", "switch_protocols"]

_HIGH_WATER = 1 << 20


class HijackedConnection:
    """The raw byte stream of an upgraded aiohttp server connection.

    Incoming bytes are buffered (up to about 1 MiB, then the socket stops being read: TCP
    backpressure); ``send`` waits while the socket's write buffer is full.
    """

    def __init__(self, request: web.BaseRequest) -> None:
        protocol = request.protocol
        transport = request.transport
        if protocol is None or transport is None:
            raise ConnectionResetError("the connection is already closed")
        self._protocol: Any = protocol
        self._transport: asyncio.Transport = transport
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        self._paused = False
        self._waiter = asyncio.Event()

    # ---------------------------------------------------------- aiohttp payload-parser side
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Called by aiohttp with each chunk read from the socket."""
        self._buffer += data
        self._waiter.set()
        if len(self._buffer) > _HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        """Called by aiohttp when the connection is lost."""
        self._eof = True
        self._waiter.set()

    # ------------------------------------------------------------------ transport side
    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` bytes; ``anyio.EndOfStream`` once the peer has gone."""
        while not self._buffer:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._eof:
                raise anyio.EndOfStream
            self._waiter.clear()
            await self._waiter.wait()
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        if self._paused and len(self._buffer) < _HIGH_WATER // 2:
            self._paused = False
            if not self._transport.is_closing():
                self._transport.resume_reading()
        return data

    async def send(self, item: bytes) -> None:
        """Write ``item``, waiting while the socket's write buffer is over its high mark."""
        if self._closed:
            raise anyio.ClosedResourceError
        if self._transport.is_closing():
            raise anyio.BrokenResourceError
        self._transport.write(item)
        try:
            await self._protocol._drain_helper()
        except ConnectionError as exc:
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        """Half-close the write side (when the transport supports it)."""
        if self._transport.can_write_eof():
            self._transport.write_eof()

    async def aclose(self) -> None:
        """Close the connection."""
        if not self._closed:
            self._closed = True
            self._waiter.set()
            self._transport.close()


async def switch_protocols(
    request: web.BaseRequest, headers: Iterable[tuple[str, str]]
) -> tuple[web.StreamResponse, HijackedConnection]:
    """Answer ``101 Switching Protocols`` with ``headers`` and take over the connection.

    Return the prepared response (return it from the handler once done) and the connection.
    """
    response = web.StreamResponse(status=101)
    for name, value in headers:
        response.headers.add(name, value)
    connection = HijackedConnection(request)
    await response.prepare(request)
    request.protocol.keep_alive(False)
    request.protocol.set_parser(connection)  # type: ignore[arg-type]
    return response, connection
