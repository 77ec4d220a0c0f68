"""SPDY/3.1 frame codec: golden frames built by hand from the spec layout, round trips, limits."""

from __future__ import annotations

import itertools
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vkcompose.kubelet.spdy.dictionary import SPDY3_DICTIONARY, SPDY3_DICTIONARY_ID
from vkcompose.kubelet.spdy.frames import (
    CONTROL_FLAG_FIN,
    CONTROL_FLAG_UNIDIRECTIONAL,
    DATA_FLAG_FIN,
    CompressionError,
    DataFrame,
    Frame,
    FrameReader,
    FrameTooLarge,
    FrameWriter,
    GoAwayFrame,
    GoAwayStatus,
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
    decode_header_block,
    encode_header_block,
    first_header,
)


def h(text: str) -> bytes:
    """Hex with spaces/newlines -> bytes."""
    return bytes.fromhex("".join(text.split()))


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def stored_block(raw: bytes) -> bytes:
    """A non-final deflate 'stored' block (RFC 1951 3.2.4): what a sync flush can look like."""
    return b"\x00" + struct.pack("<HH", len(raw), len(raw) ^ 0xFFFF) + raw


#: zlib header (RFC 1950): CMF=0x78, FLG=0xF9 (FLEVEL=3, FDICT=1), then DICTID.
ZLIB_HEADER_WITH_DICT = h("78 f9") + u32(SPDY3_DICTIONARY_ID)


def hand_block(*pairs: tuple[bytes, bytes]) -> bytes:
    """Uncompressed SPDY/3 header block, built field by field from the spec."""
    out = u32(len(pairs))
    for name, value in pairs:
        out += u32(len(name)) + name + u32(len(value)) + value
    return out


# ------------------------------------------------------------------------------- dictionary
def test_dictionary_is_the_spdy3_one() -> None:
    assert len(SPDY3_DICTIONARY) == 1423
    assert zlib.adler32(SPDY3_DICTIONARY) == SPDY3_DICTIONARY_ID == 0xE3C6A7C2
    assert SPDY3_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert SPDY3_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


# ------------------------------------------------------------------- golden: fixed layouts
GOLDEN_FIXED: list[tuple[str, Frame]] = [
    # control bit + version 3, type, flags 0, length, payload
    ("80 03 00 06 00 00 00 04  00 00 00 01", PingFrame(1)),
    ("80 03 00 06 00 00 00 04  ff ff ff fe", PingFrame(0xFFFFFFFE)),
    ("80 03 00 03 00 00 00 08  00 00 00 01  00 00 00 05", RstStreamFrame(1, RstStatus.CANCEL)),
    (
        "80 03 00 03 00 00 00 08  00 00 00 07  00 00 00 0b",
        RstStreamFrame(7, RstStatus.FRAME_TOO_LARGE),
    ),
    ("80 03 00 07 00 00 00 08  00 00 00 07  00 00 00 00", GoAwayFrame(7, GoAwayStatus.OK)),
    ("80 03 00 07 00 00 00 08  00 00 00 00  00 00 00 01", GoAwayFrame(0, 1)),
    ("80 03 00 09 00 00 00 08  00 00 00 03  00 00 80 00", WindowUpdateFrame(3, 0x8000)),
    ("80 03 00 09 00 00 00 08  00 00 00 00  7f ff ff ff", WindowUpdateFrame(0, 0x7FFFFFFF)),
    # SETTINGS: count, then flags(8)|id(24), value(32) per entry
    (
        "80 03 00 04 00 00 00 0c  00 00 00 01  00 00 00 07  00 01 00 00",
        SettingsFrame((Setting(SettingId.INITIAL_WINDOW_SIZE, 65536),)),
    ),
    (
        "80 03 00 04 01 00 00 14  00 00 00 02  01 00 00 04  00 00 00 64  00 00 00 07  00 00 ff ff",
        SettingsFrame(
            (Setting(SettingId.MAX_CONCURRENT_STREAMS, 100, flags=1), Setting(7, 0xFFFF)),
            flags=1,
        ),
    ),
    ("80 03 00 04 00 00 00 04  00 00 00 00", SettingsFrame()),
    # DATA: stream id (control bit 0), flags, length, payload
    ("00 00 00 01 00 00 00 02  68 69", DataFrame(1, b"hi")),
    ("00 00 00 03 01 00 00 00", DataFrame(3, b"", DATA_FLAG_FIN)),
    ("7f ff ff ff 01 00 00 01  00", DataFrame(0x7FFFFFFF, b"\x00", DATA_FLAG_FIN)),
]


@pytest.mark.parametrize(("wire", "frame"), GOLDEN_FIXED)
def test_golden_fixed_frames_decode(wire: str, frame: Frame) -> None:
    assert FrameReader().feed_all(h(wire)) == [frame]


@pytest.mark.parametrize(("wire", "frame"), GOLDEN_FIXED)
def test_golden_fixed_frames_encode(wire: str, frame: Frame) -> None:
    assert FrameWriter().encode(frame) == h(wire)


# -------------------------------------------------------------- golden: header-block frames
def test_header_block_layout_matches_spec() -> None:
    block = encode_header_block({"streamType": "error", "Port": ["80", "81"]})
    assert block == hand_block((b"streamtype", b"error"), (b"port", b"80\x0081"))
    assert decode_header_block(block) == {"streamtype": ("error",), "port": ("80", "81")}


def test_hand_built_syn_stream_with_stored_zlib_blocks() -> None:
    """Two SYN_STREAMs sharing one zlib context, compressed by hand with stored blocks."""
    block1 = hand_block((b"streamtype", b"error"))
    zlib1 = ZLIB_HEADER_WITH_DICT + stored_block(block1)
    syn1 = (
        h("80 03 00 01") + u32(10 + len(zlib1))  # flags 0
        + u32(1) + u32(0) + h("00 00")  # stream 1, assoc 0, priority 0, slot 0
        + zlib1
    )  # fmt: skip
    # the second block continues the same deflate stream: no zlib header this time
    block2 = hand_block((b"streamtype", b"stdout"), (b"requestid", b"0"))
    zlib2 = stored_block(block2)
    syn2 = (
        h("80 03 00 01") + bytes([CONTROL_FLAG_FIN]) + (10 + len(zlib2)).to_bytes(3, "big")
        + u32(3) + u32(1) + bytes([7 << 5]) + h("00")
        + zlib2
    )  # fmt: skip
    frames = FrameReader().feed_all(syn1 + syn2)
    assert frames == [
        SynStreamFrame(1, {"streamtype": ("error",)}),
        SynStreamFrame(
            3,
            {"streamtype": ("stdout",), "requestid": ("0",)},
            associated_to=1,
            priority=7,
            flags=CONTROL_FLAG_FIN,
        ),
    ]
    assert isinstance(frames[1], SynStreamFrame) and frames[1].fin


def test_hand_built_syn_reply_and_headers() -> None:
    empty = hand_block()
    reply = ZLIB_HEADER_WITH_DICT + stored_block(empty)
    more = stored_block(hand_block((b"x-trailer", b"v")))
    wire = (
        h("80 03 00 02 00") + (4 + len(reply)).to_bytes(3, "big") + u32(5) + reply
        + h("80 03 00 08 01") + (4 + len(more)).to_bytes(3, "big") + u32(5) + more
    )  # fmt: skip
    assert FrameReader().feed_all(wire) == [
        SynReplyFrame(5, {}),
        HeadersFrame(5, {"x-trailer": ("v",)}, CONTROL_FLAG_FIN),
    ]


def test_encoded_syn_stream_layout() -> None:
    """Our SYN_STREAM: spec prefix, zlib header with the SPDY dictionary id, sync-flushed."""
    wire = FrameWriter().encode(
        SynStreamFrame(1, {"streamType": ("stdin",)}, priority=2, flags=CONTROL_FLAG_UNIDIRECTIONAL)
    )
    assert wire[:4] == h("80 03 00 01")
    assert wire[4] == CONTROL_FLAG_UNIDIRECTIONAL
    assert int.from_bytes(wire[5:8], "big") == len(wire) - 8
    assert wire[8:16] == u32(1) + u32(0)
    assert wire[16:18] == bytes([2 << 5, 0])
    compressed = wire[18:]
    cmf, flg = compressed[0], compressed[1]
    assert cmf == 0x78 and (cmf << 8 | flg) % 31 == 0 and flg & 0x20  # FDICT
    assert compressed[2:6] == u32(SPDY3_DICTIONARY_ID)
    assert compressed.endswith(h("00 00 ff ff"))  # sync flush marker
    inflater = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
    assert inflater.decompress(compressed) == hand_block((b"streamtype", b"stdin"))


# ------------------------------------------------------------------------------ round trips
stream_ids = st.integers(1, 0x7FFFFFFF)
header_names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: not c.isupper()),
    min_size=1,
    max_size=20,
)
header_values = st.lists(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
    min_size=1,
    max_size=3,
).map(tuple)
headers_st = st.dictionaries(header_names, header_values, max_size=6)

frames_st: st.SearchStrategy[Frame] = st.one_of(
    st.builds(DataFrame, stream_ids, st.binary(max_size=300), st.sampled_from([0, 1])),
    st.builds(
        SynStreamFrame,
        stream_ids,
        headers_st,
        st.integers(0, 0x7FFFFFFF),
        st.integers(0, 7),
        st.integers(0, 255),
        st.sampled_from([0, 1, 2, 3]),
    ),
    st.builds(SynReplyFrame, stream_ids, headers_st, st.sampled_from([0, 1])),
    st.builds(HeadersFrame, stream_ids, headers_st, st.sampled_from([0, 1])),
    st.builds(RstStreamFrame, stream_ids, st.integers(1, 11)),
    st.builds(
        SettingsFrame,
        st.lists(
            st.builds(Setting, st.integers(1, 8), st.integers(0, 2**32 - 1), st.integers(0, 3)),
            max_size=5,
        ).map(tuple),
        st.sampled_from([0, 1]),
    ),
    st.builds(PingFrame, st.integers(0, 2**32 - 1)),
    st.builds(GoAwayFrame, st.integers(0, 0x7FFFFFFF), st.integers(0, 2)),
    st.builds(WindowUpdateFrame, st.integers(0, 0x7FFFFFFF), st.integers(1, 0x7FFFFFFF)),
)


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(frames_st, max_size=12), cuts=st.lists(st.integers(0, 10_000)))
def test_round_trip_any_chunking(frames: list[Frame], cuts: list[int]) -> None:
    """Frames written on one connection parse back identically however the bytes are split."""
    wire = FrameWriter().encode_many(frames)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    reader = FrameReader()
    decoded: list[Frame] = []
    for start, end in itertools.pairwise(points):
        reader.feed(wire[start:end])
        while (frame := reader.next_frame()) is not None:
            decoded.append(frame)
    assert decoded == frames
    assert reader.buffered == 0


@given(headers=headers_st)
def test_header_block_round_trip(headers: dict[str, tuple[str, ...]]) -> None:
    assert decode_header_block(encode_header_block(headers)) == headers


def test_first_header_is_case_insensitive() -> None:
    headers = {"streamtype": ("data", "x"), "port": ("80",)}
    assert first_header(headers, "streamType") == "data"
    assert first_header(headers, "requestID") is None


# ------------------------------------------------------------------------- limits / errors
def test_oversized_data_frame_is_skipped_and_reported() -> None:
    reader = FrameReader(max_data_frame_size=16)
    wire = FrameWriter().encode_many([DataFrame(5, b"x" * 17), DataFrame(7, b"ok"), PingFrame(2)])
    reader.feed(wire[:8])  # the header alone is enough to know
    with pytest.raises(FrameTooLarge) as info:
        reader.next_frame()
    assert info.value.stream_id == 5 and info.value.status == RstStatus.FRAME_TOO_LARGE
    assert not info.value.fatal and info.value.length == 17
    reader.feed(wire[8:])
    assert [reader.next_frame(), reader.next_frame(), reader.next_frame()] == [
        DataFrame(7, b"ok"),
        PingFrame(2),
        None,
    ]


def test_oversized_header_frame_keeps_compression_in_sync() -> None:
    writer = FrameWriter()
    big = writer.encode(SynStreamFrame(1, {"blob": ("y" * 5000 + "z" * 5000,)}))
    after = writer.encode(SynStreamFrame(3, {"streamtype": ("error",)}))
    reader = FrameReader(max_control_frame_size=64)
    reader.feed(big + after)
    with pytest.raises(FrameTooLarge) as info:
        reader.next_frame()
    assert info.value.stream_id == 1 and not info.value.fatal
    assert reader.next_frame() == SynStreamFrame(3, {"streamtype": ("error",)})


def test_decompression_bomb_is_bounded() -> None:
    writer = FrameWriter()
    bomb = writer.encode(SynStreamFrame(1, {"a": ("a" * 200_000,)}))
    assert len(bomb) < 2000  # compresses very well
    after = writer.encode(SynReplyFrame(3, {"ok": ("1",)}))
    reader = FrameReader(max_header_block_size=1024)
    reader.feed(bomb + after)
    with pytest.raises(FrameTooLarge) as info:
        reader.next_frame()
    assert info.value.stream_id == 1
    assert reader.next_frame() == SynReplyFrame(3, {"ok": ("1",)})


def test_corrupt_compression_is_fatal() -> None:
    garbage = h("78 f9") + u32(SPDY3_DICTIONARY_ID) + h("ff ff ff ff ff ff")
    wire = h("80 03 00 02 00") + (4 + len(garbage)).to_bytes(3, "big") + u32(1) + garbage
    reader = FrameReader()
    reader.feed(wire + FrameWriter().encode(PingFrame(1)))
    with pytest.raises(CompressionError) as info:
        reader.next_frame()
    assert info.value.fatal and info.value.stream_id == 1
    with pytest.raises(CompressionError):  # poisoned: the context is gone
        reader.next_frame()


def test_wrong_dictionary_is_a_compression_error() -> None:
    compressor = zlib.compressobj(zdict=b"not the spdy dictionary")
    block = compressor.compress(hand_block((b"a", b"b"))) + compressor.flush(zlib.Z_SYNC_FLUSH)
    wire = h("80 03 00 08 00") + (4 + len(block)).to_bytes(3, "big") + u32(1) + block
    with pytest.raises(CompressionError):
        FrameReader().feed_all(wire)


def test_duplicate_header_is_a_stream_error_and_context_survives() -> None:
    dup = hand_block((b"a", b"1"), (b"a", b"2"))
    z = zlib.compressobj(zdict=SPDY3_DICTIONARY)
    blocks = [z.compress(b) + z.flush(zlib.Z_SYNC_FLUSH) for b in (dup, hand_block((b"b", b"3")))]
    wire = b"".join(
        h("80 03 00 02 00") + (4 + len(b)).to_bytes(3, "big") + u32(sid) + b
        for sid, b in zip((1, 3), blocks, strict=True)
    )
    reader = FrameReader()
    reader.feed(wire)
    with pytest.raises(SpdyProtocolError) as info:
        reader.next_frame()
    assert info.value.stream_id == 1 and not info.value.fatal
    assert reader.next_frame() == SynReplyFrame(3, {"b": ("3",)})


@pytest.mark.parametrize(
    "wire",
    [
        "80 03 00 06 00 00 00 05  00 00 00 01 00",  # PING must be 4 bytes
        "80 03 00 07 00 00 00 04  00 00 00 01",  # GOAWAY must be 8 bytes
        "80 03 00 09 00 00 00 04  00 00 00 01",  # WINDOW_UPDATE must be 8 bytes
        "80 03 00 03 00 00 00 08  00 00 00 00 00 00 00 01",  # RST_STREAM for stream 0
        "80 02 00 06 00 00 00 04  00 00 00 01",  # SPDY/2
        "00 00 00 00 00 00 00 01  ff",  # DATA on stream 0
        "80 03 00 04 00 00 00 08  00 00 00 02 00 00 00 07",  # SETTINGS count mismatch
        "80 03 00 02 00 00 00 02  00 00",  # truncated SYN_REPLY
    ],
)
def test_malformed_frames_are_fatal(wire: str) -> None:
    with pytest.raises(SpdyProtocolError) as info:
        FrameReader().feed_all(h(wire))
    assert info.value.fatal


def test_unknown_control_frames_are_surfaced_not_fatal() -> None:
    wire = h("80 03 00 0a 00 00 00 03  01 02 03") + FrameWriter().encode(PingFrame(1))
    assert FrameReader().feed_all(wire) == [
        UnknownControlFrame(3, 10, 0, h("01 02 03")),
        PingFrame(1),
    ]


def test_oversized_settings_frame_is_skipped() -> None:
    big = SettingsFrame(tuple(Setting(1, i) for i in range(20)))
    writer = FrameWriter()
    reader = FrameReader(max_control_frame_size=32)
    reader.feed(writer.encode(big) + writer.encode(PingFrame(3)))
    with pytest.raises(FrameTooLarge) as info:
        reader.next_frame()
    assert info.value.stream_id is None
    assert reader.next_frame() == PingFrame(3)


@pytest.mark.parametrize(
    "frame",
    [
        DataFrame(0, b"x"),
        SynStreamFrame(0),
        WindowUpdateFrame(1, 0),
        RstStreamFrame(0x80000000, 1),
    ],
)
def test_writer_rejects_invalid_frames(frame: Frame) -> None:
    with pytest.raises(ValueError):
        FrameWriter().encode(frame)


def test_writer_rejects_bad_header_names() -> None:
    with pytest.raises(ValueError):
        encode_header_block({"": "x"})
    with pytest.raises(ValueError):
        encode_header_block({"a\x00b": "x"})


# ------------------------------------------------------------ golden: Go (kubectl) frames
#: Bytes kubectl v1.37 (moby/spdystream + its Go framer, zlib BestCompression) sent for
#: ``kubectl exec demo -- echo hi`` after the upgrade: three SYN_STREAMs sharing one
#: compression context, then RST_STREAM(CANCEL) for each and GOAWAY when done.
GO_KUBECTL_EXEC = h(
    """
    80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800
    000000ffff800300010000001900000003000000000000c22ac5565c92925f5a02000000ffff800300010000
    001500000005000000000000c229975a5404000000ffff800300030000000800000001000000058003000300
    0000080000000300000005800300030000000800000005000000058003000700000008000000000000000000
    """
)


def test_golden_frames_from_kubectl() -> None:
    assert FrameReader().feed_all(GO_KUBECTL_EXEC) == [
        SynStreamFrame(1, {"streamtype": ("error",)}),
        SynStreamFrame(3, {"streamtype": ("stdout",)}),
        SynStreamFrame(5, {"streamtype": ("stderr",)}),
        RstStreamFrame(1, RstStatus.CANCEL),
        RstStreamFrame(3, RstStatus.CANCEL),
        RstStreamFrame(5, RstStatus.CANCEL),
        GoAwayFrame(0, GoAwayStatus.OK),
    ]


def test_golden_kubectl_bytes_split_everywhere() -> None:
    for cut in range(1, len(GO_KUBECTL_EXEC)):
        reader = FrameReader()
        frames = reader.feed_all(GO_KUBECTL_EXEC[:cut]) + reader.feed_all(GO_KUBECTL_EXEC[cut:])
        assert len(frames) == 7
