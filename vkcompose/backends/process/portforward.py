"""Port-forward: pods share the host network, so a pod port is ``127.0.0.1:<port>``."""

from __future__ import annotations

import contextlib

import anyio
import anyio.abc

from vkcompose.errors import NotFound


async def _pump(source: anyio.abc.ByteReceiveStream, sink: anyio.abc.ByteSendStream) -> None:
    with contextlib.suppress(
        anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError
    ):
        async for chunk in source:
            await sink.send(chunk)
    with contextlib.suppress(Exception):
        if isinstance(sink, anyio.abc.SocketStream):
            await sink.send_eof()
        else:
            await sink.aclose()


async def relay(stream: anyio.abc.ByteStream, port: int, host: str = "127.0.0.1") -> None:
    """Connect to ``host:port`` and copy bytes both ways until both directions end."""
    try:
        conn = await anyio.connect_tcp(host, port)
    except OSError as e:
        raise NotFound(f"nothing listens on port {port} of the pod: {e.strerror or e}") from e
    async with conn, anyio.create_task_group() as tg:
        tg.start_soon(_pump, stream, conn)
        await _pump(conn, stream)
        tg.cancel_scope.cancel()


__all__ = ["relay"]
