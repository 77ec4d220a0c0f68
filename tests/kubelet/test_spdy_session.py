"""SPDY sessions over in-memory transports: two sessions, or a session and a hand-driven peer."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from vkcompose.kubelet.spdy.frames import (
    CONTROL_FLAG_FIN,
    DATA_FLAG_FIN,
    DataFrame,
    Frame,
    FrameReader,
    FrameWriter,
    GoAwayFrame,
    GoAwayStatus,
    Headers,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    Setting,
    SettingId,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
)
from vkcompose.kubelet.spdy.session import (
    FlowControl,
    SessionConfig,
    SpdySession,
    SpdySessionClosed,
    SpdyStream,
    SpdyStreamReset,
)
from vkcompose.kubelet.spdy.transport import MemoryTransport, memory_transport_pair
from vkcompose.kubelet.spdy.upgrade import (
    UpgradeFailed,
    check_upgrade_response,
    client_upgrade_headers,
    is_upgrade_request,
    negotiate_upgrade,
)

pytestmark = pytest.mark.anyio
GUARD = 20  # hang guard (seconds), never a timing assertion


@asynccontextmanager
async def connected(
    server_config: SessionConfig | None = None,
    client_config: SessionConfig | None = None,
    stream_filter: Callable[[Headers], bool] | None = None,
) -> AsyncIterator[tuple[SpdySession, SpdySession]]:
    a, b = memory_transport_pair()
    async with (
        SpdySession(a, server=True, config=server_config, stream_filter=stream_filter) as srv,
        SpdySession(b, server=False, config=client_config) as cli,
    ):
        with anyio.fail_after(GUARD):
            yield srv, cli


class RawPeer:
    """The other end of a session, driven frame by frame."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.writer = FrameWriter()
        self.reader = FrameReader()

    async def send(self, *frames: Frame) -> None:
        await self.transport.send(self.writer.encode_many(frames))

    async def send_raw(self, data: bytes) -> None:
        await self.transport.send(data)

    async def next_frame(self) -> Frame:
        while (frame := self.reader.next_frame()) is None:
            self.reader.feed(await self.transport.receive())
        return frame

    async def expect(self, kind: type[Frame], skip: tuple[type[Frame], ...] = ()) -> Frame:
        """Next frame of ``kind``, skipping SETTINGS/WINDOW_UPDATE and ``skip`` kinds."""
        while True:
            frame = await self.next_frame()
            if isinstance(frame, kind):
                return frame
            if not isinstance(frame, (SettingsFrame, WindowUpdateFrame, *skip)):
                raise AssertionError(f"expected {kind.__name__}, got {frame!r}")


@asynccontextmanager
async def raw_client(
    config: SessionConfig | None = None,
    stream_filter: Callable[[Headers], bool] | None = None,
) -> AsyncIterator[tuple[SpdySession, RawPeer]]:
    a, b = memory_transport_pair()
    async with SpdySession(a, server=True, config=config, stream_filter=stream_filter) as srv:
        with anyio.fail_after(GUARD):
            yield srv, RawPeer(b)


# --------------------------------------------------------------------------------- basics
async def test_open_accept_exchange_and_half_close() -> None:
    async with connected() as (srv, cli):
        out = await cli.open_stream({"streamType": "stdin", "port": ["80", "81"]})
        inc = await srv.accept()
        assert inc.id == out.id == 1
        assert inc.header("streamtype") == "stdin" and inc.headers["port"] == ("80", "81")
        await out.send(b"hello ")
        await out.send(b"world")
        await out.close()
        assert await inc.read_all() == b"hello world"
        assert inc.state == "half-closed-remote"
        await inc.send(b"reply")
        await inc.close()
        assert await out.receive() == b"reply"
        with pytest.raises(anyio.EndOfStream):
            await out.receive()
        assert inc.state == out.state == "closed"
        assert srv.active_streams == cli.active_streams == 0


async def test_server_opened_streams_use_even_ids() -> None:
    async with connected() as (srv, cli):
        out = await srv.open_stream({"k": "v"})
        inc = await cli.accept()
        assert out.id == inc.id == 2
        await out.send(b"x")
        assert await inc.receive() == b"x"


async def test_many_streams_carry_large_payloads_both_ways() -> None:
    payloads = {i: os.urandom(300_000 + i) for i in range(6)}

    async def echo(stream: SpdyStream) -> None:
        data = await stream.read_all(limit=10**7)
        await stream.send(data[::-1])
        await stream.close()

    async with connected() as (srv, cli), anyio.create_task_group() as tg:

        async def serve() -> None:
            for _ in payloads:
                tg.start_soon(echo, await srv.accept())

        tg.start_soon(serve)
        results: dict[int, bytes] = {}

        async def client(i: int) -> None:
            stream = await cli.open_stream({"n": str(i)})
            await stream.send(payloads[i])
            await stream.close()
            results[i] = await stream.read_all(limit=10**7)

        async with anyio.create_task_group() as clients:
            for i in payloads:
                clients.start_soon(client, i)
        assert results == {i: p[::-1] for i, p in payloads.items()}
        assert srv.peer_flow_control and cli.peer_flow_control


async def test_receive_respects_max_bytes() -> None:
    async with connected() as (srv, cli):
        out = await cli.open_stream({})
        inc = await srv.accept()
        await out.send(b"abcdef")
        assert await inc.receive(4) == b"abcd"
        assert await inc.receive(4) == b"ef"


# ---------------------------------------------------------------------------- flow control
async def test_slow_reader_does_not_block_another_stream() -> None:
    async with connected() as (srv, cli), anyio.create_task_group() as tg:
        slow_out = await cli.open_stream({"name": "slow"})
        fast_out = await cli.open_stream({"name": "fast"})
        slow_in = await srv.accept()
        fast_in = await srv.accept()
        big = os.urandom(1_000_000)
        sent = anyio.Event()

        async def push_slow() -> None:
            await slow_out.send(big)
            await slow_out.close()
            sent.set()

        tg.start_soon(push_slow)
        # nobody reads the slow stream; the fast one still carries a lot, both ways
        for _ in range(50):  # 1 MB through the fast stream while the slow one is stuck
            await fast_out.send(b"f" * 20_000)
            got = 0
            while got < 20_000:
                got += len(await fast_in.receive())
        await fast_in.send(b"pong")
        assert await fast_out.receive() == b"pong"
        # the slow stream is held at its window, its sender is paused
        assert 0 < slow_in.buffered <= 64 * 1024
        assert not sent.is_set()
        assert await slow_in.read_all(limit=2_000_000) == big
        await sent.wait()


async def test_peer_initial_window_and_window_updates_pace_sending() -> None:
    async with raw_client() as (srv, peer):
        await peer.send(
            SettingsFrame((Setting(SettingId.INITIAL_WINDOW_SIZE, 10),)),
            SynStreamFrame(1, {"a": ("b",)}),
        )
        stream = await srv.accept()
        await peer.expect(SynReplyFrame)
        done = anyio.Event()

        async def write() -> None:
            await stream.send(b"0123456789abcdefghijklmnopqrstuvwxyz")
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            first = await peer.expect(DataFrame)
            assert first == DataFrame(1, b"0123456789")
            await anyio.wait_all_tasks_blocked()
            assert not done.is_set()  # window exhausted: waiting for WINDOW_UPDATE
            got = first.data
            while len(got) < 36:
                await peer.send(WindowUpdateFrame(1, 10))
                frame = await peer.expect(DataFrame)
                assert isinstance(frame, DataFrame) and len(frame.data) <= 10
                got += frame.data
            assert got == b"0123456789abcdefghijklmnopqrstuvwxyz"
        assert done.is_set()


async def test_session_window_is_enforced_too() -> None:
    async with raw_client() as (srv, peer):
        await peer.send(SettingsFrame(), SynStreamFrame(1, {}))
        stream = await srv.accept()
        await peer.expect(SynReplyFrame)
        async with anyio.create_task_group() as tg:
            tg.start_soon(stream.send, b"x" * 100_000)
            received = 0
            while received < 64 * 1024:
                frame = await peer.expect(DataFrame)
                assert isinstance(frame, DataFrame)
                received += len(frame.data)
            assert received == 64 * 1024
            await peer.send(WindowUpdateFrame(1, 1_000_000))  # stream ok, session still shut
            await anyio.wait_all_tasks_blocked()
            assert peer.reader.next_frame() is None and not peer.reader.buffered
            await peer.send(WindowUpdateFrame(0, 1_000_000))
            while received < 100_000:
                frame = await peer.expect(DataFrame)
                assert isinstance(frame, DataFrame)
                received += len(frame.data)


async def test_consumption_sends_window_updates() -> None:
    async with raw_client() as (srv, peer):
        await peer.send(SynStreamFrame(1, {}))
        stream = await srv.accept()
        await peer.expect(SynReplyFrame)
        await peer.send(DataFrame(1, b"z" * 40_000))
        assert len(await stream.receive(40_000)) == 40_000
        updates: set[int] = set()
        while 1 not in updates:
            frame = await peer.next_frame()
            if isinstance(frame, WindowUpdateFrame):
                updates.add(frame.stream_id)
                if frame.stream_id == 1:
                    assert frame.delta == 40_000
        assert 0 in updates  # the session window was credited on receipt


async def test_legacy_peer_ignoring_windows_gets_backpressure_not_loss() -> None:
    """A spdystream-like peer (no SETTINGS, no WINDOW_UPDATE) overrunning our window."""
    cfg = SessionConfig(flow_control=FlowControl.OFF)
    async with connected(client_config=cfg) as (srv, cli):
        out = await cli.open_stream({})
        inc = await srv.accept()
        big = os.urandom(800_000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(out.send, big)
            await anyio.wait_all_tasks_blocked()
            # the server stopped reading the connection rather than buffering without bound
            assert inc.buffered <= 64 * 1024 + cli.config.max_send_frame_size
            got = b""
            while len(got) < len(big):
                got += await inc.receive()
        assert got == big
        assert not cli.peer_flow_control  # OFF: never enforces


async def test_strict_mode_resets_streams_that_overrun_the_window() -> None:
    async with raw_client(SessionConfig(flow_control=FlowControl.ON)) as (srv, peer):
        await peer.send(SynStreamFrame(1, {}), SynStreamFrame(3, {}))
        await srv.accept()
        other = await srv.accept()
        await peer.send(DataFrame(1, b"a" * 60_000), DataFrame(1, b"b" * 10_000))
        rst = await peer.expect(RstStreamFrame, skip=(SynReplyFrame,))
        assert rst == RstStreamFrame(1, RstStatus.FLOW_CONTROL_ERROR)
        await peer.send(DataFrame(3, b"fine"))
        assert await other.receive() == b"fine"


# ------------------------------------------------------------------------- reset / goaway
async def test_reset_reaches_both_sides_and_spares_other_streams() -> None:
    async with connected() as (srv, cli):
        a_out = await cli.open_stream({"n": "a"})
        b_out = await cli.open_stream({"n": "b"})
        a_in = await srv.accept()
        b_in = await srv.accept()
        await a_in.reset(RstStatus.INTERNAL_ERROR)
        with pytest.raises(SpdyStreamReset) as info:
            await a_out.receive()
        assert info.value.by_peer and info.value.status == RstStatus.INTERNAL_ERROR
        with pytest.raises(SpdyStreamReset):
            await a_out.send(b"x")
        with pytest.raises(SpdyStreamReset) as local:
            await a_in.receive()
        assert not local.value.by_peer
        await b_out.send(b"still here")
        assert await b_in.receive() == b"still here"


async def test_stream_filter_refuses_streams() -> None:
    async with connected(stream_filter=lambda h: "port" in h) as (srv, cli):
        with pytest.raises(SpdyStreamReset) as info:
            await cli.open_stream({"streamType": "data"})
        assert info.value.status == RstStatus.REFUSED_STREAM
        ok = await cli.open_stream({"port": "80"})
        assert (await srv.accept()).id == ok.id == 3


async def test_goaway_stops_new_streams_but_not_existing_ones() -> None:
    async with connected() as (srv, cli):
        out = await cli.open_stream({})
        inc = await srv.accept()
        await srv.goaway()
        await anyio.wait_all_tasks_blocked()  # the client has read the GOAWAY
        with pytest.raises(SpdySessionClosed):
            await cli.open_stream({})
        await out.send(b"after goaway")
        assert await inc.receive() == b"after goaway"


async def test_streams_after_our_goaway_are_refused() -> None:
    async with raw_client() as (srv, peer):
        await srv.goaway()
        assert await peer.expect(GoAwayFrame) == GoAwayFrame(0, GoAwayStatus.OK)
        await peer.send(SynStreamFrame(1, {}))
        assert await peer.expect(RstStreamFrame) == RstStreamFrame(1, RstStatus.REFUSED_STREAM)


async def test_aclose_resets_streams_and_sends_goaway() -> None:
    async with raw_client() as (srv, peer):
        await peer.send(SynStreamFrame(1, {}), SynStreamFrame(3, {}))
        await srv.accept()
        await srv.accept()
        await srv.aclose()
        seen = []
        while True:
            frame = await peer.next_frame()
            if isinstance(frame, (RstStreamFrame, GoAwayFrame)):
                seen.append(frame)
            if isinstance(frame, GoAwayFrame):
                break
        assert seen == [
            RstStreamFrame(1, RstStatus.CANCEL),
            RstStreamFrame(3, RstStatus.CANCEL),
            GoAwayFrame(3, GoAwayStatus.OK),
        ]
        assert srv.closed
        with pytest.raises(anyio.EndOfStream):
            await peer.transport.receive()


async def test_peer_disconnect_fails_pending_operations() -> None:
    async with raw_client() as (srv, peer):
        await peer.send(SynStreamFrame(1, {}))
        stream = await srv.accept()
        await peer.transport.aclose()
        with pytest.raises(SpdySessionClosed):
            await stream.receive()
        with pytest.raises(SpdySessionClosed):
            await srv.accept()
        await srv.wait_closed()
        assert isinstance(srv.close_reason, EOFError)


# ------------------------------------------------------------------------------- ping etc.
async def test_ping_both_directions() -> None:
    async with connected() as (srv, cli):
        assert await cli.ping() >= 0
        assert await srv.ping() >= 0


async def test_peer_pings_are_echoed() -> None:
    async with raw_client() as (_srv, peer):
        await peer.send(PingFrame(7))
        assert await peer.expect(PingFrame) == PingFrame(7)


async def test_wrong_parity_or_reused_stream_ids_are_rejected() -> None:
    async with raw_client() as (srv, peer):
        await peer.send(SynStreamFrame(2, {}))
        assert await peer.expect(RstStreamFrame) == RstStreamFrame(2, RstStatus.PROTOCOL_ERROR)
        await peer.send(SynStreamFrame(5, {}), SynStreamFrame(3, {}))
        assert (await srv.accept()).id == 5
        assert await peer.expect(RstStreamFrame, skip=(SynReplyFrame,)) == RstStreamFrame(
            3, RstStatus.PROTOCOL_ERROR
        )


async def test_fin_on_syn_stream_and_data() -> None:
    async with raw_client() as (srv, peer):
        await peer.send(SynStreamFrame(1, {}, flags=CONTROL_FLAG_FIN))
        stream = await srv.accept()
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await stream.send(b"only me")
        assert await peer.expect(DataFrame, skip=(SynReplyFrame,)) == DataFrame(1, b"only me")
        await stream.close()
        assert await peer.expect(DataFrame) == DataFrame(1, b"", DATA_FLAG_FIN)
        assert srv.active_streams == 0


async def test_stream_creation_timeout() -> None:
    cfg = SessionConfig(stream_creation_timeout=0.05)
    a, b = memory_transport_pair()
    peer = RawPeer(b)
    async with SpdySession(a, server=False, config=cfg) as cli:
        with anyio.fail_after(GUARD):
            with pytest.raises(TimeoutError):
                await cli.open_stream({"x": "y"})
            assert isinstance(await peer.expect(SynStreamFrame), SynStreamFrame)
            assert await peer.expect(RstStreamFrame) == RstStreamFrame(1, RstStatus.CANCEL)


async def test_idle_session_is_closed() -> None:
    async with raw_client(SessionConfig(idle_timeout=0.05)) as (srv, peer):
        await srv.wait_closed()
        assert isinstance(srv.close_reason, TimeoutError)
        assert isinstance(await peer.expect(GoAwayFrame), GoAwayFrame)


# ------------------------------------------------------------------------- bad input
async def test_oversized_frame_resets_stream_and_session_survives() -> None:
    async with raw_client(SessionConfig(max_data_frame_size=1024)) as (srv, peer):
        await peer.send(SynStreamFrame(1, {}), SynStreamFrame(3, {}))
        first = await srv.accept()
        second = await srv.accept()
        await peer.send(DataFrame(1, b"x" * 2000), DataFrame(3, b"ok"))
        rst = await peer.expect(RstStreamFrame, skip=(SynReplyFrame,))
        assert rst == RstStreamFrame(1, RstStatus.FRAME_TOO_LARGE)
        with pytest.raises(SpdyStreamReset):
            await first.receive()
        assert await second.receive() == b"ok"
        await peer.send(PingFrame(9))
        assert await peer.expect(PingFrame) == PingFrame(9)


async def test_bad_compression_ends_session_with_goaway() -> None:
    async with raw_client() as (srv, peer):
        junk = b"\x78\xf9\xe3\xc6\xa7\xc2" + b"\xff" * 8
        header = b"\x80\x03\x00\x01\x00" + (10 + len(junk)).to_bytes(3, "big")
        await peer.send_raw(header + (1).to_bytes(4, "big") + bytes(6) + junk)
        goaway = await peer.expect(GoAwayFrame)
        assert goaway == GoAwayFrame(0, GoAwayStatus.PROTOCOL_ERROR)
        await srv.wait_closed()
        assert srv.closed and srv.close_reason is not None


async def test_data_for_unknown_streams_is_ignored() -> None:
    async with raw_client() as (srv, peer):
        await peer.send(DataFrame(41, b"stray"), SynStreamFrame(1, {}))
        assert (await srv.accept()).id == 1


# ------------------------------------------------------------------------------ upgrade
KUBELET_EXEC_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"]


def test_upgrade_negotiates_the_clients_preferred_protocol() -> None:
    request = [
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
        ("X-Stream-Protocol-Version", "v4.channel.k8s.io, v3.channel.k8s.io"),
    ]
    decision = negotiate_upgrade(request, KUBELET_EXEC_PROTOCOLS)
    assert decision.ok and decision.protocol == "v4.channel.k8s.io"
    assert decision.body == b""
    assert decision.response_head() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
        b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"
    )
    client = client_upgrade_headers(["v4.channel.k8s.io", "channel.k8s.io"])
    assert negotiate_upgrade(client, KUBELET_EXEC_PROTOCOLS).protocol == "v4.channel.k8s.io"
    assert (
        check_upgrade_response(101, decision.headers, ["v4.channel.k8s.io"]) == "v4.channel.k8s.io"
    )


def test_upgrade_without_common_protocol_is_forbidden() -> None:
    request = {
        "connection": "upgrade",
        "upgrade": "spdy/3.1",
        "x-stream-protocol-version": "v9.channel.k8s.io",
    }
    decision = negotiate_upgrade(request, KUBELET_EXEC_PROTOCOLS)
    assert decision.status == 403 and decision.protocol is None
    assert [v for k, v in decision.headers if k == "X-Accepted-Stream-Protocol-Versions"] == (
        KUBELET_EXEC_PROTOCOLS
    )
    status = json.loads(decision.body)
    assert status["kind"] == "Status" and status["code"] == 403
    assert "unable to negotiate protocol" in status["message"]
    with pytest.raises(UpgradeFailed) as info:
        check_upgrade_response(403, decision.headers, ["v9.channel.k8s.io"], decision.body)
    assert info.value.status == 403 and "unable to negotiate" in str(info.value)
    head = decision.response_head()
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert f"Content-Length: {len(decision.body)}".encode() in head


@pytest.mark.parametrize(
    "request_headers",
    [
        {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"},  # no protocol offered
        {"X-Stream-Protocol-Version": "v4.channel.k8s.io"},  # no upgrade headers
        {
            "Connection": "keep-alive",
            "Upgrade": "SPDY/3.1",
            "X-Stream-Protocol-Version": "v4.channel.k8s.io",
        },
        {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "X-Stream-Protocol-Version": "v4.channel.k8s.io",
        },
    ],
)
def test_bad_upgrade_requests_are_400(request_headers: dict[str, str]) -> None:
    decision = negotiate_upgrade(request_headers, KUBELET_EXEC_PROTOCOLS)
    assert decision.status == 400 and not decision.ok
    assert json.loads(decision.body)["reason"] == "BadRequest"


def test_upgrade_response_checks() -> None:
    ok = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]
    assert check_upgrade_response(101, ok, ["v4.channel.k8s.io"]) == ""  # legacy server
    with pytest.raises(UpgradeFailed):
        check_upgrade_response(101, [("Connection", "Upgrade")], ["x"])
    with pytest.raises(UpgradeFailed):
        check_upgrade_response(101, [*ok, ("X-Stream-Protocol-Version", "other")], ["x"])
    assert is_upgrade_request({"Connection": "keep-alive, Upgrade"})
    assert not is_upgrade_request({"Connection": "close"})


async def test_a_cancelled_body_exits_a_session_that_was_already_closed() -> None:
    """The exit waits for the close (here already done) and leaves the session's task group
    even though the body was cancelled (the cancellation then goes on as usual)."""
    a, _peer = memory_transport_pair()
    with anyio.fail_after(GUARD):
        with anyio.CancelScope() as scope:
            async with SpdySession(a, server=True) as srv:
                await srv.aclose()  # e.g. the peer's GOAWAY, handled by another task
                scope.cancel()
        assert scope.cancelled_caught
        assert srv.closed
