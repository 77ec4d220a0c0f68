"""CRI logs: format, options (tail, since, timestamps, limitBytes, follow), rotation, previous."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from processkit import container, make_pod, phase_is, read_bytes, sh, wait_for

from vkcompose.backends.process import ProcessBackend
from vkcompose.backends.process import logs as crilogs
from vkcompose.backends.process.shim import CriLogWriter, format_timestamp
from vkcompose.errors import InvalidInput
from vkcompose.ops import LogOptions

pytestmark = pytest.mark.anyio

CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) .*$")


async def read(backend: ProcessBackend, name: str, **options: object) -> bytes:
    """The whole log of container ``main`` of pod ``name``."""
    out = b""
    with anyio.fail_after(10):
        async for chunk in backend.read_logs("default", name, "main", LogOptions(**options)):  # type: ignore[arg-type]
            out += chunk
    return out


async def test_log_file_is_cri_format(backend: ProcessBackend) -> None:
    await backend.create_pod(make_pod("fmt", sh("main", "echo out; echo err >&2; printf tail")))
    await wait_for(backend, "fmt", phase_is("Succeeded"))
    path = backend._pods[("default", "fmt")].rec.container_dir("main") + "/0.log"
    lines = read_bytes(path).splitlines()
    assert all(CRI_LINE.match(line) for line in lines), lines
    streams = sorted(line.split(b" ", 3)[1] + b" " + line.split(b" ", 3)[3] for line in lines)
    assert streams == [b"stderr err", b"stdout out", b"stdout tail"]


async def test_log_options(backend: ProcessBackend) -> None:
    await backend.create_pod(
        make_pod("opts", sh("main", "for i in 1 2 3 4 5; do echo line$i; done"))
    )
    await wait_for(backend, "opts", phase_is("Succeeded"))
    assert await read(backend, "opts") == b"line1\nline2\nline3\nline4\nline5\n"
    assert await read(backend, "opts", tail_lines=2) == b"line4\nline5\n"
    assert await read(backend, "opts", tail_lines=0) == b""
    assert await read(backend, "opts", limit_bytes=8) == b"line1\nli"
    stamped = await read(backend, "opts", timestamps=True, tail_lines=1)
    assert re.match(rb"^\d{4}-\d\d-\d\dT[\d:.]+Z line5\n$", stamped)
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await read(backend, "opts", since_time=future) == b""
    assert await read(backend, "opts", since_seconds=3600) == await read(backend, "opts")


async def test_follow_streams_until_container_ends(backend: ProcessBackend) -> None:
    script = "for i in 1 2 3; do echo tick$i; sleep 0.1; done"
    await backend.create_pod(make_pod("follow", sh("main", script)))
    await wait_for(backend, "follow", phase_is("Running", "Succeeded"))
    out = await read(backend, "follow", follow=True)
    assert out == b"tick1\ntick2\ntick3\n"


async def test_previous_instance(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(backoff_base=0.2)
    script = "echo run; exit 1"
    await backend.create_pod(make_pod("prev", sh("main", script), restart_policy="Always"))
    await wait_for(backend, "prev", lambda s: container(s, "main")["restartCount"] >= 1)
    assert await read(backend, "prev", previous=True) == b"run\n"


async def test_previous_during_a_back_off_is_the_instance_that_just_ended(
    make_backend: Callable[..., ProcessBackend], tmp_path: Any
) -> None:
    """In CrashLoopBackOff the next instance has not started: "previous" is the one lastState
    names (the kubelet reads lastState's container), not the one before it."""
    backend = make_backend(backoff_base=30.0, backoff_cap=30.0, isolation="none")  # a host file
    count = tmp_path / "count"
    script = f"n=$(cat {count} 2>/dev/null || echo 0); echo run $n; echo $((n+1)) > {count}; exit 1"
    await backend.create_pod(make_pod("loop", sh("main", script), restart_policy="Always"))

    def backing_off(status: Any) -> bool:
        waiting = container(status, "main")["state"].get("waiting") or {}
        return waiting.get("reason") == "CrashLoopBackOff"

    status = await wait_for(backend, "loop", backing_off)
    assert container(status, "main")["lastState"]["terminated"]["containerID"].endswith("/1")
    assert await read(backend, "loop", previous=True) == b"run 1\n"


async def test_previous_without_restart_is_an_error(backend: ProcessBackend) -> None:
    await backend.create_pod(make_pod("noprev", sh("main", "sleep 300")))
    await wait_for(backend, "noprev", phase_is("Running"))
    with pytest.raises(InvalidInput):
        await read(backend, "noprev", previous=True)


async def test_rotation_by_size(make_backend: Callable[..., ProcessBackend]) -> None:
    backend = make_backend(log_max_bytes=2000, log_max_files=3)
    script = "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done"
    await backend.create_pod(make_pod("rotate", sh("main", script)))
    await wait_for(backend, "rotate", phase_is("Succeeded"))
    cdir = backend._pods[("default", "rotate")].rec.container_dir("main")
    files = crilogs.log_files(cdir + "/0.log", 3)
    assert [f.rsplit("/", 1)[1] for f in files] == ["0.log.2", "0.log.1", "0.log"]
    for f in files:
        assert len(read_bytes(f)) <= 2000
    lines = (await read(backend, "rotate")).split()
    assert lines[-1] == b"line-199"
    assert lines == sorted(lines, key=lambda b: int(b.split(b"-")[1]))  # in order, oldest lost


def test_writer_splits_long_lines_into_partials(tmp_path: object) -> None:
    path = f"{tmp_path}/log"
    writer = CriLogWriter(path, max_bytes=1 << 20, max_files=1)
    writer.write("stdout", b"x" * 20000 + b"\nshort")
    writer.close()
    records = crilogs.parse_lines(read_bytes(path))
    assert [r.partial for r in records] == [True, False, False]
    assert b"".join(crilogs.render_all(records, False)) == b"x" * 20000 + b"\nshort\n"


@given(st.integers(min_value=0, max_value=4_000_000_000 * 10**9))
def test_timestamp_round_trip(ns: int) -> None:
    assert crilogs.parse_timestamp(format_timestamp(ns).encode()) == ns


@given(
    st.lists(st.tuples(st.booleans(), st.binary(max_size=5).filter(lambda b: b"\n" not in b))),
    st.integers(min_value=0, max_value=10),
)
def test_tail_counts_complete_lines(records: list[tuple[bool, bytes]], tail: int) -> None:
    recs = [crilogs.Record(b"t", i, "stdout", p, c) for i, (p, c) in enumerate(records)]
    chosen = crilogs.select(recs, LogOptions(tail_lines=tail), 0)
    assert chosen == recs[len(recs) - len(chosen) :]
    assert sum(not r.partial for r in chosen) <= tail
