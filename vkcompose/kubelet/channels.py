"""Kubernetes remote-command and port-forward stream protocols (pure helpers, no I/O).

Exec/attach open one stream per channel. Over SPDY each stream carries a ``streamType``
header; over WebSocket each message starts with the channel number (see
:mod:`vkcompose.kubelet.websocket_channels`).

================  =======  ====================================================
stream type       channel  content
================  =======  ====================================================
``stdin``         0        client -> container
``stdout``        1        container -> client
``stderr``        2        container -> client (never with a TTY)
``error``         3        the outcome: text (v1-v3), ``metav1.Status`` (v4+)
``resize``        4        TTY sizes as JSON ``{"Width":..,"Height":..}`` (v3+)
(close)           255      v5 WebSocket only: ``[255, channel]`` half-closes
================  =======  ====================================================

Port-forward over SPDY (``portforward.k8s.io``) pairs a ``data`` and an ``error`` stream per
connection, matched by the ``requestID`` header, the target in the ``port`` header.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from vkcompose.ops import TerminalSize

__all__ = [
    "BASE64_CHANNEL_PROTOCOL",
    "CHANNEL_PROTOCOL",
    "EXIT_CODE_CAUSE",
    "NON_ZERO_EXIT_CODE_REASON",
    "PORT_FORWARD_PROTOCOL_V1",
    "PORT_FORWARD_PROTOCOL_V2",
    "PORT_FORWARD_SPDY_PROTOCOLS",
    "PORT_HEADER",
    "REMOTE_COMMAND_SPDY_PROTOCOLS",
    "REQUEST_ID_HEADER",
    "STREAM_PROTOCOL_V1",
    "STREAM_PROTOCOL_V2",
    "STREAM_PROTOCOL_V3",
    "STREAM_PROTOCOL_V4",
    "STREAM_PROTOCOL_V5",
    "STREAM_TYPE_HEADER",
    "V4_BASE64_CHANNEL_PROTOCOL",
    "V4_CHANNEL_PROTOCOL",
    "Channel",
    "ExecOptions",
    "ResizeDecoder",
    "StreamType",
    "TerminalSize",
    "decode_exit_status",
    "encode_resize",
    "error_stream_payload",
    "exit_status",
    "expected_stream_types",
    "parse_port",
    "parse_ports",
    "port_forward_error",
    "port_forward_request_id",
    "protocol_version",
]


class Channel(enum.IntEnum):
    """Channel numbers of the remote-command protocols (POSIX fds for stdio)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    ERROR = 3
    RESIZE = 4
    #: v5 WebSocket close signal: a message ``[255, channel]`` half-closes ``channel``
    CLOSE = 255


class StreamType(enum.StrEnum):
    """Values of the SPDY ``streamType`` header."""

    STDIN = "stdin"
    STDOUT = "stdout"
    STDERR = "stderr"
    ERROR = "error"
    RESIZE = "resize"
    #: port-forward data stream
    DATA = "data"

    @property
    def channel(self) -> Channel:
        """The WebSocket channel of this stream type (``DATA`` has none: ValueError)."""
        if self is StreamType.DATA:
            raise ValueError("port-forward data streams have no fixed channel")
        return Channel[self.name]


STREAM_TYPE_HEADER: Final = "streamType"
PORT_HEADER: Final = "port"
REQUEST_ID_HEADER: Final = "requestID"

STREAM_PROTOCOL_V1: Final = "channel.k8s.io"
STREAM_PROTOCOL_V2: Final = "v2.channel.k8s.io"
STREAM_PROTOCOL_V3: Final = "v3.channel.k8s.io"
STREAM_PROTOCOL_V4: Final = "v4.channel.k8s.io"
STREAM_PROTOCOL_V5: Final = "v5.channel.k8s.io"
#: WebSocket subprotocols (``channel.k8s.io`` doubles as the pre-v4 binary one)
CHANNEL_PROTOCOL: Final = STREAM_PROTOCOL_V1
BASE64_CHANNEL_PROTOCOL: Final = "base64.channel.k8s.io"
V4_CHANNEL_PROTOCOL: Final = STREAM_PROTOCOL_V4
V4_BASE64_CHANNEL_PROTOCOL: Final = "v4.base64.channel.k8s.io"
PORT_FORWARD_PROTOCOL_V1: Final = "portforward.k8s.io"
#: WebSocket port-forward of KEP-4006: SPDY frames tunnelled in binary WebSocket messages
PORT_FORWARD_PROTOCOL_V2: Final = "v2.portforward.k8s.io"

#: SPDY protocols a kubelet serves for exec/attach, preferred first. ``v5`` is the v4
#: wire format plus the WebSocket close signal, which SPDY expresses with FIN anyway.
REMOTE_COMMAND_SPDY_PROTOCOLS: Final = (
    STREAM_PROTOCOL_V5,
    STREAM_PROTOCOL_V4,
    STREAM_PROTOCOL_V3,
    STREAM_PROTOCOL_V2,
    STREAM_PROTOCOL_V1,
)
PORT_FORWARD_SPDY_PROTOCOLS: Final = (PORT_FORWARD_PROTOCOL_V1,)

NON_ZERO_EXIT_CODE_REASON: Final = "NonZeroExitCode"
EXIT_CODE_CAUSE: Final = "ExitCode"

_VERSION_RE = re.compile(r"^(?:v(\d+)\.)?(?:base64\.)?channel\.k8s\.io$")


def protocol_version(protocol: str) -> int:
    """Remote-command protocol version: ``channel.k8s.io`` (or ``""``) is 1, ``vN.…`` is N."""
    if protocol == "":
        return 1
    match = _VERSION_RE.match(protocol)
    if match is None:
        raise ValueError(f"not a remote-command protocol: {protocol!r}")
    return int(match.group(1) or 1)


# ----------------------------------------------------------------------------- exec options
_TRUE: Final = frozenset({"1", "true", "True", "TRUE"})


@dataclass(frozen=True, slots=True)
class ExecOptions:
    """Which streams an exec/attach request wants (the kubelet's ``remotecommand.Options``)."""

    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False
    command: tuple[str, ...] = ()

    @classmethod
    def from_query(
        cls, query: Mapping[str, str] | Iterable[tuple[str, str]], *, strict: bool = False
    ) -> ExecOptions:
        """Parse ``stdin``/``stdout``/``stderr``/``tty``/``command`` query parameters.

        Like the kubelet, ``tty`` with ``stderr`` drops stderr (``strict``: ValueError
        instead), and at least one stdio stream is required (ValueError).
        """
        pairs = list(query.items() if isinstance(query, Mapping) else query)
        first: dict[str, str] = {}
        command: list[str] = []
        for key, value in pairs:
            if key == "command":
                command.append(value)
            first.setdefault(key, value)

        def flag(name: str) -> bool:
            return first.get(name, "") in _TRUE

        stdin, stdout, stderr, tty = flag("stdin"), flag("stdout"), flag("stderr"), flag("tty")
        if tty and stderr:
            if strict:
                raise ValueError("stderr cannot be used with tty")
            stderr = False
        if not (stdin or stdout or stderr):
            raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
        return cls(stdin, stdout, stderr, tty, tuple(command))


def expected_stream_types(options: ExecOptions, protocol: str) -> frozenset[StreamType]:
    """The SPDY streams a client opens for ``options``: ``error`` always, ``resize`` for a TTY
    from v3 on, and the requested stdio streams."""
    types = {StreamType.ERROR}
    if options.stdin:
        types.add(StreamType.STDIN)
    if options.stdout:
        types.add(StreamType.STDOUT)
    if options.stderr:
        types.add(StreamType.STDERR)
    if options.tty and protocol_version(protocol) >= 3:
        types.add(StreamType.RESIZE)
    return frozenset(types)


# ---------------------------------------------------------------------------- exit status
def exit_status(exit_code: int | None, message: str | None = None) -> dict[str, Any]:
    """The ``metav1.Status`` a kubelet writes on the error stream (v4+).

    ``exit_code`` 0 is ``Success``; a non-zero code is ``Failure`` with reason
    ``NonZeroExitCode`` and an ``ExitCode`` cause; ``None`` is a plain failure (the command
    could not run) described by ``message``.
    """
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    if exit_code is None:
        return {
            "metadata": {},
            "status": "Failure",
            "message": message or "command failed",
            "reason": "InternalError",
            "code": 500,
        }
    return {
        "metadata": {},
        "status": "Failure",
        "message": message
        or f"command terminated with non-zero exit code: exit status {exit_code}",
        "reason": NON_ZERO_EXIT_CODE_REASON,
        "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(exit_code)}]},
    }


def error_stream_payload(protocol: str, exit_code: int | None, message: str | None = None) -> bytes:
    """Bytes to write on the error stream when the command ends.

    v4+: the :func:`exit_status` JSON. v1-v3: nothing on success, else the error text (those
    clients cannot carry an exit code).
    """
    if protocol_version(protocol) >= 4:
        return json.dumps(exit_status(exit_code, message), separators=(",", ":")).encode()
    if exit_code == 0:
        return b""
    status = exit_status(exit_code, message)
    return str(status["message"]).encode()


def decode_exit_status(payload: bytes) -> int:
    """Client side of :func:`error_stream_payload` (v4+): the exit code, as client-go reads it.

    Empty payload or ``Success`` is 0; ``NonZeroExitCode`` gives the ``ExitCode`` cause;
    any other failure raises ``RuntimeError`` with the status message.
    """
    if not payload.strip():
        return 0
    status = json.loads(payload)
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == NON_ZERO_EXIT_CODE_REASON:
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == EXIT_CODE_CAUSE:
                return int(cause["message"])
        raise RuntimeError(f"malformed exit status: {status.get('message', '')}")
    raise RuntimeError(str(status.get("message", "error executing remote command")))


# --------------------------------------------------------------------------------- resize
def encode_resize(size: TerminalSize) -> bytes:
    """JSON of one resize event, as client-go writes it."""
    return json.dumps({"Width": size.width, "Height": size.height}).encode()


class ResizeDecoder:
    """Incremental decoder of the resize stream: concatenated JSON objects in arbitrary chunks.

    Like Go's ``json.Decoder`` the kubelet uses, a malformed message ends the stream
    (``ValueError``); keys match case-insensitively and sizes are clamped to uint16.
    """

    def __init__(self, max_buffer: int = 64 * 1024) -> None:
        self._buf = ""
        self.max_buffer = max_buffer

    def feed(self, data: bytes) -> list[TerminalSize]:
        """Add bytes; return the sizes they complete."""
        self._buf += data.decode("utf-8", "replace")
        sizes = []
        while True:
            text = self._buf.lstrip()
            self._buf = text
            if not text:
                break
            if not text.startswith("{"):
                raise ValueError("malformed resize message: expected a JSON object")
            end = _object_end(text)
            if end is None:
                if len(text) > self.max_buffer:
                    raise ValueError("resize message too large")
                break
            try:
                obj = json.loads(text[:end])
            except json.JSONDecodeError as exc:
                raise ValueError(f"malformed resize message: {exc.msg}") from exc
            self._buf = text[end:]
            fields = {str(k).lower(): v for k, v in obj.items()}
            sizes.append(TerminalSize(_uint16(fields.get("width")), _uint16(fields.get("height"))))
        return sizes


def _object_end(text: str) -> int | None:
    """Index just past the JSON object starting ``text``, or ``None`` if it is incomplete."""
    depth = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _uint16(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, min(int(value), 0xFFFF))


# ---------------------------------------------------------------------------- port-forward
def parse_port(value: str | None) -> int:
    """A ``port`` header/query value: 1..65535 (ValueError otherwise, with the kubelet's text)."""
    if value is None or value == "":
        raise ValueError(f'"{PORT_HEADER}" header is required')
    if not value.isdigit():
        raise ValueError(f"unable to parse {value!r} as a port")
    port = int(value)
    if port > 0xFFFF:
        raise ValueError(f"unable to parse {value!r} as a port")
    if port < 1:
        raise ValueError(f"port {value!r} must be > 0")
    return port


def parse_ports(values: Sequence[str]) -> list[int]:
    """The ``ports`` query parameters of a WebSocket port-forward (repeated, comma-separated)."""
    if not values:
        raise ValueError('query parameter "port" is required')
    ports: list[int] = []
    for value in values:
        if value == "":
            raise ValueError('query parameter "port" cannot be empty')
        ports.extend(parse_port(item) for item in value.split(","))
    return ports


def port_forward_request_id(headers: Mapping[str, Sequence[str]], stream_id: int) -> str:
    """The pairing key of a port-forward stream.

    The ``requestID`` header, or for old clients the kubelet's guess: the error stream's id,
    and the data stream's id minus 2.
    """
    values = headers.get(REQUEST_ID_HEADER.lower())
    if values and values[0]:
        return values[0]
    kind = (headers.get(STREAM_TYPE_HEADER.lower()) or ("",))[0]
    if kind == StreamType.DATA:
        return str(stream_id - 2)
    return str(stream_id)


def port_forward_error(message: str, *, close_connection: bool = False) -> bytes:
    """The JSON a kubelet writes on a port-forward error stream (``portForwardErrResponse``)."""
    body: dict[str, Any] = {}
    if close_connection:
        body["closeConnection"] = True
    if message:
        body["message"] = message
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"
