"""A small keep-alive HTTP/1.1 client for the controllers' request/response calls.

A virtual node's hot path is one small JSON request after another (status patches, creates,
deletes) to one API server. A general-purpose client spends most of a request's CPU on
machinery this path never uses (cookies, redirects, tracing hooks, multidict headers); this
pool writes the request bytes itself and parses the answer in one ``data_received``. Watches
and other streams stay on the general client.

    pool = ConnectionPool("127.0.0.1", 6443, ssl=context)
    status, body = await pool.request(b"GET /api/v1/nodes HTTP/1.1\\r\\n...", "GET", 30.0)

A keep-alive connection the server closed while idle is dropped before use; a request that
fails on a reused connection before any answer arrives is retried once on a new connection
when its method is idempotent by RFC 9110 (GET, HEAD, PUT, DELETE, OPTIONS); a POST or PATCH
may have been applied, so it fails instead.

TLS runs in the connection itself (an :class:`ssl.SSLObject` over memory buffers on a plain
TCP transport), one layer fewer than asyncio's TLS transport; and a pool bounds its requests'
time with one timer for all of them instead of a timeout scope per request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import ssl as ssl_module
from typing import Final, cast

__all__ = ["ConnectionPool", "HTTPProtocolError"]

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_HEADER: Final = 64 * 1024


class HTTPProtocolError(ConnectionError):
    """The server's answer is not valid HTTP/1.1 (the connection is closed)."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._got_bytes = False
        self._status = 0
        self._head_done = False
        self._length = -1
        self._chunked = False
        self._keep_alive = True
        self._body_start = 0
        self.deadline = math.inf
        """When the request in flight times out (the pool's timer enforces it)."""

    # ----------------------------------------------------------------- protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, though not always an asyncio.Transport subclass (uvloop's TLS
        # transport is not): only write(), close() and abort() are used
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._head_done and self._length < 0 and not self._chunked and exc is None:
                # an answer without a length ends when the server closes
                waiter.set_result((self._status, bytes(self._buf[self._body_start :])))
                self._waiter = None
                return
            error = ConnectionResetError("the API server closed the connection")
            if exc is not None:
                error.__cause__ = exc
            waiter.set_exception(error)
        self._waiter = None

    def data_received(self, data: bytes) -> None:
        self._answer_received(data)

    def _answer_received(self, data: bytes) -> None:
        self._got_bytes = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            # bytes nobody asked for: the connection is out of step; drop it
            self.abort()
            return
        self._buf += data
        try:
            answer = self._parse()
        except HTTPProtocolError as error:
            self.abort()
            waiter.set_exception(error)
            self._waiter = None
            return
        if answer is not None:
            self._waiter = None
            if not self._keep_alive:
                self.close()
            waiter.set_result(answer)

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost reports it

    # ----------------------------------------------------------------- requests
    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Write one request; the future resolves to ``(status, body)``."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        self._buf.clear()
        self._got_bytes = False
        self._head_done = False
        self._length = -1
        self._chunked = False
        self._keep_alive = True
        self.used = True
        self._write(data)
        return waiter

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def time_out(self) -> None:
        """Fail the request in flight with :class:`TimeoutError` and drop the connection (a
        late answer must not reach the next request)."""
        waiter = self._waiter
        self._waiter = None
        self.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("the API server did not answer in time"))

    @property
    def answered_anything(self) -> bool:
        """Whether any byte of the current answer arrived."""
        return self._got_bytes

    def close(self) -> None:
        """Close after pending writes."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close at once."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ----------------------------------------------------------------- parsing
    def _parse(self) -> tuple[int, bytes] | None:
        buf = self._buf
        while not self._head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER:
                    raise HTTPProtocolError("the answer's header is too large")
                return None
            self._read_head(bytes(buf[:end]))
            if 100 <= self._status < 200:
                # an interim answer (100 Continue, 103 Early Hints): the real one follows
                del buf[: end + 4]
                self._length, self._chunked = -1, False
                continue
            self._body_start = end + 4
            self._head_done = True
        start = self._body_start
        if self._chunked:
            return self._parse_chunked(start)
        if self._length >= 0:
            if len(buf) - start < self._length:
                return None
            if len(buf) - start > self._length:
                self._keep_alive = False  # bytes beyond the answer: out of step, do not reuse
            return self._status, bytes(buf[start : start + self._length])
        # no length: the body ends when the server closes (not kept alive)
        self._keep_alive = False
        return None

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise HTTPProtocolError("not an HTTP/1.x answer")
        try:
            self._status = int(status_line[1])
        except ValueError:
            raise HTTPProtocolError("malformed status line") from None
        if status_line[0] == b"HTTP/1.0":
            self._keep_alive = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise HTTPProtocolError("malformed header line")
            key = name.strip().lower()
            if key == b"content-length":
                try:
                    self._length = int(value.strip())
                except ValueError:
                    raise HTTPProtocolError("malformed Content-Length") from None
            elif key == b"transfer-encoding":
                self._chunked = value.strip().lower().endswith(b"chunked")
            elif key == b"connection":
                token = value.strip().lower()
                if token == b"close":
                    self._keep_alive = False
                elif token == b"keep-alive":
                    self._keep_alive = True
        if self._status in (204, 304):
            self._length = 0
            self._chunked = False

    def _parse_chunked(self, pos: int) -> tuple[int, bytes] | None:
        buf = self._buf
        chunks: list[bytes] = []
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HTTPProtocolError("malformed chunk size") from None
            data_start = line_end + 2
            if size == 0:
                # trailers end with an empty line
                end = buf.find(b"\r\n\r\n", line_end)
                if end < 0:
                    return None
                if end + 4 < len(buf):
                    self._keep_alive = False  # bytes beyond the answer: do not reuse
                return self._status, b"".join(chunks)
            if len(buf) < data_start + size + 2:
                return None
            chunks.append(bytes(buf[data_start : data_start + size]))
            pos = data_start + size + 2


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class _TLSConnection(_Connection):
    """A connection that speaks TLS itself over a plain TCP transport."""

    def __init__(self, context: ssl_module.SSLContext, server_hostname: str) -> None:
        super().__init__()
        self._incoming = ssl_module.MemoryBIO()
        self._outgoing = ssl_module.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname
        )
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Resolves once the TLS handshake is complete (or fails with its error)."""
        # a connect cancelled before the handshake is awaited must not log an unread error
        self.handshake.add_done_callback(_retrieve)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._handshake_step()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            error = ConnectionResetError("the API server closed the connection during TLS setup")
            error.__cause__ = exc
            self.handshake.set_exception(error)
        super().connection_lost(exc)

    def _handshake_step(self) -> bool:
        try:
            self._tls.do_handshake()
        except ssl_module.SSLWantReadError:
            self._flush()
            return False
        except (ssl_module.SSLError, OSError) as error:
            self._flush()  # the alert, if any
            self.abort()
            if not self.handshake.done():
                self.handshake.set_exception(error)
            return False
        self._flush()
        if not self.handshake.done():
            self.handshake.set_result(None)
        return True

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        if not self.handshake.done() and not self._handshake_step():
            return
        chunks: list[bytes] = []
        read = self._tls.read
        closing = False
        try:
            while True:
                chunk = read(262144)
                if not chunk:
                    closing = True  # the server's close_notify
                    break
                chunks.append(chunk)
        except ssl_module.SSLWantReadError:
            pass  # the rest of a record is still on its way
        except ssl_module.SSLZeroReturnError:
            closing = True
        except ssl_module.SSLError as error:
            self.abort()
            waiter = self._waiter
            self._waiter = None
            if waiter is not None and not waiter.done():
                reset = ConnectionResetError(f"TLS error from the API server: {error}")
                reset.__cause__ = error
                waiter.set_exception(reset)
            return
        if self._outgoing.pending:
            self._flush()  # e.g. a key update the server asked for
        if chunks:
            self._answer_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if closing:
            self.close()  # connection_lost then ends an answer that runs until the close

    def _write(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    def _flush(self) -> None:
        out = self._outgoing.read()
        if out and self.transport is not None:
            self.transport.write(out)

    def close(self) -> None:
        """Send TLS close_notify, then close after pending writes."""
        if not self.closed and self.handshake.done():
            # close_notify is written; the server's answer is not awaited
            with contextlib.suppress(ssl_module.SSLError, OSError):
                self._tls.unwrap()
            self._flush()
        super().close()


class ConnectionPool:
    """Keep-alive connections to one server, at most ``limit`` at once."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        limit: int = 64,
        handshake_timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.handshake_timeout = handshake_timeout
        """Seconds a TLS handshake may take (asyncio's default), whatever the request's bound."""
        self.port = port
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.limit = limit
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False
        self._busy: set[_Connection] = set()
        self._timer: asyncio.TimerHandle | None = None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        context = self.ssl
        if context is None:
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
            return conn
        hostname = self.server_hostname or self.host
        _, tls = await loop.create_connection(
            lambda: _TLSConnection(context, hostname), self.host, self.port
        )
        try:
            async with asyncio.timeout(self.handshake_timeout):
                await tls.handshake
        except TimeoutError:
            tls.abort()
            raise ConnectionAbortedError(
                f"the TLS handshake took longer than {self.handshake_timeout} s"
            ) from None
        except BaseException:  # cancelled: the await already cancelled the handshake future
            tls.abort()
            raise
        return tls

    # ----------------------------------------------------------------- deadlines
    def _watch_deadline(self, conn: _Connection) -> None:
        self._busy.add(conn)
        timer = self._timer
        if timer is None or timer.when() > conn.deadline:
            if timer is not None:
                timer.cancel()
            self._timer = asyncio.get_running_loop().call_at(conn.deadline, self._expire)

    def _expire(self) -> None:
        """The one timer: time out every overdue request, then wait for the next deadline."""
        self._timer = None
        # the loop may run a timer up to its clock's resolution early: count that as due
        now = asyncio.get_running_loop().time() + 0.001
        for conn in [c for c in self._busy if c.deadline <= now]:
            self._busy.discard(conn)
            conn.time_out()
        if self._busy:
            next_due = min(c.deadline for c in self._busy)
            self._timer = asyncio.get_running_loop().call_at(next_due, self._expire)

    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise ConnectionError("the connection pool is closed")
            conn = self._idle_connection()
            if conn is not None:
                return conn
            if self._open < self.limit:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake()  # pass the wake-up on
                raise

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _release(self, conn: _Connection, *, reusable: bool) -> None:
        self._busy.discard(conn)
        conn.deadline = math.inf
        if reusable and not conn.closed and not self._closed:
            self._idle.append(conn)
        else:
            conn.abort()
            self._open -= 1
        self._wake()

    async def request(self, data: bytes, method: str, seconds: float | None) -> tuple[int, bytes]:
        """Send the complete request ``data`` (head and body); return ``(status, body)``.

        ``method`` decides whether a failure on a reused connection may be retried;
        ``seconds`` bounds the whole call (``None``: no bound).
        """
        loop = asyncio.get_running_loop()
        deadline = math.inf if seconds is None else loop.time() + seconds
        for attempt in (1, 2):
            conn = self._idle_connection()
            if conn is None:
                # waiting for a free connection or opening one: bounded by the same deadline
                async with asyncio.timeout_at(None if seconds is None else deadline):
                    conn = await self._acquire()
            reused = conn.used
            try:
                waiter = conn.send(data)
                if deadline <= loop.time():
                    conn.time_out()
                elif seconds is not None:
                    conn.deadline = deadline
                    self._watch_deadline(conn)
                answer = await waiter
            except ConnectionError:
                retry = (
                    attempt == 1 and reused and not conn.answered_anything and method in IDEMPOTENT
                )
                self._release(conn, reusable=False)
                if retry:
                    continue
                raise
            except BaseException:  # cancelled or timed out: the answer may still come
                self._release(conn, reusable=False)
                raise
            self._release(conn, reusable=not conn.closed)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _idle_connection(self) -> _Connection | None:
        while self._idle and not self._closed:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._open -= 1
        return None

    async def close(self) -> None:
        """Close every idle connection; busy ones close when their request ends."""
        self._closed = True  # the deadline timer stays: requests in flight still end in time
        while self._idle:
            self._idle.pop().close()
            self._open -= 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the connection pool is closed"))
        self._waiters.clear()
