"""Container logs in the kubelet's CRI format: parsing, selection and (follow) reading.

Each record is ``<RFC3339Nano> <stdout|stderr> <F|P> <content>``; ``P`` (partial) records
are continued by the next record of the stream. The shim writes them
(:class:`~vkcompose.backends.process.shim.CriLogWriter`); this module serves them with the
kubelet's options (``tailLines``, ``sinceSeconds``/``sinceTime``, ``timestamps``,
``limitBytes``, ``follow``).

>>> rec = parse_record(b"2024-01-02T03:04:05.000000001Z stdout F hello\\n")
>>> rec.stream, rec.partial, rec.content, rec.timestamp_ns % 10
('stdout', False, b'hello', 1)
>>> render(rec, timestamps=True)
b'2024-01-02T03:04:05.000000001Z hello\\n'
"""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import anyio
import attrs

from vkcompose.backends.process.shim import rotated_paths
from vkcompose.ops import LogOptions


@attrs.frozen
class Record:
    """One CRI log record."""

    timestamp: bytes
    timestamp_ns: int
    stream: str
    partial: bool
    content: bytes


def parse_timestamp(ts: bytes) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp (``Z`` or ``±hh:mm`` offsets)."""
    text = ts.decode()
    base, rest = text[:19], text[19:]
    seconds = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    frac = 0
    if rest.startswith("."):
        digits = ""
        i = 1
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        frac = int((digits + "000000000")[:9])
        rest = rest[i:]
    if rest and rest[0] in "+-":
        sign = 1 if rest[0] == "+" else -1
        hours, minutes = int(rest[1:3]), int(rest[4:6])
        seconds -= sign * (hours * 3600 + minutes * 60)
    return seconds * 1_000_000_000 + frac


def parse_record(line: bytes) -> Record | None:
    """Parse one log line (``None`` for a malformed one)."""
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tag = parts[0], parts[1], parts[2]
    content = parts[3] if len(parts) == 4 else b""
    try:
        ns = parse_timestamp(ts)
    except (ValueError, IndexError):
        return None
    return Record(ts, ns, stream.decode(errors="replace"), tag == b"P", content)


def render(record: Record, timestamps: bool, *, continuation: bool = False) -> bytes:
    """The bytes a client sees for ``record``."""
    prefix = record.timestamp + b" " if timestamps and not continuation else b""
    return prefix + record.content + (b"" if record.partial else b"\n")


def parse_lines(data: bytes) -> list[Record]:
    """All well-formed records of ``data``."""
    out = []
    for line in data.splitlines():
        rec = parse_record(line)
        if rec is not None:
            out.append(rec)
    return out


def since_ns(options: LogOptions, now_ns: int) -> int | None:
    """The lower timestamp bound of ``options`` (``sinceSeconds`` or ``sinceTime``)."""
    if options.since_time is not None:
        return int(options.since_time.timestamp() * 1_000_000_000)
    if options.since_seconds is not None:
        return now_ns - options.since_seconds * 1_000_000_000
    return None


def select(records: Sequence[Record], options: LogOptions, now_ns: int) -> list[Record]:
    """Apply ``since`` and ``tailLines`` (which counts complete lines) to ``records``."""
    bound = since_ns(options, now_ns)
    if bound is not None:
        records = [r for r in records if r.timestamp_ns >= bound]
    tail = options.tail_lines
    if tail is None:
        return list(records)
    if tail <= 0:
        return []
    lines = 0
    start = len(records)
    for i in range(len(records) - 1, -1, -1):
        if not records[i].partial:
            if lines == tail:
                break
            lines += 1
        start = i
    return list(records[start:])


def render_all(records: Iterable[Record], timestamps: bool) -> Iterable[bytes]:
    """Render records, prefixing timestamps only at the start of each logical line."""
    open_partial: dict[str, bool] = {}
    for r in records:
        yield render(r, timestamps, continuation=open_partial.get(r.stream, False))
        open_partial[r.stream] = r.partial


def log_files(path: str, max_files: int) -> list[str]:
    """The existing files of the log ``path``, oldest first."""
    return [p for p in [*rotated_paths(path, max_files), path] if os.path.exists(p)]


def _read_files(paths: Sequence[str]) -> tuple[bytes, int, int]:
    """Contents of ``paths``; inode and length read of the last (current) one."""
    chunks = []
    inode = size = 0
    for p in paths:
        try:
            with open(p, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                data = f.read()
        except FileNotFoundError:
            continue
        chunks.append(data)
        size = len(data)
    if not chunks or (paths and not os.path.exists(paths[-1])):
        inode = size = 0
    return b"".join(chunks), inode, size


class _Limiter:
    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def cut(self, data: bytes) -> bytes:
        if self.left is None:
            return data
        data = data[: self.left]
        self.left -= len(data)
        return data

    @property
    def exhausted(self) -> bool:
        return self.left is not None and self.left <= 0


def _read_from(path: str, inode: int, offset: int) -> tuple[bytes, int, int]:
    """New bytes of ``path`` after ``offset``; restarts at 0 when the file was rotated."""
    try:
        st = os.stat(path)
    except OSError:
        return b"", inode, offset
    if st.st_ino != inode or st.st_size < offset:
        inode, offset = st.st_ino, 0
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(1 << 20)
    return data, inode, offset + len(data)


async def read_log(
    path: str,
    max_files: int,
    options: LogOptions,
    finished: Callable[[], bool],
    poll_interval: float = 0.1,
) -> AsyncIterator[bytes]:
    """Serve the log at ``path`` (plus its rotated files) with ``options``.

    With ``follow`` keep polling the current file (across rotations) until ``finished()``
    says the instance has ended and everything written has been sent.
    """
    paths = log_files(path, max_files) or [path]
    data, inode, offset = await anyio.to_thread.run_sync(_read_files, paths)
    records = select(parse_lines(data), options, time.time_ns())
    limiter = _Limiter(options.limit_bytes)
    tail_of_current = b""
    chunk = b"".join(render_all(records, options.timestamps))
    out = limiter.cut(chunk)
    if out:
        yield out
    if not options.follow or limiter.exhausted:
        return
    bound = since_ns(options, time.time_ns())
    while True:
        done = finished()
        new, inode, offset = await anyio.to_thread.run_sync(_read_from, path, inode, offset)
        if new:
            buf = tail_of_current + new
            complete, _, tail_of_current = buf.rpartition(b"\n")
            recs = parse_lines(complete)
            if bound is not None:
                recs = [r for r in recs if r.timestamp_ns >= bound]
            out = limiter.cut(b"".join(render_all(recs, options.timestamps)))
            if out:
                yield out
            if limiter.exhausted:
                return
            continue
        if done:
            return
        await anyio.sleep(poll_interval)


__all__ = [
    "Record",
    "log_files",
    "parse_lines",
    "parse_record",
    "parse_timestamp",
    "read_log",
    "render",
    "render_all",
    "select",
    "since_ns",
]
