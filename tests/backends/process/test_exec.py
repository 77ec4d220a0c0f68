"""Exec, attach, port-forward and stats against running containers."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.stapled import StapledObjectStream
from processkit import make_pod, phase_is, sh, wait_for

from vkcompose.backends.process import ProcessBackend
from vkcompose.errors import InvalidInput, NotFound
from vkcompose.ops import ExecIO, NodeInfo

pytestmark = pytest.mark.anyio


class Sink(anyio.abc.ByteSendStream):
    """Collects what is sent to it."""

    def __init__(self) -> None:
        self.data = b""

    async def send(self, item: bytes) -> None:
        self.data += item

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class Source(anyio.abc.ByteReceiveStream):
    """Yields the given chunks, then end of stream."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.chunks:
            raise anyio.EndOfStream
        return self.chunks.pop(0)

    async def aclose(self) -> None:
        pass


async def running(backend: ProcessBackend, name: str, **extra: Any) -> None:
    await backend.create_pod(make_pod(name, sh("main", "sleep 300", **extra)))
    await wait_for(backend, name, phase_is("Running"))


async def test_exec_returns_exit_code_and_output(any_backend: ProcessBackend) -> None:
    await running(any_backend, "ex", env=[{"name": "WHO", "value": "container"}])
    out, err = Sink(), Sink()
    code = await any_backend.exec(
        "default",
        "ex",
        "main",
        ["sh", "-c", "echo $WHO; echo oops >&2; exit 3"],
        ExecIO(stdout=out, stderr=err),
    )
    assert code == 3
    assert out.data == b"container\n"
    assert err.data == b"oops\n"


async def test_exec_with_stdin(backend: ProcessBackend) -> None:
    await running(backend, "stdin")
    out = Sink()
    code = await backend.exec(
        "default", "stdin", "main", ["cat"], ExecIO(stdin=Source(b"abc", b"def"), stdout=out)
    )
    assert code == 0
    assert out.data == b"abcdef"


async def test_exec_sees_the_container_view(backend: ProcessBackend) -> None:
    if backend.isolation != "namespaces":
        pytest.fail("needs namespace isolation")
    await running(backend, "view")
    out = Sink()
    code = await backend.exec(
        "default",
        "view",
        "main",
        ["sh", "-c", "hostname; ps -e | grep -c sleep"],
        ExecIO(stdout=out),
    )
    assert code == 0
    assert out.data.split() == [b"view", b"1"]


async def test_exec_with_tty(backend: ProcessBackend) -> None:
    await running(backend, "tty")
    out = Sink()
    code = await backend.exec(
        "default",
        "tty",
        "main",
        ["sh", "-c", "test -t 0 && echo tty"],
        ExecIO(stdout=out, tty=True),
    )
    assert code == 0
    assert b"tty" in out.data


async def test_exec_errors(backend: ProcessBackend) -> None:
    await backend.create_pod(make_pod("done", sh("main", "exit 0")))
    await wait_for(backend, "done", phase_is("Succeeded"))
    with pytest.raises(InvalidInput):
        await backend.exec("default", "done", "main", ["true"], ExecIO())
    with pytest.raises(NotFound):
        await backend.exec("default", "missing", "main", ["true"], ExecIO())
    with pytest.raises(NotFound):
        await backend.exec("default", "done", "nope", ["true"], ExecIO())


async def test_attach_relays_output_and_stdin(backend: ProcessBackend) -> None:
    c = sh("main", "read line; echo got:$line; sleep 0.2", stdin=True)
    await backend.create_pod(make_pod("attach", c))
    await wait_for(backend, "attach", phase_is("Running"))
    out = Sink()
    with anyio.fail_after(10):
        code = await backend.attach(
            "default", "attach", "main", ExecIO(stdin=Source(b"hello\n"), stdout=out)
        )
    assert code == 0
    assert out.data == b"got:hello\n"


async def test_port_forward(backend: ProcessBackend, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('127.0.0.1', {port})); s.listen()\n"
        "c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()\n"
    )
    c = {"name": "main", "command": ["python3", "-c", server]}
    await backend.create_pod(make_pod("pf", c))
    await wait_for(backend, "pf", phase_is("Running"))
    with anyio.fail_after(10):
        while True:
            c2p_send, c2p_recv = anyio.create_memory_object_stream[bytes](10)
            p2c_send, p2c_recv = anyio.create_memory_object_stream[bytes](10)
            await c2p_send.send(b"ping")
            await c2p_send.aclose()
            stream = StapledObjectStream(p2c_send, c2p_recv)
            try:
                await backend.port_forward("default", "pf", port, stream)  # type: ignore[arg-type]
                break
            except NotFound:  # the server is not listening yet
                await anyio.sleep(0.05)
        assert await p2c_recv.receive() == b"PING"


async def test_stats_report_running_containers(backend: ProcessBackend) -> None:
    busy = {
        "name": "main",
        "command": ["python3", "-c", "x = bytearray(20_000_000)\nwhile True: pass"],
    }
    await backend.create_pod(make_pod("stats", busy))
    await wait_for(backend, "stats", phase_is("Running"))
    await anyio.sleep(0.3)
    await backend.get_stats(NodeInfo(name="vk"))
    await anyio.sleep(0.3)
    summary = await backend.get_stats(NodeInfo(name="vk"))
    assert summary["node"]["nodeName"] == "vk"
    (pod,) = summary["pods"]
    assert pod["podRef"]["name"] == "stats"
    (c,) = pod["containers"]
    assert c["name"] == "main"
    assert c["memory"]["workingSetBytes"] > 20_000_000
    assert c["cpu"]["usageCoreNanoSeconds"] > 0
    assert c["cpu"]["usageNanoCores"] > 100_000_000  # a busy loop uses well over 0.1 core
