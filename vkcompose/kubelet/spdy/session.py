"""A SPDY/3.1 session over a byte transport (anyio), in the server or the client role.

Kubernetes opens one SPDY connection per exec/attach/port-forward request: the client
(kubectl, or kube-apiserver proxying for it) opens streams with SYN_STREAM and a
``streamType`` header; the kubelet accepts them, replies with SYN_REPLY and moves bytes.

Usage::

    async with SpdySession(transport, server=True) as session:
        stream = await session.accept(timeout=30)
        data = await stream.receive()
        await stream.send(b"out")
        await stream.close()          # half-close (FIN), as Go's Stream.Close()

Flow control. SPDY/3.1 windows (per stream and per session, 64 KiB initially) are honoured
with peers that speak them, but the Go implementation Kubernetes uses (moby/spdystream) never
sends SETTINGS or WINDOW_UPDATE and ignores them. :class:`FlowControl` therefore defaults to
``AUTO``: this end always advertises its windows (SETTINGS first, WINDOW_UPDATE as the
application consumes) and enforces the peer's windows once the peer has shown it speaks flow
control (it sent SETTINGS or WINDOW_UPDATE). Received data is buffered per stream up to the
stream window; with a peer that ignores windows, a full buffer stops the reader (TCP
backpressure, what spdystream itself does), with a flow-controlled peer no stream can ever
block another.

Concurrency: one reader task parses frames and never blocks on the transport's send side; one
writer task owns the compression context and the transport's send side, control frames first.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

import anyio
import anyio.abc

from vkcompose.kubelet.spdy.frames import (
    CONTROL_FLAG_FIN,
    CONTROL_FLAG_UNIDIRECTIONAL,
    DATA_FLAG_FIN,
    DEFAULT_INITIAL_WINDOW_SIZE,
    DEFAULT_MAX_CONTROL_FRAME_SIZE,
    DEFAULT_MAX_DATA_FRAME_SIZE,
    DEFAULT_MAX_HEADER_BLOCK_SIZE,
    MAX_STREAM_ID,
    MAX_WINDOW_SIZE,
    DataFrame,
    Frame,
    FrameReader,
    FrameWriter,
    GoAwayFrame,
    GoAwayStatus,
    Headers,
    HeadersFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    Setting,
    SettingId,
    SettingsFrame,
    SpdyProtocolError,
    SynReplyFrame,
    SynStreamFrame,
    UnknownControlFrame,
    WindowUpdateFrame,
    normalize_headers,
)
from vkcompose.kubelet.spdy.transport import ByteTransport

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_STREAM_CREATION_TIMEOUT",
    "FlowControl",
    "SessionConfig",
    "SpdySession",
    "SpdySessionClosed",
    "SpdyStream",
    "SpdyStreamReset",
]

log = logging.getLogger(__name__)

#: node-cli / kubelet ``--streaming-connection-idle-timeout`` default.
DEFAULT_IDLE_TIMEOUT: Final = 4 * 3600.0
#: How long to wait for the peer to create (or acknowledge) streams.
DEFAULT_STREAM_CREATION_TIMEOUT: Final = 30.0


class FlowControl(enum.Enum):
    """How SPDY/3.1 flow-control windows are used (see the module docstring)."""

    #: advertise ours; enforce the peer's once it shows it speaks flow control
    AUTO = "auto"
    #: strict SPDY/3.1: enforce both ways, reset streams that overrun our window
    ON = "on"
    #: spdystream behaviour: no SETTINGS, no WINDOW_UPDATE, windows never enforced
    OFF = "off"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Tunables of a :class:`SpdySession`."""

    #: receive window of each stream (also the per-stream buffer bound), advertised in SETTINGS
    initial_window_size: int = DEFAULT_INITIAL_WINDOW_SIZE
    #: session receive window; credited as data arrives (stream windows bound the buffering)
    session_window_size: int = DEFAULT_INITIAL_WINDOW_SIZE
    #: largest DATA payload this end sends
    max_send_frame_size: int = 32 * 1024
    max_data_frame_size: int = DEFAULT_MAX_DATA_FRAME_SIZE
    max_control_frame_size: int = DEFAULT_MAX_CONTROL_FRAME_SIZE
    max_header_block_size: int = DEFAULT_MAX_HEADER_BLOCK_SIZE
    #: peer-opened streams alive or waiting in ``accept`` beyond this are refused
    max_concurrent_streams: int = 1000
    flow_control: FlowControl = FlowControl.AUTO
    #: close the session when no frame moved for this long (``None``: never)
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    #: default wait for SYN_REPLY in :meth:`SpdySession.open_stream`
    stream_creation_timeout: float = DEFAULT_STREAM_CREATION_TIMEOUT
    #: queued control frames beyond this mean the peer floods us without reading: close
    max_pending_control_frames: int = 10_000
    #: how long :meth:`SpdySession.aclose` waits to flush queued frames
    close_timeout: float = 5.0
    read_size: int = 64 * 1024


class SpdySessionClosed(anyio.BrokenResourceError):
    """The session is gone (closed locally, by the peer, by GOAWAY, or on a protocol error)."""


class SpdyStreamReset(anyio.BrokenResourceError):
    """The stream was reset (``status`` is the RST_STREAM status; ``by_peer`` who did it)."""

    def __init__(self, stream_id: int, status: int, *, by_peer: bool) -> None:
        name = RstStatus(status).name if status in RstStatus._value2member_map_ else str(status)
        who = "peer" if by_peer else "local end"
        super().__init__(f"stream {stream_id} reset by {who}: {name}")
        self.stream_id = stream_id
        self.status = status
        self.by_peer = by_peer


class _Signal:
    """Wake every current waiter (a re-armed ``anyio.Event``)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass(slots=True)
class _PendingData:
    frame: DataFrame
    done: anyio.Event
    sent: bool = False


class SpdyStream(anyio.abc.ByteStream):
    """One SPDY stream: an ``anyio`` byte stream with half-close and reset.

    ``receive`` raises ``anyio.EndOfStream`` after the peer's FIN, :class:`SpdyStreamReset`
    after a reset and :class:`SpdySessionClosed` when the session died first.
    """

    def __init__(
        self,
        session: SpdySession,
        stream_id: int,
        headers: Headers,
        *,
        local: bool,
        send_window: int,
        recv_window: int,
    ) -> None:
        self._session = session
        self.id = stream_id
        #: headers of the SYN_STREAM that opened the stream
        self.headers = headers
        #: headers of the SYN_REPLY (streams this end opened)
        self.reply_headers: Headers = {}
        #: headers of later HEADERS frames, in arrival order
        self.extra_headers: list[Headers] = []
        self.local = local
        self._replied = not local
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._send_window = send_window
        self._recv_window = recv_window
        self._recv_unacked = 0
        self._local_closed = False  # FIN sent (or unidirectional)
        self._remote_closed = False  # FIN received
        self._abandoned = False  # aclose(): incoming data is dropped
        self._reset: SpdyStreamReset | None = None
        self._changed = _Signal()

    def __repr__(self) -> str:
        return f"<SpdyStream {self.id} {'local' if self.local else 'remote'} {self.state}>"

    # ----------------------------------------------------------------------------- state
    @property
    def state(self) -> str:
        """``open``, ``half-closed-local``, ``half-closed-remote``, ``closed`` or ``reset``."""
        if self._reset is not None:
            return "reset"
        if self._local_closed and self._remote_closed:
            return "closed"
        if self._local_closed:
            return "half-closed-local"
        if self._remote_closed:
            return "half-closed-remote"
        return "open"

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return self._buffered

    def header(self, name: str) -> str | None:
        """First value of the opening header ``name`` (case-insensitive)."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def _finished(self) -> bool:
        return self._reset is not None or (self._local_closed and self._remote_closed)

    def _check_alive(self) -> None:
        if self._reset is not None:
            raise self._reset
        if self._session._error is not None:
            raise self._session._error

    # -------------------------------------------------------------------------- receive
    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive up to ``max_bytes`` bytes (at least one)."""
        while True:
            if self._buffer:
                chunk = self._buffer.popleft()
                if len(chunk) > max_bytes:
                    self._buffer.appendleft(chunk[max_bytes:])
                    chunk = chunk[:max_bytes]
                self._buffered -= len(chunk)
                self._session._consumed(self, len(chunk))
                return chunk
            if self._reset is not None:
                raise self._reset
            if self._remote_closed:
                raise anyio.EndOfStream
            if self._abandoned:
                raise anyio.ClosedResourceError
            if self._session._error is not None:
                raise self._session._error
            await self._changed.wait()

    async def read_all(self, limit: int = 1 << 20) -> bytes:
        """Receive until the peer's FIN (at most ``limit`` bytes; more is an error)."""
        parts: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = await self.receive()
            except anyio.EndOfStream:
                return b"".join(parts)
            size += len(chunk)
            if size > limit:
                raise ValueError(f"stream {self.id} carried more than {limit} bytes")
            parts.append(chunk)

    # ----------------------------------------------------------------------------- send
    async def send(self, item: bytes) -> None:
        """Send ``item``, split into DATA frames and paced by flow control."""
        self._check_alive()
        if self._local_closed:
            raise anyio.ClosedResourceError
        view = memoryview(item)
        while view:
            size = await self._session._reserve_send_window(self, len(view))
            chunk = bytes(view[:size])
            view = view[size:]
            await self._session._send_data(self, DataFrame(self.id, chunk))

    async def send_eof(self) -> None:
        """Half-close: send FIN (an empty DATA frame). Idempotent."""
        if self._local_closed or self._reset is not None:
            return
        self._check_alive()
        self._local_closed = True
        await self._session._send_data(self, DataFrame(self.id, b"", DATA_FLAG_FIN))
        self._session._maybe_forget(self)

    async def close(self) -> None:
        """Half-close the stream (FIN), like Go's ``Stream.Close``: receiving goes on."""
        await self.send_eof()

    async def reset(self, status: int = RstStatus.CANCEL) -> None:
        """Abort both directions with RST_STREAM(``status``). Idempotent."""
        if self._finished():
            return
        self._session._reset_stream(self, status, by_peer=False, send=True)

    async def aclose(self) -> None:
        """Done with the stream: half-close, and drop whatever the peer still sends."""
        self._abandoned = True
        self._buffer.clear()
        self._session._consumed(self, self._buffered)
        self._buffered = 0
        self._changed.notify()
        if self._session._error is None and self._reset is None:
            with contextlib.suppress(anyio.BrokenResourceError):
                await self.send_eof()
        self._session._maybe_forget(self)

    async def wait_reply(self) -> None:
        """Wait for the peer's SYN_REPLY (streams opened by this end)."""
        while not self._replied:
            self._check_alive()
            await self._changed.wait()
        self._check_alive()


class SpdySession:
    """A SPDY/3.1 connection; use as an async context manager.

    ``server=True`` for the end that accepts streams (the kubelet): it expects odd stream ids
    from the peer and opens even ones itself. ``stream_filter`` may refuse peer streams by
    their headers (RST_STREAM REFUSED_STREAM), as the kubelet does for bad port-forward
    streams.
    """

    def __init__(
        self,
        transport: ByteTransport,
        *,
        server: bool,
        config: SessionConfig | None = None,
        stream_filter: Callable[[Headers], bool] | None = None,
    ) -> None:
        self.transport = transport
        self.server = server
        self.config = config = config or SessionConfig()
        self._stream_filter = stream_filter
        self._reader = FrameReader(
            max_data_frame_size=config.max_data_frame_size,
            max_control_frame_size=config.max_control_frame_size,
            max_header_block_size=config.max_header_block_size,
        )
        self._writer = FrameWriter()
        self._streams: dict[int, SpdyStream] = {}
        self._next_stream_id = 2 if server else 1
        self._last_peer_stream_id = 0
        self._next_ping_id = 2 if server else 1
        self._pings: dict[int, anyio.Event] = {}
        self._accept_queue: deque[SpdyStream] = deque()
        self._accept_signal = _Signal()
        self._control: deque[Frame] = deque()
        self._data: deque[_PendingData] = deque()
        self._writer_signal = _Signal()
        self._flushed = _Signal()
        self._peer_flow_control = config.flow_control is FlowControl.ON
        self._peer_initial_window = DEFAULT_INITIAL_WINDOW_SIZE
        self._send_window = DEFAULT_INITIAL_WINDOW_SIZE  # session-level, granted by the peer
        self._session_recv_unacked = 0
        self._goaway_sent = False
        self._goaway_received = False
        self._closing = False
        self._error: SpdySessionClosed | None = None
        self._closed = anyio.Event()
        self._last_activity = 0.0
        self._tg: anyio.abc.TaskGroup | None = None
        #: why the session ended (``None`` while it runs or after a clean close)
        self.close_reason: BaseException | None = None

    # -------------------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> Self:
        self._last_activity = anyio.current_time()
        if self.config.flow_control is not FlowControl.OFF:
            settings = [Setting(SettingId.INITIAL_WINDOW_SIZE, self.config.initial_window_size)]
            self._control.append(SettingsFrame(tuple(settings)))
            extra = self.config.session_window_size - DEFAULT_INITIAL_WINDOW_SIZE
            if extra > 0:
                self._control.append(WindowUpdateFrame(0, extra))
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._read_loop, name="spdy-reader")
        self._tg.start_soon(self._write_loop, name="spdy-writer")
        if self.config.idle_timeout is not None:
            self._tg.start_soon(self._idle_watchdog, name="spdy-idle")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        # shielded: a cancelled body must still leave the task group entered in __aenter__
        # (aclose is bounded: close_timeout for the flush, and the transport close is shielded)
        with anyio.CancelScope(shield=True):
            await self.aclose()
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
            # the body's own error propagates as is (not wrapped in an exception group)
            await self._tg.__aexit__(None, None, None)
            return None
        return await self._tg.__aexit__(exc_type, exc, tb)

    @property
    def closed(self) -> bool:
        """Whether the session has ended."""
        return self._error is not None

    @property
    def active_streams(self) -> int:
        """Streams not yet fully closed or reset."""
        return len(self._streams)

    @property
    def peer_flow_control(self) -> bool:
        """Whether the peer's windows are being enforced."""
        return self._peer_flow_control

    async def wait_closed(self) -> None:
        """Wait until the session has ended (and its transport is closed)."""
        await self._closed.wait()

    async def goaway(self, status: int = GoAwayStatus.OK) -> None:
        """Send GOAWAY: the peer may open no more streams; existing ones go on."""
        if self._goaway_sent or self._error is not None:
            return
        self._goaway_sent = True
        self._queue_control(GoAwayFrame(self._last_peer_stream_id, status))

    async def aclose(self) -> None:
        """Reset open streams, send GOAWAY, flush, close the transport. Idempotent."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        if self._error is None:
            for stream in list(self._streams.values()):
                if not stream._finished():
                    self._reset_stream(stream, RstStatus.CANCEL, by_peer=False, send=True)
            if not self._goaway_sent:
                self._goaway_sent = True
                self._queue_control(GoAwayFrame(self._last_peer_stream_id, GoAwayStatus.OK))
            with anyio.move_on_after(self.config.close_timeout, shield=True):
                while (self._control or self._data) and self._error is None:
                    await self._flushed.wait()
        await self._terminate(None)

    async def _terminate(self, reason: BaseException | None) -> None:
        """End the session: fail every waiter, close the transport."""
        if self._error is None:
            message = "SPDY session closed" if reason is None else f"SPDY session failed: {reason}"
            self._error = SpdySessionClosed(message)
            if reason is not None:
                self.close_reason = reason
            if reason is not None:
                log.debug("SPDY session ended: %s", reason)
            for stream in self._streams.values():
                stream._changed.notify()
            for item in self._data:
                item.done.set()
            self._data.clear()
            self._control.clear()
            for event in self._pings.values():
                event.set()
            self._accept_signal.notify()
            self._writer_signal.notify()
            self._flushed.notify()
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(Exception):  # closing is best effort
                    await self.transport.aclose()
            self._closed.set()
        else:
            await self._closed.wait()

    # ------------------------------------------------------------------------------- API
    async def accept(self) -> SpdyStream:
        """Next stream opened by the peer (already acknowledged with SYN_REPLY).

        Raises :class:`SpdySessionClosed` once the session is gone (or the peer sent GOAWAY
        and no stream is pending). Bound the wait with ``anyio.fail_after`` (the kubelet
        gives clients ``config.stream_creation_timeout`` to create all their streams).
        """
        while not self._accept_queue:
            if self._error is not None:
                raise self._error
            if self._goaway_received:
                raise SpdySessionClosed("peer sent GOAWAY")
            await self._accept_signal.wait()
        return self._accept_queue.popleft()

    async def open_stream(
        self,
        headers: Mapping[str, str | Sequence[str]],
        *,
        fin: bool = False,
        unidirectional: bool = False,
        priority: int = 0,
        wait_reply: bool = True,
    ) -> SpdyStream:
        """Open a stream (SYN_STREAM) and, by default, wait for the peer's SYN_REPLY.

        Without a reply within ``config.stream_creation_timeout`` the stream is reset and
        ``TimeoutError`` raised.
        """
        if self._error is not None:
            raise self._error
        if self._goaway_received or self._goaway_sent:
            raise SpdySessionClosed("session is going away: no new streams")
        stream_id = self._next_stream_id
        if stream_id > MAX_STREAM_ID:
            raise SpdySessionClosed("stream ids exhausted")
        self._next_stream_id += 2
        normalized = normalize_headers(headers)
        stream = SpdyStream(
            self,
            stream_id,
            normalized,
            local=True,
            send_window=self._peer_initial_window,
            recv_window=self.config.initial_window_size,
        )
        stream._local_closed = fin
        stream._remote_closed = unidirectional
        self._streams[stream_id] = stream
        flags = (CONTROL_FLAG_FIN if fin else 0) | (
            CONTROL_FLAG_UNIDIRECTIONAL if unidirectional else 0
        )
        self._queue_control(SynStreamFrame(stream_id, normalized, priority=priority, flags=flags))
        if wait_reply:
            try:
                with anyio.fail_after(self.config.stream_creation_timeout):
                    await stream.wait_reply()
            except TimeoutError:
                await stream.reset(RstStatus.CANCEL)
                raise
        return stream

    async def ping(self) -> float:
        """Send PING and return the round-trip time in seconds (bound it with ``fail_after``)."""
        if self._error is not None:
            raise self._error
        ping_id = self._next_ping_id
        self._next_ping_id = (ping_id + 2) & 0xFFFFFFFF or (2 if self.server else 1)
        event = self._pings[ping_id] = anyio.Event()
        start = anyio.current_time()
        self._queue_control(PingFrame(ping_id))
        try:
            await event.wait()
        finally:
            self._pings.pop(ping_id, None)
        if self._error is not None:
            raise self._error
        return anyio.current_time() - start

    # ---------------------------------------------------------------- writer side helpers
    def _queue_control(self, frame: Frame) -> None:
        if self._error is not None:
            return
        self._control.append(frame)
        self._writer_signal.notify()
        if len(self._control) > self.config.max_pending_control_frames:
            self._fail_soon(SpdyProtocolError("peer does not read: control frame backlog"))

    def _fail_soon(self, reason: BaseException) -> None:
        if self._tg is not None and self._error is None:
            self._tg.start_soon(self._terminate, reason)

    def _enforce_send_windows(self) -> bool:
        mode = self.config.flow_control
        return mode is FlowControl.ON or (mode is FlowControl.AUTO and self._peer_flow_control)

    async def _reserve_send_window(self, stream: SpdyStream, wanted: int) -> int:
        size = min(wanted, self.config.max_send_frame_size)
        while True:
            stream._check_alive()
            if stream._local_closed:
                raise anyio.ClosedResourceError
            if not self._enforce_send_windows():
                break
            allowed = min(stream._send_window, self._send_window)
            if allowed > 0:
                size = min(size, allowed)
                break
            # wait for a WINDOW_UPDATE (stream or session: both notify the stream)
            await stream._changed.wait()
        stream._send_window -= size
        self._send_window -= size
        return size

    async def _send_data(self, stream: SpdyStream, frame: DataFrame) -> None:
        if self._error is not None:
            raise self._error
        item = _PendingData(frame, anyio.Event())
        self._data.append(item)
        self._writer_signal.notify()
        await item.done.wait()
        if not item.sent:
            if stream._reset is not None:
                raise stream._reset
            if self._error is not None:
                raise self._error

    async def _write_loop(self) -> None:
        budget = 256 * 1024
        try:
            while self._error is None:
                if not self._control and not self._data:
                    self._flushed.notify()
                    await self._writer_signal.wait()
                    continue
                parts: list[bytes] = []
                done: list[_PendingData] = []
                size = 0
                while self._control:
                    parts.append(self._writer.encode(self._control.popleft()))
                while self._data and size < budget:
                    item = self._data.popleft()
                    size += len(item.frame.data)
                    parts.append(self._writer.encode(item.frame))
                    done.append(item)
                await self.transport.send(b"".join(parts))
                self._last_activity = anyio.current_time()
                for item in done:
                    item.sent = True
                    item.done.set()
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # any transport failure ends the session
            await self._terminate(exc)

    # ---------------------------------------------------------------- reader side helpers
    def _consumed(self, stream: SpdyStream, size: int) -> None:
        """The application took ``size`` bytes: re-open the stream window (WINDOW_UPDATE)."""
        if size <= 0:
            return
        stream._changed.notify()  # the reader may be waiting for buffer space
        if self.config.flow_control is FlowControl.OFF or stream._remote_closed:
            return
        stream._recv_unacked += size
        if stream._recv_unacked >= self.config.initial_window_size // 2 and stream._reset is None:
            delta = min(stream._recv_unacked, MAX_WINDOW_SIZE)
            stream._recv_unacked -= delta
            stream._recv_window += delta
            self._queue_control(WindowUpdateFrame(stream.id, delta))

    def _session_received(self, size: int) -> None:
        if self.config.flow_control is FlowControl.OFF or size <= 0:
            return
        self._session_recv_unacked += size
        if self._session_recv_unacked >= self.config.session_window_size // 2:
            delta = min(self._session_recv_unacked, MAX_WINDOW_SIZE)
            self._session_recv_unacked -= delta
            self._queue_control(WindowUpdateFrame(0, delta))

    def _reset_stream(self, stream: SpdyStream, status: int, *, by_peer: bool, send: bool) -> None:
        if stream._reset is not None:
            return
        stream._reset = SpdyStreamReset(stream.id, status, by_peer=by_peer)
        stream._buffer.clear()
        stream._buffered = 0
        # queued data of a reset stream is dropped; its senders learn about the reset
        kept: deque[_PendingData] = deque()
        for item in self._data:
            if item.frame.stream_id == stream.id:
                item.done.set()
            else:
                kept.append(item)
        self._data = kept
        if send:
            self._queue_control(RstStreamFrame(stream.id, status))
        stream._changed.notify()
        self._streams.pop(stream.id, None)

    def _maybe_forget(self, stream: SpdyStream) -> None:
        # an abandoned stream stays routed (its data dropped) until the peer's FIN
        if stream._finished():
            self._streams.pop(stream.id, None)

    def _is_peer_stream_id(self, stream_id: int) -> bool:
        return stream_id % 2 == (1 if self.server else 0)

    async def _idle_watchdog(self) -> None:
        timeout = self.config.idle_timeout
        assert timeout is not None
        while self._error is None:
            deadline = self._last_activity + timeout
            now = anyio.current_time()
            if now >= deadline:
                log.debug("SPDY session idle for %.0fs: closing", timeout)
                self.close_reason = TimeoutError(f"idle for {timeout}s")
                await self.aclose()
                return
            with anyio.move_on_after(deadline - now):
                await self._closed.wait()

    async def _read_loop(self) -> None:
        reason: BaseException | None = None
        try:
            while self._error is None:
                try:
                    chunk = await self.transport.receive(self.config.read_size)
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    chunk = b""
                if not chunk:
                    if not (self._closing or self._goaway_received):
                        reason = EOFError("peer closed the connection")
                    break
                self._last_activity = anyio.current_time()
                self._reader.feed(chunk)
                while self._error is None:
                    try:
                        frame = self._reader.next_frame()
                    except SpdyProtocolError as exc:
                        if exc.fatal:
                            raise
                        self._stream_error(exc)
                        continue
                    if frame is None:
                        break
                    await self._handle(frame)
        except anyio.get_cancelled_exc_class():
            raise
        except SpdyProtocolError as exc:
            reason = exc
            self._queue_goaway_error()
            with anyio.move_on_after(self.config.close_timeout, shield=True):
                while self._control and self._error is None:
                    await self._flushed.wait()
        except Exception as exc:  # transport errors end the session
            reason = exc
        await self._terminate(reason)

    def _queue_goaway_error(self) -> None:
        if not self._goaway_sent:
            self._goaway_sent = True
            self._queue_control(GoAwayFrame(self._last_peer_stream_id, GoAwayStatus.PROTOCOL_ERROR))

    def _stream_error(self, exc: SpdyProtocolError) -> None:
        log.debug("SPDY stream error: %s", exc)
        if exc.stream_id is None:
            return
        stream = self._streams.get(exc.stream_id)
        if stream is not None:
            self._reset_stream(stream, exc.status, by_peer=False, send=True)
        else:
            if self._is_peer_stream_id(exc.stream_id):
                self._last_peer_stream_id = max(self._last_peer_stream_id, exc.stream_id)
            self._queue_control(RstStreamFrame(exc.stream_id, exc.status))

    async def _handle(self, frame: Frame) -> None:
        match frame:
            case DataFrame():
                await self._on_data(frame)
            case SynStreamFrame():
                self._on_syn_stream(frame)
            case SynReplyFrame(stream_id=sid):
                stream = self._streams.get(sid)
                if stream is not None and stream.local and not stream._replied:
                    stream._replied = True
                    stream.reply_headers = frame.headers
                    if frame.fin:
                        stream._remote_closed = True
                    stream._changed.notify()
                    self._maybe_forget(stream)
            case RstStreamFrame(stream_id=sid, status=status):
                stream = self._streams.get(sid)
                if stream is not None:
                    self._reset_stream(stream, status, by_peer=True, send=False)
            case SettingsFrame():
                self._on_settings(frame)
            case PingFrame(ping_id=ping_id):
                if ping_id % 2 == self._next_ping_id % 2:
                    event = self._pings.get(ping_id)
                    if event is not None:
                        event.set()
                else:
                    self._queue_control(frame)
            case GoAwayFrame(last_good_stream_id=last):
                self._goaway_received = True
                for stream in list(self._streams.values()):
                    if stream.local and stream.id > last and not stream._replied:
                        self._reset_stream(
                            stream, RstStatus.REFUSED_STREAM, by_peer=True, send=False
                        )
                self._accept_signal.notify()
            case HeadersFrame(stream_id=sid):
                stream = self._streams.get(sid)
                if stream is not None:
                    stream.extra_headers.append(frame.headers)
                    if frame.fin:
                        stream._remote_closed = True
                        self._maybe_forget(stream)
                    stream._changed.notify()
            case WindowUpdateFrame(stream_id=sid, delta=delta):
                self._on_window_update(sid, delta)
            case UnknownControlFrame():
                log.debug("ignoring unknown SPDY control frame type %d", frame.frame_type)

    def _on_syn_stream(self, frame: SynStreamFrame) -> None:
        sid = frame.stream_id
        if not self._is_peer_stream_id(sid) or sid <= self._last_peer_stream_id:
            self._queue_control(RstStreamFrame(sid, RstStatus.PROTOCOL_ERROR))
            return
        self._last_peer_stream_id = sid
        peer_streams = sum(1 for s in self._streams.values() if not s.local)
        refused = (
            self._goaway_sent
            or self._closing
            or peer_streams >= self.config.max_concurrent_streams
            or (self._stream_filter is not None and not self._stream_filter(frame.headers))
        )
        if refused:
            self._queue_control(RstStreamFrame(sid, RstStatus.REFUSED_STREAM))
            return
        stream = SpdyStream(
            self,
            sid,
            frame.headers,
            local=False,
            send_window=self._peer_initial_window,
            recv_window=self.config.initial_window_size,
        )
        stream._remote_closed = frame.fin
        stream._local_closed = frame.unidirectional
        self._streams[sid] = stream
        self._queue_control(SynReplyFrame(sid, {}))
        self._accept_queue.append(stream)
        self._accept_signal.notify()

    async def _on_data(self, frame: DataFrame) -> None:
        size = len(frame.data)
        self._session_received(size)
        stream = self._streams.get(frame.stream_id)
        if stream is None or stream._remote_closed or stream._reset is not None:
            return  # late data for a stream already gone: ignore, as spdystream does
        stream._recv_window -= size
        if stream._recv_window < 0 and self.config.flow_control is FlowControl.ON:
            self._reset_stream(stream, RstStatus.FLOW_CONTROL_ERROR, by_peer=False, send=True)
            return
        if stream._abandoned:
            self._consumed(stream, size)
        elif size:
            stream._buffer.append(frame.data)
            stream._buffered += size
        if frame.fin:
            stream._remote_closed = True
        stream._changed.notify()
        if frame.fin:
            self._maybe_forget(stream)
            return
        # a peer ignoring our window: stop reading until the application catches up
        while (
            stream._buffered > self.config.initial_window_size
            and stream._reset is None
            and not stream._abandoned
            and self._error is None
        ):
            await stream._changed.wait()

    def _on_settings(self, frame: SettingsFrame) -> None:
        if self.config.flow_control is FlowControl.AUTO:
            self._peer_flow_control = True
        window = frame.get(SettingId.INITIAL_WINDOW_SIZE)
        if window is None or window > MAX_WINDOW_SIZE:
            return
        delta = window - self._peer_initial_window
        self._peer_initial_window = window
        for stream in self._streams.values():
            stream._send_window += delta
            stream._changed.notify()

    def _on_window_update(self, stream_id: int, delta: int) -> None:
        if self.config.flow_control is FlowControl.AUTO:
            self._peer_flow_control = True
        if delta <= 0:
            return
        if stream_id == 0:
            self._send_window = min(self._send_window + delta, MAX_WINDOW_SIZE)
            for each in self._streams.values():
                each._changed.notify()
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if stream._send_window + delta > MAX_WINDOW_SIZE:
            self._reset_stream(stream, RstStatus.FLOW_CONTROL_ERROR, by_peer=False, send=True)
            return
        stream._send_window += delta
        stream._changed.notify()
