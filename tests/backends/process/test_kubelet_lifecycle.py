"""Container lifecycle details as the kubelet has them: the first restart is immediate, back-off
messages print Go durations, containers of a pod with init containers wait PodInitializing, a
stop leaves at least two seconds between SIGTERM and SIGKILL, a postStart hook has no time
limit."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import anyio
import pytest
from processkit import container, make_pod, phase_is, sh, wait_for

from vkcompose.backends.process import ProcessBackend

pytestmark = pytest.mark.anyio


def crash_loop(name: str) -> Any:
    def check(status: dict[str, Any]) -> bool:
        try:
            st = container(status, name)
        except KeyError:
            return False
        return (st["state"].get("waiting") or {}).get("reason") == "CrashLoopBackOff"

    return check


async def test_the_first_restart_is_immediate_then_backed_off(make_backend: Any) -> None:
    backend = make_backend(backoff_base=80.0, backoff_cap=300.0)
    pod = make_pod("first", sh("main", "exit 1"), restart_policy="Always")
    await backend.create_pod(pod)
    # restarted at once (no 80 s back-off), then in CrashLoopBackOff with the Go duration
    status = await wait_for(backend, "first", crash_loop("main"), seconds=10)
    main = container(status, "main")
    assert main["restartCount"] == 1
    assert main["lastState"]["terminated"]["exitCode"] == 1
    assert main["state"]["waiting"]["message"] == (
        f"back-off 1m20s restarting failed container=main pod=first_default"
        f"({pod['metadata']['uid']})"
    )


async def test_containers_of_a_pod_with_init_containers_wait_pod_initializing(
    backend: ProcessBackend,
) -> None:
    pod = make_pod("initwait", sh("main", "sleep 30"), init=[sh("init", "sleep 30")])
    await backend.create_pod(pod)
    status = await wait_for(
        backend, "initwait", lambda s: "running" in container(s, "init", True)["state"]
    )
    assert container(status, "main")["state"] == {"waiting": {"reason": "PodInitializing"}}


async def test_a_stop_leaves_two_seconds_after_the_pre_stop_hook(backend: ProcessBackend) -> None:
    """preStop took the whole grace period: SIGTERM still gets two seconds before SIGKILL."""
    script = "trap 'exit 0' TERM; echo up; while true; do sleep 0.05; done"
    main = sh("main", script, lifecycle={"preStop": {"exec": {"command": ["sleep", "3"]}}})
    pod = make_pod("prestop", main, terminationGracePeriodSeconds=1)
    finals: list[dict[str, Any]] = []
    backend.notify_pods(lambda p: finals.append(p["status"]))
    await backend.create_pod(pod)
    await wait_for(backend, "prestop", phase_is("Running"))
    await anyio.sleep(0.3)  # the trap is set
    with anyio.fail_after(15):
        await backend.delete_pod(pod, None)
    terminated = container(finals[-1], "main")["state"]["terminated"]
    assert terminated["exitCode"] == 0, terminated  # its own exit on SIGTERM, not SIGKILL's 137


async def test_a_slow_post_start_hook_is_waited_for(backend: ProcessBackend) -> None:
    main = sh("main", "sleep 30", lifecycle={"postStart": {"exec": {"command": ["sleep", "2"]}}})
    await backend.create_pod(make_pod("slowhook", main, terminationGracePeriodSeconds=1))
    await wait_for(backend, "slowhook", phase_is("Running"))
    await anyio.sleep(3)  # longer than the grace period the hook used to be limited to
    status = (await backend.get_pod_status("default", "slowhook"))["status"]
    assert "running" in container(status, "main")["state"]


@pytest.mark.parametrize(
    ("policy", "script", "message"),
    [
        ("FallbackToLogsOnError", "echo first; echo boom; exit 3", "first\nboom\n"),
        ("FallbackToLogsOnError", "seq 1 100; exit 1", "".join(f"{i}\n" for i in range(21, 101))),
        ("FallbackToLogsOnError", "echo fine", None),  # exit 0: no message
        ("File", "echo boom; exit 3", None),
    ],
)
async def test_a_failed_container_reports_its_log_tail_when_asked(
    backend: ProcessBackend, policy: str, script: str, message: str | None
) -> None:
    main = sh("main", script, terminationMessagePolicy=policy)
    await backend.create_pod(make_pod("tail", main))
    status = await wait_for(backend, "tail", phase_is("Failed", "Succeeded"))
    assert container(status, "main")["state"]["terminated"].get("message") == message


async def test_the_log_tail_is_its_last_2048_bytes(backend: ProcessBackend) -> None:
    line = "x" * 99  # 100 bytes a line with its newline
    main = sh(
        "main",
        f"for i in $(seq 1 30); do echo ${{i}}{line}; done; exit 2",
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    await backend.create_pod(make_pod("bytes", main))
    status = await wait_for(backend, "bytes", phase_is("Failed"))
    message = container(status, "main")["state"]["terminated"]["message"]
    assert len(message.encode()) == 2048 and message.endswith(f"30{line}\n")


async def test_initial_delays_count_from_the_container_start(make_backend: Any) -> None:
    """A readiness probe's initialDelaySeconds runs from the container's start (the kubelet's
    prober), not from the moment the startup probe passed: here both take 4 s, so the
    container is ready as soon as it has started, not 4 s later."""
    backend = make_backend(probe_time_scale=0.25, isolation="none")
    started_file = f"/tmp/vkcompose-started-{id(backend)}"
    main = sh(
        "main",
        f"rm -f {started_file}; sleep 4; touch {started_file}; sleep 60",
        startupProbe={
            "exec": {"command": ["test", "-f", started_file]},
            "periodSeconds": 1,
            "failureThreshold": 100,
        },
        readinessProbe={"exec": {"command": ["true"]}, "initialDelaySeconds": 16},
    )
    try:
        await backend.create_pod(make_pod("delays", main))
        await wait_for(backend, "delays", lambda s: container(s, "main")["started"], seconds=20)
        started = time.monotonic()
        await wait_for(backend, "delays", lambda s: container(s, "main")["ready"], seconds=20)
        assert time.monotonic() - started < 2.5  # 4 s (16 s at 0.25) when counted from "started"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(started_file)


async def test_the_log_tail_of_a_long_log_is_read_from_its_end(backend: ProcessBackend) -> None:
    line = "y" * 95  # with the number and the newline, about 100 bytes a line; 500 kB in all
    main = sh(
        "main",
        f"for i in $(seq 1 5000); do echo ${{i}}{line}; done; exit 1",
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    await backend.create_pod(make_pod("long", main))
    status = await wait_for(backend, "long", phase_is("Failed"), seconds=30)
    message = container(status, "main")["state"]["terminated"]["message"]
    assert message.endswith(f"4999{line}\n5000{line}\n") and len(message.encode()) == 2048
