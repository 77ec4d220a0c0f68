"""The container's view: volumes at mountPath/subPath/readOnly, private /tmp, hostname,
and the host's own directories left untouched."""

from __future__ import annotations

import os
from pathlib import Path

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

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend(backend: ProcessBackend) -> ProcessBackend:
    """These tests need namespace isolation (root)."""
    if backend.isolation != "namespaces":
        pytest.fail("namespace isolation unavailable: the sandbox tests need root")
    return backend


async def test_volumes_at_mount_path_without_touching_host(
    backend: ProcessBackend, tmp_path: Path
) -> None:
    config = config_dir(tmp_path)
    mount_path = "/etc/vkcompose-test-config"
    script = (
        f"cat {mount_path}/app.conf > /shared/seen; "
        "cat /etc/only-item >> /shared/seen; "
        f"touch {mount_path}/x 2>/dev/null && echo writable >> /shared/seen || "
        "echo readonly >> /shared/seen; "
        "hostname >> /shared/seen; "
        "ls /tmp | wc -l >> /shared/seen; touch /tmp/private-file"
    )
    main = sh("main", script)
    main["volumeMounts"] = [
        {"name": "config", "mountPath": mount_path, "readOnly": True},
        {"name": "config", "mountPath": "/etc/only-item", "subPath": "nested/item"},
    ]
    pod = make_pod("volumes", main)
    share_dir(pod, backend, tmp_path)
    await backend.create_pod(pod, volume_paths={"config": str(config)})
    status = await wait_for(backend, "volumes", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded", status
    lines = (tmp_path / "seen").read_text().split()
    assert lines == ["answer=42", "deep", "readonly", "volumes", "0"]
    assert not exists(mount_path)
    assert not exists("/etc/only-item")
    assert not exists("/tmp/private-file")
    assert listdir(config) == ["app.conf", "nested"]


async def test_sub_path_traversal_is_rejected(backend: ProcessBackend, tmp_path: Path) -> None:
    main = sh("main", "exit 0")
    main["volumeMounts"] = [{"name": "v", "mountPath": "/data", "subPath": "../../etc"}]
    await backend.create_pod(make_pod("traversal", main), volume_paths={"v": str(tmp_path)})
    status = await wait_for(
        backend, "traversal", lambda s: "waiting" in container(s, "main")["state"]
    )
    status = await wait_for(
        backend,
        "traversal",
        lambda s: (
            container(s, "main")["state"]["waiting"].get("reason") == "CreateContainerConfigError"
        ),
    )
    assert "subPath" in container(status, "main")["state"]["waiting"]["message"]


async def test_sub_path_symlink_escape_is_rejected(backend: ProcessBackend, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "link").symlink_to("/etc")
    main = sh("main", "exit 0")
    main["volumeMounts"] = [{"name": "v", "mountPath": "/data", "subPath": "link"}]
    await backend.create_pod(make_pod("symlink", main), volume_paths={"v": str(vol)})
    await wait_for(
        backend,
        "symlink",
        lambda s: (
            (container(s, "main")["state"].get("waiting") or {}).get("reason")
            == "CreateContainerConfigError"
        ),
    )


async def test_empty_dir_is_shared_between_containers(backend: ProcessBackend) -> None:
    writer = sh("writer", "echo shared > /cache/file")
    writer["volumeMounts"] = [{"name": "cache", "mountPath": "/cache"}]
    reader = sh("reader", 'test "$(cat /cache/file)" = shared')
    reader["volumeMounts"] = [{"name": "cache", "mountPath": "/cache"}]
    pod = make_pod("emptydir", reader, init=[writer], volumes=[{"name": "cache", "emptyDir": {}}])
    await backend.create_pod(pod)
    status = await wait_for(backend, "emptydir", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded"


async def test_container_writes_stay_in_its_own_layer(backend: ProcessBackend) -> None:
    path = "/opt/vkcompose-layer-test"
    await backend.create_pod(make_pod("layer", sh("main", f"mkdir -p {path} && touch {path}/f")))
    status = await wait_for(backend, "layer", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded"
    assert not exists(path)


async def test_pod_directories_are_private(backend: ProcessBackend, state_dir: Path) -> None:
    await backend.create_pod(make_pod("private", sh("main", "exit 0")))
    await wait_for(backend, "private", phase_is("Succeeded"))
    pod_dirs = listdir(state_dir)
    assert pod_dirs
    for d in pod_dirs:
        assert os.stat(state_dir / d).st_mode & 0o777 == 0o700


async def test_run_as_user(backend: ProcessBackend, tmp_path: Path) -> None:
    main = sh("main", "id -u > /shared/uid; id -g >> /shared/uid")
    main["securityContext"] = {"runAsUser": 4242, "runAsGroup": 4343}
    pod = make_pod("runas", main)
    share_dir(pod, backend, tmp_path)
    os.chmod(tmp_path, 0o777)
    await backend.create_pod(pod)
    status = await wait_for(backend, "runas", phase_is("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded"
    assert (tmp_path / "uid").read_text().split() == ["4242", "4343"]
