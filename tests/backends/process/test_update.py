"""``update_pod`` with a changed image: the kubelet kills and restarts that container."""

from __future__ import annotations

import copy
from collections.abc import Callable

import anyio
import pytest

from tests.backends.process.processkit import container, make_pod, phase_is, wait_for
from vkcompose.backends.process import ImageEntry, ImageMap, ProcessBackend
from vkcompose.ops import LogOptions

IMAGES = ImageMap(
    {
        "app-one": ImageEntry(entrypoint=("sh", "-c"), cmd=("echo one; exec sleep 60",)),
        "app-two": ImageEntry(entrypoint=("sh", "-c"), cmd=("echo two; exec sleep 60",)),
    }
)


async def _log(backend: ProcessBackend, name: str, cname: str, previous: bool = False) -> bytes:
    """The log's content once it has a line (the shim writes it shortly after the start)."""
    options = LogOptions(previous=previous)
    data = b""
    with anyio.fail_after(10):
        for _ in range(1000):
            data = b"".join([c async for c in backend.read_logs("default", name, cname, options)])
            if data.strip():
                break
            await anyio.sleep(0.02)
    return data


@pytest.mark.anyio
@pytest.mark.parametrize("policy", ["Never", "Always"])
async def test_image_change_restarts_only_that_container(
    make_backend: Callable[..., ProcessBackend], policy: str
) -> None:
    backend = make_backend(images=IMAGES)
    pod = make_pod(
        "upd",
        {"name": "app", "image": "app-one"},
        {"name": "other", "image": "app-one"},
        restart_policy=policy,
        terminationGracePeriodSeconds=5,
    )
    await backend.create_pod(pod)
    status = await wait_for(
        backend, "upd", lambda s: phase_is("Running")(s) and container(s, "app")["ready"]
    )
    first_id = container(status, "app")["containerID"]
    other_id = container(status, "other")["containerID"]
    updated = copy.deepcopy(pod)
    updated["spec"]["containers"][0]["image"] = "app-two"
    await backend.update_pod(updated)

    def restarted(s: dict[str, object]) -> bool:
        st = container(s, "app")  # type: ignore[arg-type]
        return st["restartCount"] == 1 and "running" in st["state"]

    status = await wait_for(backend, "upd", restarted, seconds=20)
    app = container(status, "app")
    assert app["image"] == "app-two"
    assert app["containerID"] != first_id
    assert app["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM'd sleep
    assert status["phase"] == "Running"
    other = container(status, "other")
    assert other["restartCount"] == 0 and other["containerID"] == other_id
    assert (await _log(backend, "upd", "app")).rstrip().endswith(b"two")
    assert (await _log(backend, "upd", "app", previous=True)).rstrip().endswith(b"one")


@pytest.mark.anyio
async def test_unchanged_update_does_not_restart(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(images=IMAGES)
    pod = make_pod("same", {"name": "app", "image": "app-one"}, restart_policy="Always")
    await backend.create_pod(pod)
    await wait_for(backend, "same", phase_is("Running"))
    updated = copy.deepcopy(pod)
    updated["spec"]["activeDeadlineSeconds"] = 3600
    await backend.update_pod(updated)
    status = await backend.get_pod_status("default", "same")
    sup = backend._get("default", "same")
    assert not sup.instances["app"].respec.is_set()
    assert container(status["status"], "app")["restartCount"] == 0
