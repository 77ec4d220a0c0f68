"""Restart safety: a new backend on the same state directory re-adopts running processes,
reports the ones that ended while it was away, and never starts a pod twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from processkit import container, make_pod, phase_is, sh, share_dir, wait_for

from vkcompose.backends.process import ProcessBackend
from vkcompose.backends.process.state import same_process

pytestmark = pytest.mark.anyio


async def test_new_backend_readopts_running_pod(
    make_backend: Callable[..., ProcessBackend], tmp_path: Path
) -> None:
    first = make_backend()
    pod = make_pod("survivor", sh("main", "echo started >> /shared/starts; sleep 300"))
    share_dir(pod, first, tmp_path)
    await first.create_pod(pod)
    status = await wait_for(first, "survivor", phase_is("Running"))
    inst = first._pods[("default", "survivor")].instances["main"]
    shim_pid, ticks = inst.shim_pid, inst.shim_ticks
    await first.aclose()  # vkcompose stops; the pod keeps running
    assert same_process(shim_pid, ticks)

    second = make_backend()
    again = await second.get_pod_status("default", "survivor")
    assert again["status"]["phase"] == "Running"
    assert container(again["status"], "main")["state"] == container(status, "main")["state"]
    await second.create_pod(pod)  # same uid: no duplicate start
    await anyio.sleep(0.2)
    assert (tmp_path / "starts").read_text().split() == ["started"]
    adopted = second._pods[("default", "survivor")].instances["main"]
    assert adopted.shim_pid == shim_pid

    with anyio.fail_after(10):
        await second.delete_pod(pod, 0)
    assert not same_process(shim_pid, ticks)


async def test_exit_while_away_is_reported_with_its_exit_code(
    make_backend: Callable[..., ProcessBackend], tmp_path: Path
) -> None:
    first = make_backend()
    pod = make_pod("leaver", sh("main", "while [ ! -e /shared/go ]; do sleep 0.02; done; exit 9"))
    share_dir(pod, first, tmp_path)
    await first.create_pod(pod)
    await wait_for(first, "leaver", phase_is("Running"))
    inst = first._pods[("default", "leaver")].instances["main"]
    await first.aclose()
    (tmp_path / "go").touch()
    with anyio.fail_after(5):
        while same_process(inst.shim_pid, inst.shim_ticks):
            inst._reap()
            await anyio.sleep(0.02)

    second = make_backend()
    status = await wait_for(second, "leaver", phase_is("Failed"))
    assert container(status, "main")["state"]["terminated"]["exitCode"] == 9


async def test_restart_policy_continues_after_readoption(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    first = make_backend()
    pod = make_pod("crashy", sh("main", "sleep 0.3; exit 1"), restart_policy="Always")
    await first.create_pod(pod)
    await wait_for(first, "crashy", phase_is("Running"))
    await first.aclose()
    second = make_backend()
    status = await wait_for(
        second, "crashy", lambda s: container(s, "main")["restartCount"] >= 2, seconds=15
    )
    assert container(status, "main")["lastState"]["terminated"]["exitCode"] == 1


async def test_recycled_pid_is_not_adopted(
    make_backend: Callable[..., ProcessBackend], state_dir: Path
) -> None:
    import json

    first = make_backend()
    pod = make_pod("recycled", sh("main", "sleep 300"))
    await first.create_pod(pod)
    await wait_for(first, "recycled", phase_is("Running"))
    sup = first._pods[("default", "recycled")]
    await first.aclose()
    # forge the record: same PID, another start time (as if the PID had been reused)
    state_file = Path(sup.rec.dir) / "state.json"
    data = json.loads(state_file.read_text())
    data["containers"]["main"]["shim_start_ticks"] += 1
    state_file.write_text(json.dumps(data))
    started = Path(sup.rec.container_dir("main")) / "0.started.json"
    started_data = json.loads(started.read_text())
    started_data["shimStartTicks"] += 1
    started.write_text(json.dumps(started_data))
    second = make_backend()
    status = await wait_for(second, "recycled", phase_is("Failed", "Succeeded"))
    assert container(status, "main")["state"]["terminated"]["reason"] == "ContainerStatusUnknown"
