"""Termination: SIGTERM, grace period, SIGKILL, preStop — and no process left behind."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from processkit import container, eventually, make_pod, phase_is, sh, share_dir, wait_for

from vkcompose.backends.process import ProcessBackend
from vkcompose.errors import NotFound
from vkcompose.ops import LogOptions

pytestmark = pytest.mark.anyio


def pids_mentioning(marker: str) -> list[int]:
    """PIDs (read from /proc) whose command line contains ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


async def read_log(backend: ProcessBackend, name: str, container_name: str) -> bytes:
    stream = backend.read_logs("default", name, container_name, LogOptions())
    if inspect.isawaitable(stream):
        stream = await stream
    return b"".join([chunk async for chunk in stream])


async def test_graceful_termination(any_backend: ProcessBackend) -> None:
    script = "trap 'exit 0' TERM; while true; do sleep 0.05; done"
    pod = make_pod("graceful", sh("main", script), restart_policy="Always")
    await any_backend.create_pod(pod)
    await wait_for(any_backend, "graceful", phase_is("Running"))
    await anyio.sleep(0.1)  # let the shell install its trap
    with anyio.fail_after(10):
        await any_backend.delete_pod(pod, 5)
    with pytest.raises(NotFound):
        await any_backend.get_pod_status("default", "graceful")


async def test_forced_termination_of_process_ignoring_sigterm(any_backend: ProcessBackend) -> None:
    marker = "ignore-term-7b1"
    script = f"trap '' TERM; echo trap-set; while true; do sleep 0.05; done # {marker}"
    pod = make_pod("stubborn", sh("main", script), terminationGracePeriodSeconds=1)
    finals: list[dict[str, Any]] = []
    any_backend.notify_pods(lambda p: finals.append(p["status"]))
    await any_backend.create_pod(pod)
    await wait_for(any_backend, "stubborn", phase_is("Running"))
    with anyio.fail_after(10):  # SIGTERM must come after the shell ignores it
        while b"trap-set" not in await read_log(any_backend, "stubborn", "main"):  # noqa: ASYNC110
            await anyio.sleep(0.02)
    assert pids_mentioning(marker)
    with anyio.fail_after(10):
        await any_backend.delete_pod(pod, None)  # the pod's own grace period: 1 s
    assert pids_mentioning(marker) == []
    term = container(finals[-1], "main")["state"]["terminated"]
    assert term["exitCode"] == 137
    assert finals[-1]["phase"] == "Failed"


async def test_no_orphans_after_delete(any_backend: ProcessBackend) -> None:
    marker = "orphan-check-5d2"
    # a grandchild in a new session that ignores SIGTERM, plus a plain background child
    script = (
        f"setsid sh -c 'trap \"\" TERM; sleep 300 # {marker}' & sh -c 'sleep 300 # {marker}' & wait"
    )
    pod = make_pod("orphans", sh("main", script))
    await any_backend.create_pod(pod)
    await wait_for(any_backend, "orphans", phase_is("Running"))
    await eventually(lambda: len(pids_mentioning(marker)) >= 2)
    with anyio.fail_after(10):
        await any_backend.delete_pod(pod, 0)
    assert pids_mentioning(marker) == []


async def test_no_orphans_after_main_exits(any_backend: ProcessBackend) -> None:
    marker = "left-behind-9c4"
    script = f"setsid sh -c 'sleep 300 # {marker}' & sleep 0.2; exit 0"
    await any_backend.create_pod(make_pod("exits", sh("main", script)))
    await wait_for(any_backend, "exits", phase_is("Succeeded"))
    await eventually(lambda: not pids_mentioning(marker))


async def test_pre_stop_hook_runs_before_sigterm(backend: ProcessBackend, tmp_path: Path) -> None:
    pod = make_pod("prestop", sh("main", "sleep 300"))
    shared = share_dir(pod, backend, tmp_path)
    pod["spec"]["containers"][0]["lifecycle"] = {
        "preStop": {"exec": {"command": ["sh", "-c", f"echo bye > {shared}/prestop"]}}
    }
    await backend.create_pod(pod)
    await wait_for(backend, "prestop", phase_is("Running"))
    with anyio.fail_after(10):
        await backend.delete_pod(pod, 5)
    assert (tmp_path / "prestop").read_text().strip() == "bye"


async def test_delete_is_idempotent(backend: ProcessBackend) -> None:
    pod = make_pod("twice", sh("main", "sleep 300"))
    await backend.create_pod(pod)
    await wait_for(backend, "twice", phase_is("Running"))
    await backend.delete_pod(pod, 0)
    with pytest.raises(NotFound):
        await backend.delete_pod(pod, 0)


async def test_concurrent_deletes(backend: ProcessBackend) -> None:
    pod = make_pod("concurrent", sh("main", "sleep 300"))
    await backend.create_pod(pod)
    await wait_for(backend, "concurrent", phase_is("Running"))
    results: list[str] = []

    async def delete() -> None:
        try:
            await backend.delete_pod(pod, 0)
            results.append("ok")
        except NotFound:
            results.append("notfound")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(delete)
            tg.start_soon(delete)
    assert "ok" in results
