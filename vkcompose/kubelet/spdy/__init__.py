"""SPDY/3.1 as Kubernetes speaks it for exec, attach and port-forward.

``frames`` is the wire codec, ``session`` the multiplexed connection (anyio), ``upgrade`` the
HTTP/1.1 upgrade negotiation and ``transport`` the byte-stream interface a session runs over.
"""

from vkcompose.kubelet.spdy.frames import FrameReader, FrameWriter, RstStatus, SpdyProtocolError
from vkcompose.kubelet.spdy.session import (
    FlowControl,
    SessionConfig,
    SpdySession,
    SpdySessionClosed,
    SpdyStream,
    SpdyStreamReset,
)
from vkcompose.kubelet.spdy.transport import ByteTransport, memory_transport_pair
from vkcompose.kubelet.spdy.upgrade import UpgradeDecision, negotiate_upgrade

__all__ = [
    "ByteTransport",
    "FlowControl",
    "FrameReader",
    "FrameWriter",
    "RstStatus",
    "SessionConfig",
    "SpdyProtocolError",
    "SpdySession",
    "SpdySessionClosed",
    "SpdyStream",
    "SpdyStreamReset",
    "UpgradeDecision",
    "memory_transport_pair",
    "negotiate_upgrade",
]
