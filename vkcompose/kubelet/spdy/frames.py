"""SPDY/3.1 frame encoding and decoding (no I/O).

Layout (draft-mbelshe-httpbis-spdy-00, "SPDY Protocol - Draft 3.1"), all integers big-endian::

    control frame   |1| version(15) | type(16) | flags(8) | length(24) | payload...
    data frame      |0| stream-id(31)          | flags(8) | length(24) | payload...

Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are ``count(32)`` followed by
``len(32) name len(32) value`` pairs, where one value may hold several NUL-separated values.
They are zlib-compressed with :data:`~vkcompose.kubelet.spdy.dictionary.SPDY3_DICTIONARY`,
one compression context per direction per connection, each block ending with a sync flush.

:class:`HeaderCompressor` / :class:`HeaderDecompressor` hold those contexts, :class:`FrameWriter`
turns frames into bytes and :class:`FrameReader` turns arbitrary byte chunks back into frames.
Errors are :class:`SpdyProtocolError` subclasses carrying the stream they concern (if any),
the RST_STREAM status to answer with and whether the whole session is beyond repair.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from vkcompose.kubelet.spdy.dictionary import SPDY3_DICTIONARY

__all__ = [
    "CONTROL_FLAG_FIN",
    "CONTROL_FLAG_UNIDIRECTIONAL",
    "DATA_FLAG_FIN",
    "DEFAULT_INITIAL_WINDOW_SIZE",
    "DEFAULT_MAX_CONTROL_FRAME_SIZE",
    "DEFAULT_MAX_DATA_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_BLOCK_SIZE",
    "MAX_FRAME_LENGTH",
    "MAX_STREAM_ID",
    "MAX_WINDOW_SIZE",
    "SETTINGS_FLAG_CLEAR_SETTINGS",
    "SPDY_VERSION",
    "CompressionError",
    "ControlFrame",
    "DataFrame",
    "Frame",
    "FrameReader",
    "FrameTooLarge",
    "FrameType",
    "FrameWriter",
    "GoAwayFrame",
    "GoAwayStatus",
    "HeaderCompressor",
    "HeaderDecompressor",
    "Headers",
    "HeadersFrame",
    "PingFrame",
    "RstStatus",
    "RstStreamFrame",
    "Setting",
    "SettingId",
    "SettingsFrame",
    "SpdyProtocolError",
    "SynReplyFrame",
    "SynStreamFrame",
    "UnknownControlFrame",
    "WindowUpdateFrame",
    "decode_header_block",
    "encode_header_block",
    "first_header",
    "normalize_headers",
]

SPDY_VERSION: Final = 3
#: Largest payload the 24-bit length field can describe.
MAX_FRAME_LENGTH: Final = (1 << 24) - 1
MAX_STREAM_ID: Final = (1 << 31) - 1
MAX_WINDOW_SIZE: Final = (1 << 31) - 1
#: SPDY/3.1 initial stream and session flow-control window.
DEFAULT_INITIAL_WINDOW_SIZE: Final = 64 * 1024
#: Default receive limits; a peer that exceeds them gets RST_STREAM(FRAME_TOO_LARGE).
DEFAULT_MAX_DATA_FRAME_SIZE: Final = 1024 * 1024
DEFAULT_MAX_CONTROL_FRAME_SIZE: Final = 64 * 1024
DEFAULT_MAX_HEADER_BLOCK_SIZE: Final = 256 * 1024

CONTROL_FLAG_FIN: Final = 0x01
CONTROL_FLAG_UNIDIRECTIONAL: Final = 0x02
SETTINGS_FLAG_CLEAR_SETTINGS: Final = 0x01
DATA_FLAG_FIN: Final = 0x01

_U32 = struct.Struct(">I")
_U32x2 = struct.Struct(">II")
_SYN_STREAM_PREFIX = struct.Struct(">IIBB")
_HEADER_VALUE_SEPARATOR: Final = b"\x00"


class FrameType(enum.IntEnum):
    """Control frame types of SPDY/3.1."""

    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    """RST_STREAM status codes."""

    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class GoAwayStatus(enum.IntEnum):
    """GOAWAY status codes."""

    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SettingId(enum.IntEnum):
    """SETTINGS identifiers."""

    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


#: Decoded header block: lowercase name -> values (a block value may carry several, NUL-separated).
Headers: TypeAlias = dict[str, tuple[str, ...]]


# --------------------------------------------------------------------------------------- errors
class SpdyProtocolError(Exception):
    """A peer broke the protocol.

    ``stream_id`` names the stream the error concerns (``None``: the session), ``status`` the
    RST_STREAM status to reset it with, and ``fatal`` says the session cannot continue (answer
    with GOAWAY(PROTOCOL_ERROR) and close).
    """

    def __init__(
        self,
        message: str,
        *,
        stream_id: int | None = None,
        status: RstStatus = RstStatus.PROTOCOL_ERROR,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.status = status
        self.fatal = fatal


class FrameTooLarge(SpdyProtocolError):
    """A frame's length exceeds the configured limit.

    The reader skips the payload (feeding compressed header blocks through the decompressor so
    the shared zlib context stays in sync), so the session can reset the stream and go on.
    """

    def __init__(self, message: str, *, stream_id: int | None, length: int, limit: int) -> None:
        super().__init__(
            message, stream_id=stream_id, status=RstStatus.FRAME_TOO_LARGE, fatal=False
        )
        self.length = length
        self.limit = limit


class CompressionError(SpdyProtocolError):
    """A header block could not be decompressed: the shared zlib context is lost (fatal)."""

    def __init__(self, message: str, *, stream_id: int | None = None) -> None:
        super().__init__(message, stream_id=stream_id, fatal=True)


# --------------------------------------------------------------------------------------- frames
@dataclass(frozen=True, slots=True)
class DataFrame:
    """DATA frame: ``data`` for ``stream_id``; FLAG_FIN half-closes the sender's side."""

    stream_id: int
    data: bytes = b""
    flags: int = 0

    @property
    def fin(self) -> bool:
        """Whether this is the sender's last frame on the stream."""
        return bool(self.flags & DATA_FLAG_FIN)


@dataclass(frozen=True, slots=True)
class SynStreamFrame:
    """SYN_STREAM: opens ``stream_id`` with request ``headers``."""

    stream_id: int
    headers: Headers = field(default_factory=dict)
    associated_to: int = 0
    priority: int = 0
    slot: int = 0
    flags: int = 0

    @property
    def fin(self) -> bool:
        """The opener sends no data on this stream."""
        return bool(self.flags & CONTROL_FLAG_FIN)

    @property
    def unidirectional(self) -> bool:
        """The recipient must not send on this stream."""
        return bool(self.flags & CONTROL_FLAG_UNIDIRECTIONAL)


@dataclass(frozen=True, slots=True)
class SynReplyFrame:
    """SYN_REPLY: accepts ``stream_id`` with response ``headers``."""

    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0

    @property
    def fin(self) -> bool:
        """The replier sends no data on this stream."""
        return bool(self.flags & CONTROL_FLAG_FIN)


@dataclass(frozen=True, slots=True)
class RstStreamFrame:
    """RST_STREAM: abnormal termination of ``stream_id``."""

    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Setting:
    """One SETTINGS entry (``flags``: 0x1 PERSIST_VALUE, 0x2 PERSISTED)."""

    id: int
    value: int
    flags: int = 0


@dataclass(frozen=True, slots=True)
class SettingsFrame:
    """SETTINGS: session parameters (flag 0x1 CLEAR_SETTINGS)."""

    settings: tuple[Setting, ...] = ()
    flags: int = 0

    def get(self, setting_id: int) -> int | None:
        """Value of ``setting_id`` (last one wins), or ``None``."""
        value = None
        for entry in self.settings:
            if entry.id == setting_id:
                value = entry.value
        return value


@dataclass(frozen=True, slots=True)
class PingFrame:
    """PING: echoed by the receiver when ``ping_id`` has the sender's parity."""

    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAwayFrame:
    """GOAWAY: no new streams; ``last_good_stream_id`` is the last peer stream processed."""

    last_good_stream_id: int
    status: int = GoAwayStatus.OK


@dataclass(frozen=True, slots=True)
class HeadersFrame:
    """HEADERS: additional headers for ``stream_id``."""

    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0

    @property
    def fin(self) -> bool:
        """The sender half-closes the stream with this frame."""
        return bool(self.flags & CONTROL_FLAG_FIN)


@dataclass(frozen=True, slots=True)
class WindowUpdateFrame:
    """WINDOW_UPDATE: ``delta`` more bytes may be sent on ``stream_id`` (0: the session)."""

    stream_id: int
    delta: int


@dataclass(frozen=True, slots=True)
class UnknownControlFrame:
    """A control frame of a type this implementation does not know (to be ignored)."""

    version: int
    frame_type: int
    flags: int
    payload: bytes


ControlFrame: TypeAlias = (
    SynStreamFrame
    | SynReplyFrame
    | RstStreamFrame
    | SettingsFrame
    | PingFrame
    | GoAwayFrame
    | HeadersFrame
    | WindowUpdateFrame
    | UnknownControlFrame
)
Frame: TypeAlias = DataFrame | ControlFrame


# ------------------------------------------------------------------------------- header blocks
def normalize_headers(headers: Mapping[str, str | Sequence[str]]) -> Headers:
    """Lowercase names and turn every value into a tuple of strings."""
    out: Headers = {}
    for name, value in headers.items():
        values = (value,) if isinstance(value, str) else tuple(value)
        key = name.lower()
        out[key] = out.get(key, ()) + values
    return out


def first_header(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    """First value of header ``name`` (case-insensitive), or ``None`` (Go's ``Header.Get``)."""
    values = headers.get(name.lower())
    if not values:
        return None
    return values[0]


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _dec(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def encode_header_block(headers: Mapping[str, str | Sequence[str]]) -> bytes:
    """Serialize ``headers`` to an uncompressed SPDY/3 header block.

    Names are lowercased (as the Go framer does); several values for one name are joined with
    NUL. Raises :class:`ValueError` for an empty name or a name containing NUL.
    """
    normalized = normalize_headers(headers)
    parts = [_U32.pack(len(normalized))]
    for name, values in normalized.items():
        raw_name = _enc(name)
        if not raw_name or _HEADER_VALUE_SEPARATOR in raw_name:
            raise ValueError(f"invalid SPDY header name {name!r}")
        raw_value = _HEADER_VALUE_SEPARATOR.join(_enc(v) for v in values)
        parts += [_U32.pack(len(raw_name)), raw_name, _U32.pack(len(raw_value)), raw_value]
    return b"".join(parts)


def decode_header_block(block: bytes, *, stream_id: int | None = None) -> Headers:
    """Parse an uncompressed SPDY/3 header block.

    The block must be consumed exactly. Duplicate or empty names are a (stream-level)
    :class:`SpdyProtocolError`; names are lowercased.
    """
    view = memoryview(block)
    total = len(view)

    def fail(reason: str) -> SpdyProtocolError:
        return SpdyProtocolError(f"invalid header block: {reason}", stream_id=stream_id)

    if total < 4:
        raise fail("truncated count")
    (count,) = _U32.unpack_from(view, 0)
    pos = 4
    # every pair needs at least 8 bytes: refuse absurd counts before allocating anything
    if count > (total - pos) // 8:
        raise fail(f"count {count} does not fit in {total} bytes")
    headers: Headers = {}
    for _ in range(count):
        if pos + 4 > total:
            raise fail("truncated name length")
        (name_len,) = _U32.unpack_from(view, pos)
        pos += 4
        if name_len == 0 or pos + name_len > total:
            raise fail("bad name length")
        name = _dec(bytes(view[pos : pos + name_len])).lower()
        pos += name_len
        if pos + 4 > total:
            raise fail("truncated value length")
        (value_len,) = _U32.unpack_from(view, pos)
        pos += 4
        if pos + value_len > total:
            raise fail("bad value length")
        raw_value = bytes(view[pos : pos + value_len])
        pos += value_len
        if name in headers:
            raise fail(f"duplicate header {name!r}")
        headers[name] = tuple(_dec(v) for v in raw_value.split(_HEADER_VALUE_SEPARATOR))
    if pos != total:
        raise fail(f"{total - pos} trailing bytes")
    return headers


class HeaderCompressor:
    """The sending direction's zlib context (one per connection, primed with the dictionary)."""

    def __init__(self, level: int = zlib.Z_DEFAULT_COMPRESSION) -> None:
        self._z = zlib.compressobj(level, zdict=SPDY3_DICTIONARY)

    def compress(self, headers: Mapping[str, str | Sequence[str]]) -> bytes:
        """Compress one header block, ending with a sync flush."""
        block = encode_header_block(headers)
        return self._z.compress(block) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The receiving direction's zlib context.

    ``max_block_size`` bounds the decompressed size of one header block (zlib-bomb guard).
    """

    def __init__(self, max_block_size: int = DEFAULT_MAX_HEADER_BLOCK_SIZE) -> None:
        self._z = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
        self.max_block_size = max_block_size

    def decompress(self, data: bytes, *, stream_id: int | None = None) -> Headers:
        """Decompress and parse one header block."""
        try:
            raw = self._z.decompress(data, self.max_block_size + 1)
        except zlib.error as exc:
            raise CompressionError(f"bad header compression: {exc}", stream_id=stream_id) from exc
        if self._z.eof:
            raise CompressionError("peer ended its compression stream", stream_id=stream_id)
        if len(raw) > self.max_block_size or self._z.unconsumed_tail:
            # keep the context in sync, then report the oversized block
            self.discard(self._z.unconsumed_tail, stream_id=stream_id)
            raise FrameTooLarge(
                f"header block exceeds {self.max_block_size} bytes",
                stream_id=stream_id,
                length=len(raw),
                limit=self.max_block_size,
            )
        return decode_header_block(raw, stream_id=stream_id)

    def discard(self, data: bytes, *, stream_id: int | None = None) -> None:
        """Run ``data`` through the context without keeping the output (bounded memory)."""
        try:
            pending = data
            while pending:
                self._z.decompress(pending, 64 * 1024)
                pending = self._z.unconsumed_tail
        except zlib.error as exc:
            raise CompressionError(f"bad header compression: {exc}", stream_id=stream_id) from exc


# --------------------------------------------------------------------------------------- writer
def _control_header(frame_type: int, flags: int, length: int) -> bytes:
    if length > MAX_FRAME_LENGTH:
        raise ValueError(f"control frame payload of {length} bytes exceeds the 24-bit length")
    return _U32x2.pack(0x80000000 | (SPDY_VERSION << 16) | frame_type, (flags << 24) | length)


def _check_stream_id(stream_id: int, *, allow_zero: bool = False) -> None:
    if not (0 if allow_zero else 1) <= stream_id <= MAX_STREAM_ID:
        raise ValueError(f"invalid stream id {stream_id}")


class FrameWriter:
    """Serializes frames; owns the connection's sending compression context.

    Frames carrying header blocks must be put on the wire in the order they were encoded.
    """

    def __init__(self, compressor: HeaderCompressor | None = None) -> None:
        self._compressor = compressor or HeaderCompressor()

    def encode(self, frame: Frame) -> bytes:
        """Return the wire bytes of ``frame``."""
        match frame:
            case DataFrame(stream_id=sid, data=data, flags=flags):
                _check_stream_id(sid)
                if len(data) > MAX_FRAME_LENGTH:
                    raise ValueError(f"data frame payload of {len(data)} bytes is too long")
                return _U32x2.pack(sid, (flags << 24) | len(data)) + data
            case SynStreamFrame():
                _check_stream_id(frame.stream_id)
                _check_stream_id(frame.associated_to, allow_zero=True)
                block = self._compressor.compress(frame.headers)
                prefix = _SYN_STREAM_PREFIX.pack(
                    frame.stream_id, frame.associated_to, (frame.priority & 0x7) << 5, frame.slot
                )
                return (
                    _control_header(FrameType.SYN_STREAM, frame.flags, len(prefix) + len(block))
                    + prefix
                    + block
                )
            case SynReplyFrame(stream_id=sid, headers=headers, flags=flags):
                _check_stream_id(sid)
                block = self._compressor.compress(headers)
                return (
                    _control_header(FrameType.SYN_REPLY, flags, 4 + len(block))
                    + _U32.pack(sid)
                    + block
                )
            case HeadersFrame(stream_id=sid, headers=headers, flags=flags):
                _check_stream_id(sid)
                block = self._compressor.compress(headers)
                return (
                    _control_header(FrameType.HEADERS, flags, 4 + len(block))
                    + _U32.pack(sid)
                    + block
                )
            case RstStreamFrame(stream_id=sid, status=status):
                _check_stream_id(sid)
                return _control_header(FrameType.RST_STREAM, 0, 8) + _U32x2.pack(sid, status)
            case SettingsFrame(settings=settings, flags=flags):
                body = [_U32.pack(len(settings))]
                for entry in settings:
                    if not 0 <= entry.id <= 0xFFFFFF:
                        raise ValueError(f"invalid setting id {entry.id}")
                    body.append(_U32x2.pack((entry.flags << 24) | entry.id, entry.value))
                payload = b"".join(body)
                return _control_header(FrameType.SETTINGS, flags, len(payload)) + payload
            case PingFrame(ping_id=ping_id):
                return _control_header(FrameType.PING, 0, 4) + _U32.pack(ping_id)
            case GoAwayFrame(last_good_stream_id=last, status=status):
                _check_stream_id(last, allow_zero=True)
                return _control_header(FrameType.GOAWAY, 0, 8) + _U32x2.pack(last, status)
            case WindowUpdateFrame(stream_id=sid, delta=delta):
                _check_stream_id(sid, allow_zero=True)
                if not 1 <= delta <= MAX_WINDOW_SIZE:
                    raise ValueError(f"invalid window delta {delta}")
                return _control_header(FrameType.WINDOW_UPDATE, 0, 8) + _U32x2.pack(sid, delta)
            case UnknownControlFrame():
                return (
                    _U32x2.pack(
                        0x80000000 | (frame.version << 16) | frame.frame_type,
                        (frame.flags << 24) | len(frame.payload),
                    )
                    + frame.payload
                )
        raise TypeError(f"not a SPDY frame: {frame!r}")  # pragma: no cover - exhaustive

    def encode_many(self, frames: Iterable[Frame]) -> bytes:
        """Concatenate the encodings of ``frames`` (in order)."""
        return b"".join(self.encode(f) for f in frames)


# --------------------------------------------------------------------------------------- reader
_HEADER_FRAME_PREFIX: Final[dict[int, int]] = {
    FrameType.SYN_STREAM: 10,
    FrameType.SYN_REPLY: 4,
    FrameType.HEADERS: 4,
}
_FIXED_LENGTHS: Final[dict[int, int]] = {
    FrameType.RST_STREAM: 8,
    FrameType.PING: 4,
    FrameType.GOAWAY: 8,
    FrameType.WINDOW_UPDATE: 8,
}


class FrameReader:
    """Incremental frame parser: :meth:`feed` byte chunks of any size, pull with :meth:`next_frame`.

    Limits: DATA payloads above ``max_data_frame_size`` and control payloads above
    ``max_control_frame_size`` raise :class:`FrameTooLarge` as soon as the frame header (and,
    for header-bearing frames, the stream id) is known; the payload is then skipped and parsing
    resumes with the next frame. Header blocks are limited to ``max_header_block_size`` bytes
    decompressed. After a ``fatal`` error the reader is poisoned and re-raises it.
    """

    def __init__(
        self,
        *,
        max_data_frame_size: int = DEFAULT_MAX_DATA_FRAME_SIZE,
        max_control_frame_size: int = DEFAULT_MAX_CONTROL_FRAME_SIZE,
        max_header_block_size: int = DEFAULT_MAX_HEADER_BLOCK_SIZE,
    ) -> None:
        self.max_data_frame_size = max_data_frame_size
        self.max_control_frame_size = max_control_frame_size
        self._decompressor = HeaderDecompressor(max_header_block_size)
        self._buf = bytearray()
        self._skip = 0  # payload bytes still to drop
        self._skip_decompress = False  # dropped bytes go through the zlib context
        self._failed: SpdyProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into frames."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        self._buf += data

    def feed_all(self, data: bytes) -> list[Frame]:
        """Feed ``data`` and return every complete frame (raises on the first error)."""
        self.feed(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` when more bytes are needed."""
        if self._failed is not None:
            raise self._failed
        try:
            return self._next()
        except SpdyProtocolError as exc:
            if exc.fatal:
                self._failed = exc
            raise

    def _drain_skip(self) -> bool:
        if not self._skip:
            return True
        n = min(self._skip, len(self._buf))
        if n:
            chunk = bytes(self._buf[:n])
            del self._buf[:n]
            self._skip -= n
            if self._skip_decompress:
                self._decompressor.discard(chunk)
        return not self._skip

    def _next(self) -> Frame | None:
        if not self._drain_skip() or len(self._buf) < 8:
            return None
        first, second = _U32x2.unpack_from(self._buf, 0)
        flags = second >> 24
        length = second & 0xFFFFFF
        if not first & 0x80000000:
            stream_id = first & 0x7FFFFFFF
            if length > self.max_data_frame_size:
                del self._buf[:8]
                self._skip, self._skip_decompress = length, False
                raise FrameTooLarge(
                    f"data frame of {length} bytes exceeds {self.max_data_frame_size}",
                    stream_id=stream_id,
                    length=length,
                    limit=self.max_data_frame_size,
                )
            if len(self._buf) < 8 + length:
                return None
            data = bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            if stream_id == 0:
                raise SpdyProtocolError("data frame on stream 0", fatal=True)
            return DataFrame(stream_id, data, flags)

        version = (first >> 16) & 0x7FFF
        frame_type = first & 0xFFFF
        if version != SPDY_VERSION:
            raise SpdyProtocolError(
                f"unsupported SPDY version {version}",
                status=RstStatus.UNSUPPORTED_VERSION,
                fatal=True,
            )
        prefix = _HEADER_FRAME_PREFIX.get(frame_type)
        if length > self.max_control_frame_size:
            if prefix is not None:
                # the stream id is needed to reset it; the rest must still be decompressed
                if length < prefix:
                    raise SpdyProtocolError("truncated control frame", fatal=True)
                if len(self._buf) < 8 + prefix:
                    return None
                (stream_id,) = _U32.unpack_from(self._buf, 8)
                del self._buf[: 8 + prefix]
                self._skip, self._skip_decompress = length - prefix, True
                raise FrameTooLarge(
                    f"control frame of {length} bytes exceeds {self.max_control_frame_size}",
                    stream_id=stream_id & 0x7FFFFFFF,
                    length=length,
                    limit=self.max_control_frame_size,
                )
            del self._buf[:8]
            self._skip, self._skip_decompress = length, False
            raise FrameTooLarge(
                f"control frame of {length} bytes exceeds {self.max_control_frame_size}",
                stream_id=None,
                length=length,
                limit=self.max_control_frame_size,
            )
        if len(self._buf) < 8 + length:
            return None
        payload = bytes(self._buf[8 : 8 + length])
        del self._buf[: 8 + length]
        return self._parse_control(frame_type, flags, payload)

    def _parse_control(self, frame_type: int, flags: int, payload: bytes) -> ControlFrame:
        fixed = _FIXED_LENGTHS.get(frame_type)
        if fixed is not None and len(payload) != fixed:
            raise SpdyProtocolError(
                f"{FrameType(frame_type).name} frame with length {len(payload)}", fatal=True
            )
        prefix = _HEADER_FRAME_PREFIX.get(frame_type)
        if prefix is not None and len(payload) < prefix:
            raise SpdyProtocolError(f"truncated {FrameType(frame_type).name} frame", fatal=True)
        if frame_type == FrameType.SYN_STREAM:
            sid, assoc, pri, slot = _SYN_STREAM_PREFIX.unpack_from(payload, 0)
            sid &= 0x7FFFFFFF
            headers = self._decompressor.decompress(payload[10:], stream_id=sid)
            if sid == 0:
                raise SpdyProtocolError("SYN_STREAM for stream 0", fatal=True)
            return SynStreamFrame(sid, headers, assoc & 0x7FFFFFFF, pri >> 5, slot, flags)
        if frame_type in (FrameType.SYN_REPLY, FrameType.HEADERS):
            (sid,) = _U32.unpack_from(payload, 0)
            sid &= 0x7FFFFFFF
            headers = self._decompressor.decompress(payload[4:], stream_id=sid)
            if sid == 0:
                raise SpdyProtocolError("header frame for stream 0", fatal=True)
            if frame_type == FrameType.SYN_REPLY:
                return SynReplyFrame(sid, headers, flags)
            return HeadersFrame(sid, headers, flags)
        if frame_type == FrameType.RST_STREAM:
            sid, status = _U32x2.unpack(payload)
            sid &= 0x7FFFFFFF
            if sid == 0:
                raise SpdyProtocolError("RST_STREAM for stream 0", fatal=True)
            return RstStreamFrame(sid, status)
        if frame_type == FrameType.SETTINGS:
            if len(payload) < 4:
                raise SpdyProtocolError("truncated SETTINGS frame", fatal=True)
            (count,) = _U32.unpack_from(payload, 0)
            if len(payload) != 4 + 8 * count:
                raise SpdyProtocolError(
                    f"SETTINGS frame announces {count} entries in {len(payload)} bytes",
                    fatal=True,
                )
            entries = []
            for i in range(count):
                flag_id, value = _U32x2.unpack_from(payload, 4 + 8 * i)
                entries.append(Setting(flag_id & 0xFFFFFF, value, flag_id >> 24))
            return SettingsFrame(tuple(entries), flags)
        if frame_type == FrameType.PING:
            (ping_id,) = _U32.unpack(payload)
            return PingFrame(ping_id)
        if frame_type == FrameType.GOAWAY:
            last, status = _U32x2.unpack(payload)
            return GoAwayFrame(last & 0x7FFFFFFF, status)
        if frame_type == FrameType.WINDOW_UPDATE:
            sid, delta = _U32x2.unpack(payload)
            return WindowUpdateFrame(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        return UnknownControlFrame(SPDY_VERSION, frame_type, flags, payload)
