"""The byte transport a SPDY session runs over, and an in-memory pair of them.

A session needs only ``receive`` / ``send`` / ``aclose``: any ``anyio.abc.ByteStream`` (a TCP or
TLS stream, a hijacked HTTP connection adapted to it, a WebSocket tunnel carrying SPDY as
``v2.portforward.k8s.io`` does) fits.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import anyio

__all__ = ["ByteTransport", "MemoryTransport", "memory_transport_pair"]


@runtime_checkable
class ByteTransport(Protocol):
    """A bidirectional byte stream.

    ``receive`` returns at least one byte, and signals the end of the stream by raising
    ``anyio.EndOfStream`` (or returning ``b""``).
    """

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive up to ``max_bytes`` bytes."""
        ...

    async def send(self, item: bytes) -> None:
        """Send all of ``item``."""
        ...

    async def aclose(self) -> None:
        """Close the transport."""
        ...


class _Pipe:
    """One direction: a bounded byte buffer (``send`` waits for room, like a TCP window)."""

    def __init__(self, max_buffer: int) -> None:
        self.buf = bytearray()
        self.max_buffer = max_buffer
        self.eof = False
        self.broken = False
        self._changed = anyio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self) -> None:
        await self._changed.wait()


class MemoryTransport:
    """One end of :func:`memory_transport_pair`; implements :class:`ByteTransport`."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive up to ``max_bytes`` bytes; ``anyio.EndOfStream`` once the peer closed."""
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._in.buf:
                data = bytes(self._in.buf[:max_bytes])
                del self._in.buf[:max_bytes]
                self._in.notify()
                return data
            if self._in.eof:
                raise anyio.EndOfStream
            await self._in.wait()

    async def send(self, item: bytes) -> None:
        """Append ``item`` to the peer's buffer, waiting while that buffer is full."""
        view = memoryview(item)
        while view:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._out.eof or self._out.broken:
                raise anyio.BrokenResourceError
            room = self._out.max_buffer - len(self._out.buf)
            if room <= 0:
                await self._out.wait()
                continue
            self._out.buf += view[:room]
            view = view[room:]
            self._out.notify()

    async def send_eof(self) -> None:
        """Half-close: the peer's ``receive`` ends after the buffered bytes."""
        self._out.eof = True
        self._out.notify()

    async def aclose(self) -> None:
        """Close both directions."""
        if self._closed:
            return
        self._closed = True
        self._out.eof = True
        self._in.broken = True  # the peer's sends now fail
        self._in.buf.clear()
        self._out.notify()
        self._in.notify()


def memory_transport_pair(max_buffer: int = 256 * 1024) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports with ``max_buffer`` bytes of buffer per direction."""
    a_to_b = _Pipe(max_buffer)
    b_to_a = _Pipe(max_buffer)
    return MemoryTransport(b_to_a, a_to_b), MemoryTransport(a_to_b, b_to_a)
