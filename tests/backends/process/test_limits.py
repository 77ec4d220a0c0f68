"""Resource limits with real processes: cgroups where the host allows, RLIMIT_AS otherwise.

Whether cgroups are usable is decided by the same real probe the backend uses
(:func:`cgroups.detect` creates a test cgroup with a memory limit); where they are not, the
tests assert the documented fallback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.backends.process.processkit import (
    container,
    exists,
    make_pod,
    phase_is,
    sh,
    wait_for,
)
from vkcompose.backends.process import ProcessBackend, cgroups
from vkcompose.ops import LogOptions

# the interpreter itself, not a venv link: a pod's private /tmp hides paths under /tmp
PYTHON = os.path.realpath(sys.executable)

HOG = "b = []\nwhile True:\n    b.append(bytearray(1 << 20))\n"
MI32 = 32 * 1024 * 1024


def hog_pod(name: str) -> dict[str, object]:
    return make_pod(
        name,
        {
            "name": "hog",
            "command": [PYTHON, "-I", "-S", "-c", HOG],
            "resources": {"limits": {"memory": "32Mi"}},
        },
    )


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _limit_file(cg: cgroups.ContainerCgroup) -> str:
    if cg.version == "v2":
        return os.path.join(cg.dirs[0], "memory.max")
    return os.path.join(os.path.dirname(cg.memory_file), "memory.limit_in_bytes")


@pytest.mark.anyio
async def test_memory_hog_is_oom_killed_or_fails_under_rlimit(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    driver, why = cgroups.detect()
    backend = make_backend()
    await backend.create_pod(hog_pod("hog"))
    status = await wait_for(backend, "hog", phase_is("Failed"), seconds=30)
    term = container(status, "hog")["state"]["terminated"]
    if driver is not None:
        assert backend.limits == f"cgroup {driver.version}"
        assert term["reason"] == "OOMKilled", term
        assert term["exitCode"] == 137
    else:
        # documented fallback: RLIMIT_AS makes allocations fail (MemoryError), no OOM kill
        assert backend.limits == "rlimit", why
        assert term["reason"] == "Error", term
        assert term["exitCode"] == 1


@pytest.mark.anyio
async def test_rlimit_fallback_limits_address_space(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    backend = make_backend(cgroups="none")
    assert backend.limits == "rlimit"
    pod = make_pod(
        "ulimit",
        sh("show", "ulimit -v", resources={"limits": {"memory": "32Mi"}}),
        {
            "name": "hog",
            "command": [PYTHON, "-c", HOG],
            "resources": {"limits": {"memory": "32Mi"}},
        },
    )
    await backend.create_pod(pod)
    status = await wait_for(backend, "ulimit", phase_is("Failed"), seconds=30)
    assert container(status, "show")["state"]["terminated"]["exitCode"] == 0
    hog = container(status, "hog")["state"]["terminated"]
    assert (hog["reason"], hog["exitCode"]) == ("Error", 1)
    lines = [chunk async for chunk in backend.read_logs("default", "ulimit", "show", LogOptions())]
    assert b"".join(lines).split()[-1] == b"32768"  # KiB
    hog_log = b"".join(
        [c async for c in backend.read_logs("default", "ulimit", "hog", LogOptions())]
    )
    assert b"MemoryError" in hog_log


@pytest.mark.anyio
async def test_cgroup_limits_stats_and_removal(
    make_backend: Callable[..., ProcessBackend],
) -> None:
    driver, why = cgroups.detect()
    backend = make_backend()
    script = f"{PYTHON} -I -S -c 'for i in range(3 * 10**6): pass' && echo burnt && sleep 60"
    pod = make_pod(
        "limited",
        sh("main", script, resources={"limits": {"memory": "64Mi", "cpu": "500m"}}),
    )
    await backend.create_pod(pod)
    await wait_for(backend, "limited", phase_is("Running"))
    sup = backend._get("default", "limited")
    cg = sup.cgroup("main")
    if driver is None:
        assert cg is None and backend.limits == "rlimit", why
        await backend.delete_pod(pod, 0)
        return
    assert cg is not None
    assert int(_read(_limit_file(cg))) == 64 * 1024 * 1024
    pod_dir = os.path.dirname(cg.dirs[0])
    assert exists(pod_dir)

    async def burnt() -> bool:
        logs = [c async for c in backend.read_logs("default", "limited", "main", LogOptions())]
        return b"burnt" in b"".join(logs)

    with anyio.fail_after(30):
        for _ in range(1000):
            if await burnt():
                break
            await anyio.sleep(0.05)
    main_pid = sup.instances["main"].target_pid
    assert cg.pids(), "the container's processes are in its cgroup"
    assert all(pid != sup.instances["main"].shim_pid for pid in cg.pids())
    stats = await backend.get_stats(None)
    (pod_stats,) = [p for p in stats["pods"] if p["podRef"]["name"] == "limited"]
    (cstats,) = pod_stats["containers"]
    # the burner already exited: only cgroup accounting still counts its CPU time
    assert cstats["cpu"]["usageCoreNanoSeconds"] > 50_000_000
    assert cstats["memory"]["usageBytes"] > 0
    assert main_pid
    await backend.delete_pod(pod, 0)
    for d in cg.dirs:
        assert not exists(os.path.dirname(d)), "the pod's cgroup is removed"


def test_v2_usage_and_oom_parsing(tmp_path: Path) -> None:
    (tmp_path / "memory.current").write_text("1000\n")
    (tmp_path / "memory.stat").write_text("anon 600\ninactive_file 300\n")
    (tmp_path / "cpu.stat").write_text("usage_usec 42\nuser_usec 40\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    d = str(tmp_path)
    cg = cgroups.ContainerCgroup(
        "v2",
        (d,),
        os.path.join(d, "memory.events"),
        os.path.join(d, "memory.current"),
        os.path.join(d, "memory.stat"),
        os.path.join(d, "cpu.stat"),
    )
    assert cg.usage() == (42_000, 1000, 700)
    assert cg.oom_kills() == 1
    assert cg.to_json()["procs"] == [os.path.join(d, "cgroup.procs")]


def test_v2_driver_writes_limits(tmp_path: Path) -> None:
    parent = tmp_path / "vkcompose"
    pod = parent / "pod"
    pod.mkdir(parents=True)
    (pod / "cgroup.controllers").write_text("cpu memory pids\n")
    (pod / "cgroup.subtree_control").write_text("")
    driver = cgroups.CgroupDriver("v2", {"": str(parent)})
    (pod / "c").mkdir()
    for name in ("cpu.max", "pids.max"):
        (pod / "c" / name).write_text("")
        (pod / name).write_text("")
    limits = cgroups.container_limits({"resources": {"limits": {"memory": "32Mi", "cpu": "1.5"}}})
    driver.create(
        "pod", cgroups.Limits(), "c", cgroups.Limits(limits.memory, limits.cpu_millis, 64)
    )
    assert (pod / "c" / "memory.max").read_text() == str(MI32)
    assert (pod / "c" / "cpu.max").read_text() == "150000 100000"
    assert (pod / "c" / "pids.max").read_text() == "64"
    assert (pod / "memory.max").read_text() == "max"
    assert (pod / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
