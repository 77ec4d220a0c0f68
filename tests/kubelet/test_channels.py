"""Remote-command / port-forward protocol helpers and WebSocket channel framing."""

from __future__ import annotations

import base64
import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.kubelet.channels import (
    REMOTE_COMMAND_SPDY_PROTOCOLS,
    Channel,
    ExecOptions,
    ResizeDecoder,
    StreamType,
    TerminalSize,
    decode_exit_status,
    encode_resize,
    error_stream_payload,
    exit_status,
    expected_stream_types,
    parse_port,
    parse_ports,
    port_forward_error,
    port_forward_request_id,
    protocol_version,
)
from vkcompose.kubelet.websocket_channels import (
    EXEC_WEBSOCKET_PROTOCOLS,
    PORT_FORWARD_WEBSOCKET_PROTOCOLS,
    ChannelMessage,
    codec_for,
    decode_port_prefix,
    encode_port_prefix,
    port_forward_channels,
    select_subprotocol,
)

#: what the kubelet (Go, encoding/json of metav1.Status) writes on the v4 error stream
GO_SUCCESS = b'{"metadata":{},"status":"Success"}'
GO_EXIT_3 = (
    b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
    b'exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode",'
    b'"message":"3"}]}}'
)


# ----------------------------------------------------------------------------- constants
def test_channel_numbers_and_stream_types() -> None:
    assert [int(c) for c in Channel] == [0, 1, 2, 3, 4, 255]
    assert [StreamType(t).channel for t in ("stdin", "stdout", "stderr", "error", "resize")] == [
        0,
        1,
        2,
        3,
        4,
    ]
    with pytest.raises(ValueError):
        _ = StreamType.DATA.channel


@pytest.mark.parametrize(
    ("protocol", "version"),
    [
        ("", 1),
        ("channel.k8s.io", 1),
        ("v2.channel.k8s.io", 2),
        ("v3.channel.k8s.io", 3),
        ("v4.channel.k8s.io", 4),
        ("v5.channel.k8s.io", 5),
        ("base64.channel.k8s.io", 1),
        ("v4.base64.channel.k8s.io", 4),
    ],
)
def test_protocol_versions(protocol: str, version: int) -> None:
    assert protocol_version(protocol) == version


def test_unknown_protocol_is_rejected() -> None:
    with pytest.raises(ValueError):
        protocol_version("portforward.k8s.io")


def test_spdy_protocols_are_ordered_by_preference() -> None:
    assert [protocol_version(p) for p in REMOTE_COMMAND_SPDY_PROTOCOLS] == [5, 4, 3, 2, 1]


# ------------------------------------------------------------------------------- options
def test_exec_options_from_query() -> None:
    query = [
        ("command", "sh"),
        ("command", "-c"),
        ("command", "echo hi"),
        ("stdin", "true"),
        ("stdout", "1"),
        ("stderr", "false"),
        ("tty", "0"),
    ]
    opts = ExecOptions.from_query(query)
    assert opts == ExecOptions(stdin=True, stdout=True, command=("sh", "-c", "echo hi"))
    assert expected_stream_types(opts, "v4.channel.k8s.io") == {"error", "stdin", "stdout"}


def test_tty_drops_stderr_or_rejects_it_when_strict() -> None:
    query = {"stdout": "true", "stderr": "true", "tty": "true"}
    opts = ExecOptions.from_query(query)
    assert opts.tty and not opts.stderr
    assert expected_stream_types(opts, "v4.channel.k8s.io") == {"error", "stdout", "resize"}
    assert expected_stream_types(opts, "v2.channel.k8s.io") == {"error", "stdout"}
    with pytest.raises(ValueError, match="tty"):
        ExecOptions.from_query(query, strict=True)


def test_at_least_one_stdio_stream() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ExecOptions.from_query({"tty": "true", "command": "ls"})


# --------------------------------------------------------------------------- exit status
def test_exit_status_matches_the_kubelet_bytes() -> None:
    assert error_stream_payload("v4.channel.k8s.io", 0) == GO_SUCCESS
    assert error_stream_payload("v5.channel.k8s.io", 3) == GO_EXIT_3
    assert decode_exit_status(GO_SUCCESS) == 0
    assert decode_exit_status(GO_EXIT_3) == 3
    assert decode_exit_status(b"") == 0


def test_legacy_protocols_carry_text_only_on_failure() -> None:
    assert error_stream_payload("channel.k8s.io", 0) == b""
    assert error_stream_payload("v3.channel.k8s.io", 2) == (
        b"command terminated with non-zero exit code: exit status 2"
    )
    assert error_stream_payload("v2.channel.k8s.io", None, "no such container") == (
        b"no such container"
    )


def test_failure_without_exit_code() -> None:
    status = exit_status(None, "container not running")
    assert status["status"] == "Failure" and "details" not in status
    with pytest.raises(RuntimeError, match="container not running"):
        decode_exit_status(json.dumps(status).encode())


@given(st.integers(0, 255))
def test_exit_codes_round_trip(code: int) -> None:
    assert decode_exit_status(error_stream_payload("v4.channel.k8s.io", code)) == code


# -------------------------------------------------------------------------------- resize
def test_resize_matches_client_go_encoding() -> None:
    assert encode_resize(TerminalSize(80, 24)) == b'{"Width": 80, "Height": 24}'
    assert json.loads(encode_resize(TerminalSize(1, 2))) == {"Width": 1, "Height": 2}


@given(
    sizes=st.lists(st.builds(TerminalSize, st.integers(0, 65535), st.integers(0, 65535))),
    cuts=st.lists(st.integers(0, 2000)),
)
def test_resize_stream_decodes_any_chunking(sizes: list[TerminalSize], cuts: list[int]) -> None:
    wire = b"\n".join(encode_resize(s) for s in sizes)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    decoder = ResizeDecoder()
    got: list[TerminalSize] = []
    for start, end in itertools.pairwise(points):
        got += decoder.feed(wire[start:end])
    assert got == sizes


def test_resize_decoder_is_lenient_like_go_and_rejects_garbage() -> None:
    decoder = ResizeDecoder()
    assert decoder.feed(b'{"width":100,"HEIGHT":70000,"extra":"}"}') == [TerminalSize(100, 65535)]
    with pytest.raises(ValueError):
        ResizeDecoder().feed(b"[1,2]")
    with pytest.raises(ValueError):
        ResizeDecoder().feed(b'{"Width": 1,}')
    with pytest.raises(ValueError, match="too large"):
        ResizeDecoder(max_buffer=10).feed(b'{"Width": 1000000000000000')


# -------------------------------------------------------------------------- port-forward
def test_ports() -> None:
    assert parse_port("8080") == 8080
    for bad in ["", "0", "65536", "-1", "http", None]:
        with pytest.raises(ValueError):
            parse_port(bad)
    assert parse_ports(["80,443", "8080"]) == [80, 443, 8080]
    with pytest.raises(ValueError):
        parse_ports([])
    with pytest.raises(ValueError):
        parse_ports([""])


def test_port_forward_request_ids() -> None:
    assert port_forward_request_id({"requestid": ("7",), "streamtype": ("data",)}, 9) == "7"
    # old clients: pair the error stream (id n) with the data stream (id n + 2)
    assert port_forward_request_id({"streamtype": ("error",)}, 5) == "5"
    assert port_forward_request_id({"streamtype": ("data",)}, 7) == "5"


def test_port_forward_error_json() -> None:
    assert port_forward_error("boom") == b'{"message":"boom"}\n'
    assert json.loads(port_forward_error("x", close_connection=True)) == {
        "closeConnection": True,
        "message": "x",
    }


# ------------------------------------------------------------------- websocket channels
def test_binary_framing() -> None:
    codec = codec_for("v4.channel.k8s.io")
    assert codec.encode(Channel.STDOUT, b"hi") == b"\x01hi"
    assert codec.decode(b"\x00foo\n") == ChannelMessage(0, b"foo\n")
    assert codec.decode(b"") is None
    with pytest.raises(ValueError):
        codec.encode_close(0)  # v4 has no close signal


def test_v5_close_signal() -> None:
    codec = codec_for("v5.channel.k8s.io")
    assert codec.supports_close and not codec.base64
    assert codec.encode_close(Channel.STDIN) == b"\xff\x00"
    assert codec.decode(b"\xff\x00") == ChannelMessage(0, close=True)
    with pytest.raises(ValueError):
        codec.decode(b"\xff\x00\x01")


def test_base64_framing_matches_the_go_doc_example() -> None:
    codec = codec_for("base64.channel.k8s.io")
    # wsstream docs: send "foo\n" on '0' as "0Zm9vCg==", receive "\n" on '1' as "1Cg=="
    assert codec.encode(Channel.STDIN, b"foo\n") == "0Zm9vCg=="
    assert codec.decode("1Cg==") == ChannelMessage(1, b"\n")
    assert codec.decode(b"1Cg==") == ChannelMessage(1, b"\n")
    with pytest.raises(ValueError):
        codec.decode("1not base64!")


@given(st.integers(0, 254), st.binary(max_size=200), st.sampled_from(EXEC_WEBSOCKET_PROTOCOLS))
def test_framing_round_trip(channel: int, data: bytes, protocol: str) -> None:
    codec = codec_for(protocol)
    if codec.base64 and channel > 9:
        channel = channel % 10  # base64 channels are single digits in practice
    message = codec.encode(channel, data)
    assert codec.decode(message) == ChannelMessage(channel, data)
    if codec.base64:
        assert isinstance(message, str)
        assert base64.b64decode(message[1:]) == data


def test_subprotocol_selection() -> None:
    assert select_subprotocol(["v5.channel.k8s.io"], EXEC_WEBSOCKET_PROTOCOLS) == (
        "v5.channel.k8s.io"
    )
    assert select_subprotocol(["nope", "channel.k8s.io"], EXEC_WEBSOCKET_PROTOCOLS) == (
        "channel.k8s.io"
    )
    assert select_subprotocol([], EXEC_WEBSOCKET_PROTOCOLS) == ""
    assert select_subprotocol(["v5.channel.k8s.io"], PORT_FORWARD_WEBSOCKET_PROTOCOLS) is None
    with pytest.raises(ValueError):
        codec_for("v9.channel.k8s.io")


def test_port_forward_websocket_layout() -> None:
    assert [port_forward_channels(i) for i in range(3)] == [(0, 1), (2, 3), (4, 5)]
    assert encode_port_prefix(8080) == b"\x90\x1f"  # little endian
    assert decode_port_prefix(b"\x90\x1fdata") == (8080, b"data")
    with pytest.raises(ValueError):
        decode_port_prefix(b"\x01")
    with pytest.raises(ValueError):
        encode_port_prefix(0)
    with pytest.raises(ValueError):
        port_forward_channels(127)
