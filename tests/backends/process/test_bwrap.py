"""The ``bwrap`` isolation mode (bubblewrap; what non-root vkcompose uses), forced explicitly:
volumes at their mountPath, private /tmp, hostname = pod name, exec in the view, and the
host's own directories untouched."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from processkit import (
    config_dir,
    container,
    exists,
    listdir,
    make_pod,
    phase_is,
    sh,
    share_dir,
    wait_for,
)

from vkcompose.backends.process import ProcessBackend
from vkcompose.backends.process.sandbox import bwrap_problem
from vkcompose.ops import ExecIO

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(make_backend: Callable[..., ProcessBackend]) -> ProcessBackend:
    """A backend forced to bubblewrap isolation (fails, not skips, when bwrap is unusable)."""
    problem = bwrap_problem()
    assert not problem, problem
    backend = make_backend(isolation="bwrap")
    assert backend.isolation == "bwrap"
    return backend


async def test_volumes_at_mount_path_without_touching_host(
    backend: ProcessBackend, tmp_path: Path
) -> None:
    config = config_dir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    nested_path = "/etc/vkcompose-bwrap-test/config"  # parent missing on the host
    top_path = "/vkcompose-bwrap-data"  # a new top-level directory
    script = (
        f"cat {nested_path}/app.conf > /shared/seen; "
        "cat /etc/vkcompose-bwrap-item >> /shared/seen; "
        f"touch {nested_path}/x 2>/dev/null && echo writable >> /shared/seen || "
        "echo readonly >> /shared/seen; "
        f"echo written > {top_path}/out && echo data-ok >> /shared/seen; "
        "hostname >> /shared/seen; "
        "ls /tmp | wc -l >> /shared/seen; touch /tmp/bwrap-private-file; "
        "touch /usr/vkcompose-bwrap-host-write 2>/dev/null && echo host-writable >> /shared/seen "
        "|| echo host-readonly >> /shared/seen; "
        "test -f /etc/passwd && echo host-visible >> /shared/seen"
    )
    main = sh("main", script)
    main["volumeMounts"] = [
        {"name": "config", "mountPath": nested_path, "readOnly": True},
        {"name": "config", "mountPath": "/etc/vkcompose-bwrap-item", "subPath": "nested/item"},
        {"name": "data", "mountPath": top_path},
    ]
    pod = make_pod("volumes", main)
    share_dir(pod, backend, tmp_path)
    await backend.create_pod(pod, volume_paths={"config": str(config), "data": str(data)})
    status = await wait_for(backend, "volumes", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded", status
    lines = (tmp_path / "seen").read_text().split()
    assert lines == [
        "answer=42",
        "deep",
        "readonly",
        "data-ok",
        "volumes",
        "0",
        "host-readonly",
        "host-visible",
    ]
    assert (data / "out").read_text() == "written\n"
    for path in (
        "/etc/vkcompose-bwrap-test",
        "/etc/vkcompose-bwrap-item",
        top_path,
        "/tmp/bwrap-private-file",
        "/usr/vkcompose-bwrap-host-write",
    ):
        assert not exists(path), path
    assert listdir(config) == ["app.conf", "nested"]


async def test_exec_runs_in_the_view(backend: ProcessBackend, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("from the volume\n")
    main = sh("main", "echo $$ > /tmp/pid; exec sleep 60", workingDir="/work-dir")
    main["volumeMounts"] = [{"name": "data", "mountPath": "/work-dir"}]
    pod = make_pod("exec", main)
    await backend.create_pod(pod, volume_paths={"data": str(data)})
    await wait_for(backend, "exec", lambda s: container(s, "main")["ready"])
    send, receive = anyio.create_memory_object_stream[bytes](100)
    io = ExecIO(stdout=send)
    code = await backend.exec(
        "default", "exec", "main", ["sh", "-c", "cat hello; hostname; pwd; ls /tmp"], io
    )
    send.close()
    out = b"".join([chunk async for chunk in receive])
    assert code == 0
    assert out.decode().split("\n")[:4] == ["from the volume", "exec", "/work-dir", "pid"]
    code = await backend.exec("default", "exec", "main", ["sh", "-c", "exit 3"], ExecIO())
    assert code == 3


async def test_run_as_user_and_termination(backend: ProcessBackend, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("runAsUser needs root")
    main = sh(
        "main",
        "id -u > /shared/uid; trap 'echo term >> /shared/uid; exit 0' TERM; "
        "while :; do sleep 0.05; done",
        securityContext={"runAsUser": 65534, "runAsGroup": 65534},
    )
    pod = make_pod("user", main, terminationGracePeriodSeconds=10)
    os.chmod(tmp_path, 0o777)
    share_dir(pod, backend, tmp_path)
    await backend.create_pod(pod)
    await wait_for(backend, "user", lambda s: container(s, "main")["ready"])
    with anyio.fail_after(10):
        for _ in range(1000):
            if exists(tmp_path / "uid"):
                break
            await anyio.sleep(0.02)
    await backend.delete_pod(pod, 10)
    assert (tmp_path / "uid").read_text().split() == ["65534", "term"]
