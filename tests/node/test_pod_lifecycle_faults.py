"""Pod lifecycle edge cases the kubelet defines: a shortened grace period, a grace period
that outlives another timer, a pod whose API phase is final, readiness gates set by others."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import anyio
import pytest
from nodekit import FAST, create_pod, eventually, get_pod, make_pod, phase

from vkcompose import ops
from vkcompose.backends.memory import MemoryBackend
from vkcompose.backends.process import ProcessBackend
from vkcompose.errors import NotFound, TemporaryError
from vkcompose.node.kube import Kube, path_of
from vkcompose.node.runtime import virtual_node
from vkcompose.node.settings import VirtualNode

pytestmark = pytest.mark.anyio


def create_fails_after_the_backend(times: int | None = None) -> Any:
    """A middleware reporting CreatePod failed after the backend ran the pod (the first
    ``times`` creates; every one when ``None``)."""
    failed = 0

    async def middleware(op: Any, call_next: Any) -> Any:
        nonlocal failed
        result = await call_next(op)
        if isinstance(op, ops.CreatePod) and (times is None or failed < times):
            failed += 1
            raise TemporaryError("timed out waiting for the backend")
        return result

    return middleware


async def test_shortened_grace_period_is_honoured(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """A second DELETE with a shorter grace period shortens the wait (kubelet, VK)."""
    await start()
    await create_pod(
        kube, make_pod("slow", grace=30, annotations={"sim.vkcompose.io/stop-delay": "600"})
    )

    async def running() -> bool:
        return await phase(kube, "slow") == "Running"

    await eventually(running)
    path = path_of("pods", "slow", namespace="default")
    await kube.delete(path)  # grace 30
    await anyio.sleep(0.3)  # the node saw it and told the backend to stop
    await kube.delete(path, options={"gracePeriodSeconds": 1})  # shortened to 1s
    pod = await get_pod(kube, "slow")
    assert pod is not None and pod["metadata"]["deletionGracePeriodSeconds"] == 1

    async def absent() -> bool:
        return await get_pod(kube, "slow") is None

    # the new grace period (1s) has passed long before this limit; the old one (30s) has not
    await eventually(absent, limit=6.0)


async def test_a_failed_pod_never_leaves_the_failed_phase(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """restartPolicy Never and a create reported failed although the backend ran the pod: the
    node writes phase Failed (ProviderFailed). The next node adopts the running pod; it must
    not write the backend's Running over Failed (the kubelet never moves a pod out of a
    terminal phase), and it stops what still runs."""

    fails_after = create_fails_after_the_backend()
    node = VirtualNode(name="vk-test", backend=backend, middlewares=[fails_after], **FAST)
    async with virtual_node(node, kube=kube):
        await create_pod(kube, make_pod("job", restart_policy="Never"))

        async def failed() -> bool:
            return await phase(kube, "job") == "Failed"

        await eventually(failed)
    assert (await backend.get_pod_status("default", "job"))["status"]["phase"] == "Running"

    await start()  # the node restarts (no failing middleware now)
    await anyio.sleep(1.5)  # startup reconciliation + a resync
    pod = await get_pod(kube, "job")
    assert pod is not None
    assert pod["status"]["phase"] == "Failed", pod["status"]

    async def stopped() -> bool:
        # what still ran of the Failed pod is stopped, as the kubelet stops it
        try:
            status = (await backend.get_pod_status("default", "job"))["status"]
        except NotFound:
            return True
        return status["phase"] in ("Succeeded", "Failed") or any(
            "terminated" in (c.get("state") or {}) for c in status.get("containerStatuses") or []
        )

    await eventually(stopped)


async def test_process_backend_learns_a_readiness_gate_turning_true(
    start: Any, kube: Kube, tmp_path: Any
) -> None:
    """A readiness gate turned True by another component in the API makes the pod Ready (the
    kubelet computes Ready from ContainersReady and the gates), whatever the backend knows."""
    backend = ProcessBackend(tmp_path / "pods", isolation="none", probe_time_scale=0.05)
    try:
        await start(backend=backend, resync_seconds=3600)  # the gate's change brings a sync
        pod = make_pod(
            "gated",
            readinessGates=[{"conditionType": "example.com/Gate"}],
            automountServiceAccountToken=False,
        )
        pod["spec"]["containers"][0]["command"] = ["sh", "-c", "sleep 300"]
        await create_pod(kube, pod)

        async def conds() -> dict[str, str]:
            p = await get_pod(kube, "gated")
            return {
                c["type"]: c["status"]
                for c in ((p or {}).get("status") or {}).get("conditions") or []
            }

        async def containers_ready() -> bool:
            return (await conds()).get("ContainersReady") == "True"

        try:
            await eventually(containers_ready, limit=10.0)
        except TimeoutError:
            raise AssertionError(str((await get_pod(kube, "gated") or {}).get("status"))) from None
        assert (await conds()).get("Ready") == "False"
        await kube.patch_status(
            path_of("pods", "gated", namespace="default", subresource="status"),
            {"status": {"conditions": [{"type": "example.com/Gate", "status": "True"}]}},
        )

        async def ready() -> bool:
            return (await conds()).get("Ready") == "True"

        try:
            await eventually(ready, limit=4.0)
        except TimeoutError:
            raise AssertionError(await conds()) from None
    finally:
        with anyio.move_on_after(10, shield=True):
            await backend.aclose(stop_pods=True, grace=0)


async def test_grace_deadline_survives_an_earlier_pending_timer(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """A pod deleted within status_coalesce_seconds of its create: the "still starting" hold
    timer is pending, and the queue keeps only a key's earliest schedule; the grace period's
    end must still bring a sync (not only the next resync)."""
    await start(resync_seconds=3600)  # status_coalesce_seconds: the default 0.25 s
    await create_pod(
        kube,
        make_pod(
            "quick",
            grace=1,
            annotations={
                "sim.vkcompose.io/start-delay": "30",
                "sim.vkcompose.io/stop-delay": "600",
            },
        ),
    )

    async def known() -> bool:
        p = await get_pod(kube, "quick")
        return p is not None and backend.creates >= 1

    await eventually(known, interval=0.005)
    await kube.delete(path_of("pods", "quick", namespace="default"))  # grace 1 s

    async def absent() -> bool:
        return await get_pod(kube, "quick") is None

    await eventually(absent, limit=5.0)


async def test_a_gated_pod_of_the_simulated_backend_is_ready_once_its_gate_is(
    start: Any, kube: Kube
) -> None:
    await start(resync_seconds=3600)  # the gate's change brings a sync
    await create_pod(kube, make_pod("gated", readinessGates=[{"conditionType": "example.com/G"}]))

    async def ready() -> dict[str, Any] | None:
        p = await get_pod(kube, "gated")
        conds = ((p or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "Ready"), None)

    async def held_back() -> bool:
        c = await ready()
        return c is not None and c["status"] == "False"

    await eventually(held_back)
    assert await phase(kube, "gated") == "Running"
    c = await ready()
    assert c is not None and c["reason"] == "ReadinessGatesNotReady"
    assert (
        c["message"]
        == 'corresponding condition of pod readiness gate "example.com/G" does not exist.'
    )
    await kube.patch_status(
        path_of("pods", "gated", namespace="default", subresource="status"),
        {"status": {"conditions": [{"type": "example.com/G", "status": "True"}]}},
    )

    async def is_ready() -> bool:
        c = await ready()
        return c is not None and c["status"] == "True"

    await eventually(is_ready, limit=5.0)


class NotifyOnlyBackend(MemoryBackend):
    """Tells every change, but cannot be asked for a pod's status."""

    get_pod_status = None  # type: ignore[assignment]


async def test_deletion_waits_for_a_backend_that_only_notifies(start: Any, kube: Kube) -> None:
    async with NotifyOnlyBackend() as backend:
        await start(backend=backend)
        await create_pod(
            kube, make_pod("stops", grace=30, annotations={"sim.vkcompose.io/stop-delay": "2"})
        )

        async def running() -> bool:
            return await phase(kube, "stops") == "Running"

        await eventually(running)
        await kube.delete(path_of("pods", "stops", namespace="default"))
        await anyio.sleep(0.5)
        # its DeletePod has answered, but it has not told that the pod stopped
        pod = await get_pod(kube, "stops")
        assert pod is not None and pod["metadata"].get("deletionTimestamp")

        async def gone() -> bool:
            return await get_pod(kube, "stops") is None

        await eventually(gone)  # once it tells the pod has stopped


async def test_a_run_once_pod_the_backend_lost_is_failed_not_run_again(
    kube: Kube, backend: MemoryBackend
) -> None:
    """A node restarts on a backend that kept nothing: a started ``restartPolicy: Never`` pod
    is reported Failed with its container terminated, status unknown (exit 137), as the
    kubelet does; an ``Always`` pod is started again."""
    node = VirtualNode(name="vk-test", backend=backend, **FAST)
    async with virtual_node(node, kube=kube):
        await create_pod(kube, make_pod("once", restart_policy="Never"))
        await create_pod(kube, make_pod("always"))

        async def both_running() -> bool:
            return await phase(kube, "once") == "Running" == await phase(kube, "always")

        await eventually(both_running)
    async with MemoryBackend() as empty:
        fresh = VirtualNode(name="vk-test", backend=empty, **FAST)
        async with virtual_node(fresh, kube=kube):

            async def once_failed() -> bool:
                return await phase(kube, "once") == "Failed"

            await eventually(once_failed)
            await eventually(lambda: empty.creates == 1)
            pod = await get_pod(kube, "once")
            assert pod is not None
            terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
            assert terminated["exitCode"] == 137
            assert terminated["reason"] == "ContainerStatusUnknown"

            async def always_running() -> bool:
                return await phase(kube, "always") == "Running"

            await eventually(always_running)
            await anyio.sleep(1.2)  # nor does a resync (every second) create it
            assert empty.creates == 1
            with pytest.raises(NotFound):
                await empty.get_pod_status("default", "once")


async def test_a_backend_unreachable_at_startup_fails_no_run_once_pod(
    kube: Kube, backend: MemoryBackend
) -> None:
    """Only a backend that says it does not run a started run-once pod makes it lost: one that
    cannot be asked yet (its list and status reads fail) is asked again."""
    node = VirtualNode(name="vk-test", backend=backend, **FAST)
    async with virtual_node(node, kube=kube):
        await create_pod(kube, make_pod("once", restart_policy="Never"))

        async def running() -> bool:
            return await phase(kube, "once") == "Running"

        await eventually(running)
    reachable = anyio.Event()

    async def unreachable_at_first(op: Any, call_next: Any) -> Any:
        if not reachable.is_set() and isinstance(op, ops.ListPods | ops.GetPodStatus):
            raise TemporaryError("backend not reachable yet")
        return await call_next(op)

    again = VirtualNode(name="vk-test", backend=backend, middlewares=[unreachable_at_first], **FAST)
    async with virtual_node(again, kube=kube) as rt:
        await anyio.sleep(0.5)
        reachable.set()
        # adopted at a resync (every second)
        await eventually(lambda: ("default", "once") in rt.pods.running_in_backend())
        assert await phase(kube, "once") == "Running"
        assert (await backend.get_pod_status("default", "once"))["status"]["phase"] == "Running"


async def test_a_failed_pod_the_backend_runs_is_stopped_at_a_resync(
    kube: Kube, backend: MemoryBackend
) -> None:
    """No restart needed: the resync adopts what the backend runs, and a Failed pod's
    containers are stopped (the resync leaves a notifying backend's status unread)."""
    fails_once = create_fails_after_the_backend(times=1)
    node = VirtualNode(name="vk-test", backend=backend, middlewares=[fails_once], **FAST)
    async with virtual_node(node, kube=kube):
        await create_pod(kube, make_pod("job", restart_policy="Never"))

        async def failed() -> bool:
            return await phase(kube, "job") == "Failed"

        await eventually(failed)

        async def stopped() -> bool:
            try:
                status = (await backend.get_pod_status("default", "job"))["status"]
            except NotFound:
                return True
            return bool(status["phase"] != "Running")

        await eventually(stopped)
        assert await phase(kube, "job") == "Failed"


async def test_a_shortened_grace_period_reaches_a_backend_still_stopping_the_pod(
    start: Any, kube: Kube, tmp_path: Any
) -> None:
    """The process backend's DeletePod waits until the pod has stopped: a second DELETE with
    a shorter grace period must still shorten that stop, not only the API object's wait."""
    backend = ProcessBackend(tmp_path / "pods", isolation="none", probe_time_scale=0.05)
    pidfile = tmp_path / "pid"
    try:
        await start(backend=backend, resync_seconds=3600)
        pod = make_pod("stubborn", grace=30, automountServiceAccountToken=False)
        # ($$ is an escaped $ in a container command: $$$$ reaches the shell as $$)
        script = "trap '' TERM; echo $$$$ > " + str(pidfile) + "; while true; do sleep 0.1; done"
        pod["spec"]["containers"][0]["command"] = ["sh", "-c", script]
        await create_pod(kube, pod)

        async def running() -> bool:
            return await phase(kube, "stubborn") == "Running" and pidfile.exists()

        await eventually(running)
        pid = int(pidfile.read_text())
        path = path_of("pods", "stubborn", namespace="default")
        await kube.delete(path)  # 30 s, and the container ignores SIGTERM
        await anyio.sleep(0.5)
        await kube.delete(path, options={"gracePeriodSeconds": 1})

        def killed() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        # SIGKILL once the 1 s grace (at least 2 s after SIGTERM) is over, not after 30 s
        await eventually(killed, limit=8.0)

        async def absent() -> bool:
            return await get_pod(kube, "stubborn") is None

        await eventually(absent)
    finally:
        with anyio.move_on_after(10, shield=True):
            await backend.aclose(stop_pods=True, grace=0)
        if pidfile.exists():  # if the stop failed, leave no process behind
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
