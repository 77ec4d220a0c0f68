"""Channel multiplexing over WebSocket messages (transport-agnostic framing helpers).

Each WebSocket message carries one channel's bytes, prefixed by the channel number:

* binary protocols (``channel.k8s.io``, ``v4.channel.k8s.io``, ``v5.channel.k8s.io``): a
  binary message ``[channel] + data``;
* base64 protocols (``base64.channel.k8s.io``, ``v4.base64.channel.k8s.io``): a text
  message ``chr(ord("0") + channel) + base64(data)``;
* ``v5.channel.k8s.io`` adds the close signal ``[255, channel]`` (half-close of a channel).

Port-forward over WebSocket uses two channels per requested port (data ``2i``, error
``2i+1``); the kubelet's first message on each carries the port as 2 bytes little-endian.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from vkcompose.kubelet.channels import (
    BASE64_CHANNEL_PROTOCOL,
    CHANNEL_PROTOCOL,
    STREAM_PROTOCOL_V5,
    V4_BASE64_CHANNEL_PROTOCOL,
    V4_CHANNEL_PROTOCOL,
    Channel,
)

__all__ = [
    "EXEC_WEBSOCKET_PROTOCOLS",
    "PORT_FORWARD_WEBSOCKET_PROTOCOLS",
    "ChannelCodec",
    "ChannelMessage",
    "codec_for",
    "decode_port_prefix",
    "encode_port_prefix",
    "port_forward_channels",
    "select_subprotocol",
]

#: WebSocket subprotocols a kubelet accepts for exec/attach (``""``: none requested = binary).
EXEC_WEBSOCKET_PROTOCOLS: Final = (
    STREAM_PROTOCOL_V5,
    V4_CHANNEL_PROTOCOL,
    V4_BASE64_CHANNEL_PROTOCOL,
    CHANNEL_PROTOCOL,
    BASE64_CHANNEL_PROTOCOL,
    "",
)
#: WebSocket subprotocols a kubelet accepts for port-forward.
PORT_FORWARD_WEBSOCKET_PROTOCOLS: Final = (
    V4_CHANNEL_PROTOCOL,
    V4_BASE64_CHANNEL_PROTOCOL,
    "",
)

_BASE64: Final = frozenset({BASE64_CHANNEL_PROTOCOL, V4_BASE64_CHANNEL_PROTOCOL})
_PORT = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One decoded message: ``data`` for ``channel``, or (``close``) its v5 half-close."""

    channel: int
    data: bytes = b""
    close: bool = False


@dataclass(frozen=True, slots=True)
class ChannelCodec:
    """Encoder/decoder for one negotiated subprotocol."""

    protocol: str
    #: text messages with base64 payloads instead of binary messages
    base64: bool
    #: ``[255, channel]`` close signals are understood (v5)
    supports_close: bool

    def encode(self, channel: int, data: bytes) -> bytes | str:
        """A message carrying ``data`` on ``channel`` (``str``: send as a text frame)."""
        _check_channel(channel)
        if self.base64:
            return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
        return bytes((channel,)) + data

    def encode_close(self, channel: int) -> bytes:
        """The v5 close signal for ``channel``."""
        if not self.supports_close:
            raise ValueError(f"{self.protocol or 'no subprotocol'} has no close signal")
        _check_channel(channel)
        return bytes((Channel.CLOSE, channel))

    def decode(self, message: bytes | str) -> ChannelMessage | None:
        """Decode one received message; ``None`` for an empty one (ignored, as Go does).

        Raises ``ValueError`` for invalid base64 or a malformed close signal.
        """
        if not message:
            return None
        if self.base64:
            text = message if isinstance(message, str) else message.decode("ascii", "replace")
            channel = ord(text[0]) - ord("0")
            if not 0 <= channel < Channel.CLOSE:
                raise ValueError(f"invalid channel character {text[0]!r}")
            try:
                data = base64.b64decode(text[1:], validate=True)
            except binascii.Error as exc:
                raise ValueError(f"invalid base64 on channel {channel}: {exc}") from exc
            return ChannelMessage(channel, data)
        raw = message.encode() if isinstance(message, str) else message
        channel = raw[0]
        if channel == Channel.CLOSE and self.supports_close:
            if len(raw) != 2:
                raise ValueError("malformed close signal")
            return ChannelMessage(raw[1], close=True)
        return ChannelMessage(channel, raw[1:])


def _check_channel(channel: int) -> None:
    if not 0 <= channel < Channel.CLOSE:
        raise ValueError(f"invalid channel {channel}")


def codec_for(protocol: str) -> ChannelCodec:
    """The codec of a negotiated subprotocol (``""``: binary without close signal)."""
    if protocol not in (*EXEC_WEBSOCKET_PROTOCOLS, *PORT_FORWARD_WEBSOCKET_PROTOCOLS):
        raise ValueError(f"unknown channel subprotocol {protocol!r}")
    return ChannelCodec(protocol, protocol in _BASE64, protocol == STREAM_PROTOCOL_V5)


def select_subprotocol(requested: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first requested subprotocol the server supports, as Go's ``wsstream`` handshake.

    No requested subprotocol selects ``""`` when supported; ``None`` means refuse.
    """
    for protocol in requested or ("",):
        if protocol in supported:
            return protocol
    return None


def port_forward_channels(index: int) -> tuple[int, int]:
    """(data, error) channel numbers of the ``index``-th forwarded port."""
    if index < 0 or 2 * index + 1 >= Channel.CLOSE:
        raise ValueError(f"too many ports: {index + 1}")
    return 2 * index, 2 * index + 1


def encode_port_prefix(port: int) -> bytes:
    """The 2-byte little-endian port that starts each port-forward channel."""
    if not 0 < port <= 0xFFFF:
        raise ValueError(f"invalid port {port}")
    return _PORT.pack(port)


def decode_port_prefix(data: bytes) -> tuple[int, bytes]:
    """Split the first message of a port-forward channel into (port, rest)."""
    if len(data) < 2:
        raise ValueError("port-forward channel did not start with a port")
    (port,) = _PORT.unpack_from(data)
    return port, data[2:]
