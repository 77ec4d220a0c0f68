"""The lean HTTP/1.1 pool against a real loopback server that answers as scripted."""

from __future__ import annotations

import asyncio
import gc
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vkcompose.apiserver.pki import create_ca, issue
from vkcompose.node.http1 import ConnectionPool, HTTPProtocolError, _Connection, _TLSConnection

pytestmark = pytest.mark.anyio

Answer = Callable[[bytes, int], list[bytes] | None]
"""Given a request and its index on the connection: the byte pieces to send (``None``: close
the connection without answering)."""


class Server:
    """A loopback HTTP server whose answers come from ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        index = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + (await reader.readexactly(length) if length else b"")
                self.requests.append(request)
                pieces = self.answer(request, index)
                index += 1
                if pieces is None:
                    break
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting the server's CA) for 127.0.0.1."""
    directory: Path = tmp_path_factory.mktemp("pki")
    ca = create_ca(directory)
    cert = issue(ca, directory, "server", "server", ip_addresses=["127.0.0.1"], server=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert.cert_path, cert.key_path)
    client = ssl.create_default_context(cafile=str(ca.cert_path))
    return server, client


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    servers: list[Server] = []

    async def start(answer: Answer, ssl: ssl.SSLContext | None = None) -> Server:
        server = Server(answer)
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=ssl)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.server is not None
        for writer in server.writers:
            writer.close()
        server.server.close()
        await server.server.wait_closed()


def ok(body: bytes = b'{"kind":"Status"}', status: int = 200, extra: bytes = b"") -> list[bytes]:
    return [
        b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n"
        % (status, extra, len(body))
        + body
    ]


def req(method: str = "GET", path: str = "/api/v1/pods", body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode()
    if body:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    return head + b"\r\n"


async def test_keep_alive_reuses_one_connection(serve: Any) -> None:
    server = await serve(lambda request, i: ok(b'{"n":%d}' % i))
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        answers = [await pool.request(req(), "GET", 5) for _ in range(3)]
    finally:
        await pool.close()
    assert answers == [(200, b'{"n":0}'), (200, b'{"n":1}'), (200, b'{"n":2}')]
    assert server.connections == 1


async def test_body_is_sent_and_status_codes_come_back(serve: Any) -> None:
    server = await serve(lambda request, i: ok(b"{}", status=422))
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        status, _ = await pool.request(req("PATCH", body=b'{"a":1}'), "PATCH", 5)
    finally:
        await pool.close()
    assert status == 422
    assert server.requests[0].endswith(b'\r\n\r\n{"a":1}')


def chunked(body: bytes, sizes: list[int], trailer: bytes = b"") -> bytes:
    out, pos = [], 0
    for size in sizes:
        part = body[pos : pos + size]
        if not part:
            break
        out.append(b"%x\r\n%s\r\n" % (len(part), part))
        pos += len(part)
    if pos < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - pos, body[pos:]))
    return b"".join(out) + b"0\r\n" + trailer + b"\r\n"


@settings(max_examples=60)
@given(
    body=st.binary(max_size=300),
    sizes=st.lists(st.integers(1, 50), max_size=8),
    cuts=st.lists(st.integers(1, 40), max_size=10),
    trailer=st.sampled_from([b"", b"X-Trailer: 1\r\n"]),
    chunk=st.booleans(),
)
def test_answers_split_anywhere_parse_the_same(
    body: bytes, sizes: list[int], cuts: list[int], trailer: bytes, chunk: bool
) -> None:
    """However the bytes arrive, the parsed body is the body sent."""
    if chunk:
        wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(
            body, sizes, trailer
        )
    else:
        wire = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    async def parse() -> tuple[int, bytes]:
        conn = _Connection()

        class Sink(asyncio.Transport):
            def write(self, data: Any) -> None:
                pass

        conn.connection_made(Sink())
        waiter = conn.send(b"GET / HTTP/1.1\r\n\r\n")
        pos = 0
        for cut in cuts:
            if pos >= len(wire):
                break
            conn.data_received(wire[pos : pos + cut])
            pos += cut
        if pos < len(wire):
            conn.data_received(wire[pos:])
        assert waiter.done()
        return waiter.result()

    assert asyncio.run(parse()) == (200, body)


async def test_connection_close_header_opens_a_new_connection(serve: Any) -> None:
    server = await serve(lambda request, i: ok(extra=b"Connection: close\r\n") if i == 0 else None)
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        for _ in range(2):
            assert (await pool.request(req(), "GET", 5))[0] == 200
    finally:
        await pool.close()
    assert server.connections == 2


async def test_answer_without_length_ends_at_close() -> None:
    async def close_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for piece in (b"HTTP/1.1 200 OK\r\n\r\npart one, ", b"part two"):
            writer.write(piece)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(close_after, "127.0.0.1", 0)
    pool = ConnectionPool("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        assert await pool.request(req(), "GET", 5) == (200, b"part one, part two")
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("DELETE", True), ("POST", False)])
async def test_reused_connection_closed_before_answering(
    serve: Any, method: str, retried: bool
) -> None:
    """The server drops a kept-alive connection as the next request arrives: idempotent
    methods are sent again on a new connection, others fail (they may have been applied)."""
    server = await serve(lambda request, i: ok() if i == 0 else None)
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        await pool.request(req(), "GET", 5)
        if retried:
            assert (await pool.request(req(method), method, 5))[0] == 200
        else:
            with pytest.raises(ConnectionError):
                await pool.request(req(method), method, 5)
    finally:
        await pool.close()
    assert server.connections == (2 if retried else 1)


async def test_idle_connection_closed_by_the_server_is_not_used(serve: Any) -> None:
    server = await serve(lambda request, i: ok())
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        await pool.request(req(), "POST", 5)
        for writer in server.writers:
            writer.close()
        await asyncio.sleep(0.1)  # the close reaches the idle connection
        assert (await pool.request(req("POST"), "POST", 5))[0] == 200
    finally:
        await pool.close()
    assert server.connections == 2


async def test_garbage_answer_is_a_protocol_error(serve: Any) -> None:
    server = await serve(lambda request, i: [b"SSH-2.0-OpenSSH\r\n\r\n"])
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        with pytest.raises(HTTPProtocolError):
            await pool.request(req(), "GET", 5)
    finally:
        await pool.close()


async def test_timeout_discards_the_connection(serve: Any) -> None:
    answers: list[int] = []

    def answer(request: bytes, i: int) -> list[bytes] | None:
        answers.append(i)
        return [] if len(answers) == 1 else ok()  # the first request never gets an answer

    server = await serve(answer)
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        with pytest.raises(TimeoutError):
            await pool.request(req(), "GET", 0.2)
        assert (await pool.request(req(), "GET", 5))[0] == 200
    finally:
        await pool.close()
    assert server.connections == 2  # a late answer can never reach the next request


async def test_limit_bounds_open_connections(serve: Any) -> None:
    server = await serve(lambda request, i: ok())
    pool = ConnectionPool("127.0.0.1", server.port, limit=2)
    try:
        results = await asyncio.gather(*(pool.request(req(), "GET", 5) for _ in range(10)))
    finally:
        await pool.close()
    assert [status for status, _ in results] == [200] * 10
    assert server.connections <= 2


async def test_interim_answers_are_skipped(serve: Any) -> None:
    server = await serve(lambda request, i: [b"HTTP/1.1 100 Continue\r\n\r\n", *ok(b'{"ok":true}')])
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        assert await pool.request(req("POST", body=b"{}"), "POST", 5) == (200, b'{"ok":true}')
    finally:
        await pool.close()


async def test_bytes_beyond_an_answer_retire_the_connection(serve: Any) -> None:
    server = await serve(lambda request, i: [ok(b"{}")[0] + b"HTTP/1.1 200 OK\r\n"])
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        for _ in range(2):
            assert (await pool.request(req(), "GET", 5)) == (200, b"{}")
    finally:
        await pool.close()
    assert server.connections == 2


def test_a_stream_transport_that_is_not_an_asyncio_transport_is_used() -> None:
    """uvloop's TLS transport, for one, does not subclass asyncio.Transport."""

    class Plain(asyncio.BaseTransport):
        def __init__(self) -> None:
            super().__init__()
            self.sent: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.sent.append(data)

        def abort(self) -> None:
            pass

    async def exchange() -> tuple[list[bytes], tuple[int, bytes]]:
        conn = _Connection()
        transport = Plain()
        conn.connection_made(transport)
        waiter = conn.send(b"GET / HTTP/1.1\r\n\r\n")
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return transport.sent, await waiter

    assert asyncio.run(exchange()) == ([b"GET / HTTP/1.1\r\n\r\n"], (200, b"ok"))


async def test_tls_requests_share_one_connection(serve: Any, tls: Any) -> None:
    server_ctx, client_ctx = tls
    body = b"x" * 100_000  # several TLS records
    server = await serve(lambda request, i: ok(body), ssl=server_ctx)
    pool = ConnectionPool("127.0.0.1", server.port, ssl=client_ctx)
    try:
        for _ in range(3):
            assert await pool.request(req("POST", body=b"{}"), "POST", 5) == (200, body)
    finally:
        await pool.close()
    assert server.connections == 1
    assert [r.endswith(b"{}") for r in server.requests] == [True] * 3


async def test_tls_answer_without_length_ends_at_close(tls: Any) -> None:
    server_ctx, client_ctx = tls

    async def answer_then_close(reader: Any, writer: Any) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()  # close_notify, then FIN

    server = await asyncio.start_server(answer_then_close, "127.0.0.1", 0, ssl=server_ctx)
    pool = ConnectionPool("127.0.0.1", server.sockets[0].getsockname()[1], ssl=client_ctx)
    try:
        assert await pool.request(req(), "GET", 5) == (200, b"all of it")
    finally:
        await pool.close()
        server.close()


async def test_untrusted_server_certificate_fails_and_frees_the_slot(
    serve: Any, tls: Any, tmp_path: Path
) -> None:
    server_ctx, _ = tls
    other_ca = create_ca(tmp_path, "someone-else")
    stranger = ssl.create_default_context(cafile=str(other_ca.cert_path))
    server = await serve(lambda request, i: ok(), ssl=server_ctx)
    pool = ConnectionPool("127.0.0.1", server.port, ssl=stranger, limit=1)
    try:
        for _ in range(2):  # the failed connection does not hold the only slot
            with pytest.raises(ssl.SSLCertVerificationError):
                await pool.request(req(), "GET", 5)
    finally:
        await pool.close()
    assert server.requests == []


async def test_tls_server_gone_while_idle_is_not_reused(serve: Any, tls: Any) -> None:
    server_ctx, client_ctx = tls
    server = await serve(lambda request, i: ok(), ssl=server_ctx)
    pool = ConnectionPool("127.0.0.1", server.port, ssl=client_ctx)
    try:
        assert (await pool.request(req(), "GET", 5))[0] == 200
        for writer in server.writers:
            writer.close()
        await asyncio.sleep(0.1)
        assert (await pool.request(req("POST", body=b"{}"), "POST", 5))[0] == 200
    finally:
        await pool.close()
    assert server.connections == 2


async def test_a_short_deadline_is_kept_while_a_longer_one_runs(serve: Any) -> None:
    """One timer serves every request: a later, shorter deadline moves it earlier."""

    def answer(request: bytes, i: int) -> list[bytes] | None:
        return [] if b"/slow" in request or b"/never" in request else ok()

    server = await serve(answer)
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        slow = asyncio.ensure_future(pool.request(req(path="/slow"), "GET", 30))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await pool.request(req(path="/never"), "GET", 0.2)
        assert time.monotonic() - started < 5
        assert not slow.done()  # the long deadline is untouched
        assert (await pool.request(req(), "GET", 5))[0] == 200
        slow.cancel()
    finally:
        await pool.close()


async def test_every_overdue_request_times_out_and_the_rest_answer(serve: Any) -> None:
    def answer(request: bytes, i: int) -> list[bytes] | None:
        return [] if b"/never" in request else ok()

    server = await serve(answer)
    pool = ConnectionPool("127.0.0.1", server.port)
    try:
        results = await asyncio.gather(
            *(pool.request(req(path="/never" if n % 2 else "/ok"), "GET", 0.3) for n in range(8)),
            return_exceptions=True,
        )
    finally:
        await pool.close()
    assert [isinstance(r, TimeoutError) for r in results] == [n % 2 == 1 for n in range(8)]
    assert [r[0] for r in results if isinstance(r, tuple)] == [200] * 4


async def test_closing_the_pool_keeps_the_deadline_of_requests_in_flight(serve: Any) -> None:
    server = await serve(lambda request, i: [])  # never answers
    pool = ConnectionPool("127.0.0.1", server.port)
    pending = asyncio.ensure_future(pool.request(req(), "GET", 0.3))
    await asyncio.sleep(0.05)
    await pool.close()
    with pytest.raises(TimeoutError, match="did not answer"):  # not wait_for's own
        await asyncio.wait_for(pending, 5)


async def test_a_stalled_tls_handshake_is_abandoned(tls: Any) -> None:
    _, client_ctx = tls
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # TCP only: the ClientHello is never answered

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool("127.0.0.1", port, ssl=client_ctx, handshake_timeout=0.2, limit=1)
    try:
        for _ in range(2):  # the abandoned connection does not hold the only slot
            with pytest.raises(ConnectionAbortedError, match="handshake"):
                await asyncio.wait_for(pool.request(req(), "GET", None), 5)
    finally:
        await pool.close()
        for writer in accepted:
            writer.close()
        server.close()


async def test_a_handshake_nobody_awaits_fails_quietly(tls: Any) -> None:
    """A connect cancelled before its handshake is awaited leaves no unread error behind."""
    _, client_ctx = tls
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: reports.append(context))
    try:
        conn = _TLSConnection(client_ctx, "127.0.0.1")
        conn.connection_lost(ConnectionResetError("gone"))
        assert conn.handshake.done()  # failed, and nobody reads it
        del conn
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reports == []
