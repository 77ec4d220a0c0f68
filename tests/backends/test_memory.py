"""The simulated backend: lifecycle timing, overrides, determinism, notifications."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vkcompose.backends.clock import ManualClock
from vkcompose.backends.memory import MemoryBackend
from vkcompose.errors import InvalidInput, NotFound, TemporaryError
from vkcompose.ops import ExecIO, LogOptions

pytestmark = pytest.mark.anyio


def make_pod(
    name: str = "web",
    annotations: dict[str, str] | None = None,
    restart_policy: str = "Always",
    uid: str | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": uid or f"uid-{name}",
            "annotations": annotations or {},
        },
        "spec": {"restartPolicy": restart_policy, "containers": [{"name": "app", "image": "x"}]},
    }


def phases(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for pod in events:
        status = pod["status"]
        waiting = [
            c["state"].get("waiting", {}).get("reason") for c in status.get("containerStatuses", [])
        ]
        out.append(status["phase"] + (f"/{waiting[0]}" if waiting and waiting[0] else ""))
    return out


async def step(clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


async def test_starting_states_that_last_no_time_are_not_reported() -> None:
    clock = ManualClock()
    seen: list[dict[str, Any]] = []
    async with MemoryBackend(clock=clock) as backend:
        backend.notify_pods(seen.append)
        await backend.create_pod(make_pod())
        assert seen == []  # Pending and ContainerCreating both last no time
        await step(clock, 0)
        assert phases(seen) == ["Running"]
        slow = {"sim.vkcompose.io/accept-delay": "1"}
        await backend.create_pod(make_pod("slow", uid="uid-slow", annotations=slow))
        assert phases(seen) == ["Running", "Pending"]  # a Pending that lasts is reported
        await step(clock, 1)
        assert phases(seen) == ["Running", "Pending", "Running"]


async def test_a_pod_that_starts_at_once_runs_when_create_returns() -> None:
    """Starting states that last no time are passed during CreatePod, without the scheduler;
    the pod is announced once, after CreatePod returned (so a caller can record it first)."""
    seen: list[dict[str, Any]] = []
    async with MemoryBackend(clock=ManualClock()) as backend:
        backend.notify_pods(seen.append)
        await backend.create_pod(make_pod())
        assert (await backend.get_pod_status("default", "web"))["status"]["phase"] == "Running"
        assert seen == []
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        assert phases(seen) == ["Running"]
        await backend.settle()
        assert phases(seen) == ["Running"]


async def test_lifecycle_follows_stage_delays_on_the_clock() -> None:
    clock = ManualClock()
    seen: list[dict[str, Any]] = []
    annotations = {"sim.vkcompose.io/start-delay": "5", "sim.vkcompose.io/run-duration": "10"}
    async with MemoryBackend(clock=clock) as backend:
        backend.notify_pods(seen.append)
        await backend.create_pod(make_pod(annotations=annotations, restart_policy="Never"))
        await step(clock, 0)
        # Pending lasts no time (accept-delay 0): not reported
        assert phases(seen) == ["Pending/ContainerCreating"]
        await step(clock, 4.9)
        assert (await backend.get_pod_status("default", "web"))["status"]["phase"] == "Pending"
        await step(clock, 0.1)
        assert phases(seen)[-1] == "Running"
        await step(clock, 9.9)
        assert phases(seen)[-1] == "Running"
        await step(clock, 0.1)
        assert phases(seen)[-1] == "Succeeded"
        final = seen[-1]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert final["exitCode"] == 0 and final["reason"] == "Completed"


async def test_exit_code_annotation_fails_pod_with_never_policy() -> None:
    clock = ManualClock()
    annotations = {"sim.vkcompose.io/run-duration": "1", "sim.vkcompose.io/exit-code": "3"}
    async with MemoryBackend(clock=clock) as backend:
        await backend.create_pod(make_pod(annotations=annotations, restart_policy="Never"))
        await step(clock, 0)
        await step(clock, 1)
        status = (await backend.get_pod_status("default", "web"))["status"]
        assert status["phase"] == "Failed"
        terminated = status["containerStatuses"][0]["state"]["terminated"]
        assert terminated == {**terminated, "exitCode": 3, "reason": "Error"}


async def test_crash_loop_backs_off_like_the_kubelet() -> None:
    clock = ManualClock()
    seen: list[dict[str, Any]] = []
    annotations = {"sim.vkcompose.io/crash-loop": "true", "sim.vkcompose.io/run-duration": "1"}
    async with MemoryBackend(clock=clock, backoff_base=10, backoff_cap=40) as backend:
        backend.notify_pods(seen.append)
        await backend.create_pod(make_pod(annotations=annotations))
        await step(clock, 0)
        await step(clock, 1)  # running 1 s, then exits with code 1
        status = seen[-1]["status"]["containerStatuses"][0]
        assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert status["lastState"]["terminated"]["exitCode"] == 1
        restarts_at = []
        for _ in range(130):
            await step(clock, 1)
            current = seen[-1]["status"]["containerStatuses"][0]
            if "running" in current["state"] and (
                not restarts_at or restarts_at[-1][0] != current["restartCount"]
            ):
                restarts_at.append((current["restartCount"], clock.now()))
        gaps = [b[1] - a[1] for a, b in itertools.pairwise(restarts_at)]
        # first run 1 s; then each cycle: back-off (10, 20, 40, 40 …) + 1 s of running
        assert [round(g) for g in gaps[:4]] == [11, 21, 41, 41]


async def test_fail_create_annotation_fails_then_succeeds() -> None:
    annotations = {
        "sim.vkcompose.io/fail-create": "quota exceeded",
        "sim.vkcompose.io/fail-create-times": "2",
    }
    async with MemoryBackend() as backend:
        for _ in range(2):
            with pytest.raises(TemporaryError, match="quota exceeded"):
                await backend.create_pod(make_pod(annotations=annotations))
        await backend.create_pod(make_pod(annotations=annotations))
        await backend.settle()
        pod = await backend.get_pod_status("default", "web")
        assert pod["status"]["phase"] == "Running"


async def test_bad_annotation_is_a_clear_error() -> None:
    async with MemoryBackend() as backend:
        with pytest.raises(InvalidInput, match="start-delay"):
            await backend.create_pod(make_pod(annotations={"sim.vkcompose.io/start-delay": "x"}))


async def test_create_twice_with_same_uid_is_idempotent() -> None:
    async with MemoryBackend() as backend:
        await backend.create_pod(make_pod())
        await backend.create_pod(make_pod())
        assert backend.creates == 1
        with pytest.raises(InvalidInput):
            await backend.create_pod(make_pod(uid="other"))


async def test_delete_stops_then_forgets_the_pod_and_frees_its_ip() -> None:
    seen: list[dict[str, Any]] = []
    async with MemoryBackend(pod_cidr="10.0.0.0/29") as backend:
        backend.notify_pods(seen.append)
        await backend.create_pod(make_pod("a"))
        await backend.settle()
        ip = (await backend.get_pod_status("default", "a"))["status"]["podIP"]
        assert ip == "10.0.0.2"
        await backend.delete_pod(make_pod("a"), 30)
        await backend.settle()
        assert seen[-1]["status"]["phase"] == "Succeeded"
        with pytest.raises(NotFound):
            await backend.get_pod_status("default", "a")
        assert await backend.list_pods() == []
        with pytest.raises(NotFound):
            await backend.delete_pod(make_pod("a"), 0)
        await backend.create_pod(make_pod("b"))
        assert (await backend.get_pod_status("default", "b"))["status"]["podIP"] == ip


@settings(max_examples=40, deadline=None)
@given(
    network=st.one_of(
        st.builds(
            lambda a, p: ipaddress.ip_network((a, p), strict=False),
            st.integers(0, 2**32 - 1),
            st.integers(16, 29),
        ),
        st.builds(
            lambda a, p: ipaddress.ip_network((a, p), strict=False),
            st.integers(0, 2**128 - 1),
            st.integers(100, 125),
        ),
    ),
    pods=st.integers(1, 5),
)
def test_pod_ips_are_the_cidr_s_addresses_in_order(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, pods: int
) -> None:
    async def main() -> list[str]:
        async with MemoryBackend(pod_cidr=str(network)) as backend:
            for i in range(pods):
                await backend.create_pod(make_pod(f"p{i}", uid=f"u{i}"))
            return [
                (await backend.get_pod_status("default", f"p{i}"))["status"]["podIP"]
                for i in range(pods)
            ]

    got = anyio.run(main)
    assert got == [str(network.network_address + 2 + i) for i in range(pods)]


async def test_cidr_exhaustion_is_temporary_error() -> None:
    async with MemoryBackend(pod_cidr="10.0.0.0/30") as backend:
        await backend.create_pod(make_pod("a"))
        with pytest.raises(TemporaryError, match="exhausted"):
            await backend.create_pod(make_pod("b"))


async def test_notifications_are_ordered_per_pod() -> None:
    seen: list[dict[str, Any]] = []
    async with MemoryBackend() as backend:
        backend.notify_pods(seen.append)
        lasting = {
            "sim.vkcompose.io/accept-delay": "0.001",
            "sim.vkcompose.io/start-delay": "0.001",
        }
        for i in range(50):
            await backend.create_pod(make_pod(f"p{i}", annotations=lasting))
        await backend.settle()
    order = {"Pending": 0, "Pending/ContainerCreating": 1, "Running": 2}
    by_pod: dict[str, list[int]] = {}
    for pod, phase in zip(seen, phases(seen), strict=True):
        by_pod.setdefault(pod["metadata"]["name"], []).append(order[phase])
    assert len(by_pod) == 50
    assert all(ranks == [0, 1, 2] for ranks in by_pod.values())


@settings(max_examples=15, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32),
    st.lists(st.text("abc", min_size=1), min_size=1, max_size=6, unique=True),
)
def test_same_seed_same_simulation(seed: int, names: list[str]) -> None:
    async def simulate() -> list[Any]:
        async with MemoryBackend(seed=seed) as backend:
            for name in names:
                await backend.create_pod(make_pod(name))
            await backend.settle()
            stats = await backend.get_stats(None)
            pods = await backend.list_pods()
        return [
            sorted((p["metadata"]["name"], p["status"]["podIP"]) for p in pods),
            sorted(
                (p["podRef"]["name"], p["containers"][0]["cpu"]["usageNanoCores"])
                for p in stats["pods"]
            ),
        ]

    assert anyio.run(simulate) == anyio.run(simulate)


async def test_logs_tail_timestamps_and_follow() -> None:
    clock = ManualClock()
    async with MemoryBackend(clock=clock, log_interval=1.0) as backend:
        await backend.create_pod(make_pod())
        await step(clock, 0)
        await step(clock, 4)
        stream = await backend.read_logs("default", "web", "app", LogOptions(tail_lines=2))
        lines = [chunk async for chunk in stream]
        assert lines == [b"app: simulated log line 4\n", b"app: simulated log line 5\n"]
        stream = await backend.read_logs(
            "default", "web", "", LogOptions(timestamps=True, limit_bytes=10)
        )
        data = b"".join([chunk async for chunk in stream])
        assert len(data) == 10 and data[:2] == b"20"
        followed: list[bytes] = []
        stream = await backend.read_logs(
            "default", "web", "app", LogOptions(follow=True, tail_lines=0)
        )

        async def consume() -> None:
            async for chunk in stream:
                followed.append(chunk)
                if len(followed) == 2:
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for _ in range(5):
                await step(clock, 1)
        assert followed == [b"app: simulated log line 6\n", b"app: simulated log line 7\n"]
        with pytest.raises(NotFound):
            await backend.read_logs("default", "web", "nope", LogOptions())


async def test_exec_builtin_commands() -> None:
    async with MemoryBackend() as backend:
        await backend.create_pod(make_pod())
        await backend.settle()

        class Sink:
            def __init__(self) -> None:
                self.data = b""

            async def send(self, item: bytes) -> None:
                self.data += item

        out = Sink()
        code = await backend.exec(
            "default",
            "web",
            "app",
            ["echo", "hi", "there"],
            ExecIO(stdout=out),  # type: ignore[arg-type]
        )
        assert (code, out.data) == (0, b"hi there\n")
        assert await backend.exec("default", "web", "app", ["exit", "7"], ExecIO()) == 7
        err = Sink()
        code = await backend.exec("default", "web", "app", ["nosuch"], ExecIO(stderr=err))  # type: ignore[arg-type]
        assert code == 127 and b"not found" in err.data


async def test_ping_reflects_health() -> None:
    backend = MemoryBackend()
    await backend.ping()
    backend.healthy = False
    with pytest.raises(TemporaryError):
        await backend.ping()


async def test_a_pod_started_at_once_is_announced_running_before_it_exits() -> None:
    """A zero run duration: Running is still announced, before the exit, whichever of the
    announcement and the scheduler runs first."""
    seen: list[dict[str, Any]] = []
    quick = {"sim.vkcompose.io/run-duration": "0"}
    async with MemoryBackend(clock=ManualClock()) as backend:
        backend.notify_pods(seen.append)
        await backend.create_pod(make_pod("first", uid="uid-1"))
        for _ in range(5):  # the scheduler has run and waits
            await anyio.lowlevel.checkpoint()
        await backend.create_pod(make_pod(annotations=quick, restart_policy="Never"))
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        web = [p for p in seen if p["metadata"]["name"] == "web"]
        assert [p["status"]["phase"] for p in web] == ["Running", "Succeeded"]
