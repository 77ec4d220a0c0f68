"""Pod controller over real HTTP: embedded API server, simulated backend."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from nodekit import (
    create_pod,
    events_for,
    eventually,
    get_pod,
    list_pods,
    make_pod,
    phase,
)

from vkcompose import ops
from vkcompose.apiserver import APIServer
from vkcompose.backends.memory import MemoryBackend
from vkcompose.errors import NotFound, TemporaryError
from vkcompose.middlewares.config_sources import ResolveConfigSources
from vkcompose.node.kube import STRATEGIC_PATCH, Kube, path_of
from vkcompose.node.sources import ClusterSources

pytestmark = pytest.mark.anyio


def kubectl() -> str:
    path = shutil.which("kubectl", path=os.path.dirname(sys.executable))
    assert path, "the pinned kubectl binary is installed next to the interpreter"
    return path


async def backend_phase(backend: MemoryBackend, name: str) -> str | None:
    try:
        pod = await backend.get_pod_status("default", name)
    except NotFound:
        return None
    return str(pod["status"]["phase"])


async def test_create_running_then_graceful_delete_with_kubectl(
    start: Any, kube: Kube, backend: MemoryBackend, apiserver: APIServer
) -> None:
    rt = await start()
    await create_pod(kube, make_pod("web", annotations={"sim.vkcompose.io/stop-delay": "0.3"}))
    await eventually(lambda: _is(kube, "web", "Running"))
    pod = await get_pod(kube, "web")
    assert pod is not None
    status = pod["status"]
    assert status["hostIP"] == "127.0.0.1"
    assert status["podIP"].startswith("10.244.")
    assert status["containerStatuses"][0]["state"].get("running") is not None
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert status["startTime"]

    proc = await anyio.run_process(
        [
            kubectl(),
            "--kubeconfig",
            str(apiserver.kubeconfig_path),
            "delete",
            "pod",
            "web",
            "--wait=true",
            "--timeout=20s",
        ],
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert await get_pod(kube, "web") is None
    assert await backend_phase(backend, "web") is None
    reasons = {e["reason"] for e in await events_for(kube, "web")}
    assert {"Created", "Started", "Killing"} <= reasons
    assert rt.pods.stats.creates == 1 and rt.pods.stats.deletes == 1
    ev = (await events_for(kube, "web"))[0]
    assert ev["source"] == {"component": "vkcompose", "host": "vk-test"}


async def _is(kube: Kube, name: str, want: str) -> bool:
    return await phase(kube, name) == want


async def test_grace_period_bounds_the_wait(start: Any, kube: Kube, backend: MemoryBackend) -> None:
    """A pod whose containers do not stop is removed from the API once its grace period passed."""
    await start()
    await create_pod(
        kube, make_pod("slow", grace=1, annotations={"sim.vkcompose.io/stop-delay": "600"})
    )
    await eventually(lambda: _is(kube, "slow", "Running"))
    await kube.delete(path_of("pods", "slow", namespace="default"))
    pod = await get_pod(kube, "slow")
    assert pod is not None and pod["metadata"]["deletionTimestamp"]
    await eventually(lambda: _absent(kube, "slow"))
    assert await backend_phase(backend, "slow") == "Running"  # still stopping in the backend


async def _absent(kube: Kube, name: str) -> bool:
    return await get_pod(kube, name) is None


async def test_pod_deleted_before_it_started(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """A pod deleted while the node was down, and one that never got created, go at once."""
    await create_pod(kube, make_pod("early", grace=300))
    await kube.delete(path_of("pods", "early", namespace="default"))
    early = await get_pod(kube, "early")
    assert early is not None and early["metadata"].get("deletionTimestamp")
    rt = await start()
    await eventually(lambda: _absent(kube, "early"))
    assert backend.creates == 0

    await create_pod(
        kube, make_pod("doomed", grace=300, annotations={"sim.vkcompose.io/fail-create": "nope"})
    )
    await eventually(lambda: rt.pods.stats.failures >= 1)
    await kube.delete(path_of("pods", "doomed", namespace="default"))
    await eventually(lambda: _absent(kube, "doomed"))
    assert backend.creates == 0


async def test_update_only_when_mutable_fields_change(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    rt = await start()
    await create_pod(kube, make_pod("upd"))
    await eventually(lambda: _is(kube, "upd", "Running"))
    path = path_of("pods", "upd", namespace="default")
    await kube.patch(path, {"metadata": {"labels": {"x": "y"}}})
    await kube.patch(
        path,
        {"spec": {"containers": [{"name": "app", "image": "busybox:2"}]}},
        content_type=STRATEGIC_PATCH,
    )

    async def updated() -> bool:
        pod = await backend.get_pod_status("default", "upd")
        return bool(pod["spec"]["containers"][0]["image"] == "busybox:2")

    await eventually(updated)
    assert rt.pods.stats.updates == 1
    assert rt.pods.stats.creates == 1


async def test_watch_echoes_share_the_held_spec(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """Events that change only status or metadata keep the spec dict the node holds."""
    rt = await start()
    key = ("default", "same")
    await create_pod(kube, make_pod("same"))
    await eventually(lambda: _is(kube, "same", "Running"))
    await eventually(
        lambda: (rt.pods.known()[key] or {}).get("status", {}).get("phase") == "Running"
    )
    held = rt.pods.known()[key]
    assert held is not None
    reused = rt.pods.spec_reuse.reused
    await kube.patch(
        path_of("pods", "same", namespace="default"), {"metadata": {"labels": {"x": "y"}}}
    )
    await eventually(lambda: ((rt.pods.known()[key] or {}).get("metadata") or {}).get("labels"))
    now = rt.pods.known()[key]
    assert now is not None and now is not held
    assert now["spec"] is held["spec"]
    assert rt.pods.spec_reuse.reused > reused
    assert rt.pods.stats.updates == 0


async def test_a_label_change_reaches_a_pod_that_projects_its_labels(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """The spec is unchanged (and shared), but the labels are an input of the pod's volume."""
    rt = await start()
    volume = {
        "name": "info",
        "downwardAPI": {
            "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
        },
    }
    await create_pod(kube, make_pod("labelled", volumes=[volume]))
    await eventually(lambda: _is(kube, "labelled", "Running"))
    path = path_of("pods", "labelled", namespace="default")
    await kube.patch(path, {"metadata": {"labels": {"tier": "gold"}}})

    async def updated() -> bool:
        pod = await backend.get_pod_status("default", "labelled")
        return bool((pod["metadata"].get("labels") or {}).get("tier") == "gold")

    await eventually(updated)
    assert rt.pods.stats.updates == 1
    assert rt.pods.spec_reuse.reused >= 1


async def test_a_status_announced_while_the_create_is_in_the_pipeline_is_written(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """The simulator announces an instantly started pod just after ``create_pod``; a
    middleware that awaits after the backend answered lets that announcement arrive before
    the pipeline returns. It is still written, without waiting for a resync."""

    async def awaits_after(op: Any, call_next: Any) -> Any:
        result = await call_next(op)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        return result

    rt = await start(middlewares=[awaits_after], resync_seconds=3600)
    await create_pod(kube, make_pod("early"))
    await eventually(lambda: _is(kube, "early", "Running"), limit=10)
    assert rt.pods.stats.creates == 1


async def test_a_create_that_fails_after_the_backend_answered_reports_the_current_status(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """The backend ran the pod (and announced it) but the pipeline failed afterwards: the
    retried create finds the pod already there; what is written is the backend's status
    then, not the one announced during the failed attempt."""
    calls = 0

    async def fails_once_after(op: Any, call_next: Any) -> Any:
        nonlocal calls
        result = await call_next(op)
        if isinstance(op, ops.CreatePod):
            calls += 1
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            if calls == 1:
                raise TemporaryError("failed after the backend answered", delay=1.0)
        return result

    await start(middlewares=[fails_once_after], retry_base_seconds=1.0)
    pod = make_pod(
        "twice", restart_policy="OnFailure", annotations={"sim.vkcompose.io/run-duration": "0.3"}
    )
    await create_pod(kube, pod)
    await eventually(lambda: calls >= 2)
    await eventually(lambda: _is(kube, "twice", "Succeeded"), limit=10)
    assert (await backend.get_pod_status("default", "twice"))["status"]["phase"] == "Succeeded"


async def test_provider_failure_reports_and_retries(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    rt = await start()
    await create_pod(kube, make_pod("flaky", annotations={"sim.vkcompose.io/fail-create": "quota"}))

    async def failed_status() -> bool:
        pod = await get_pod(kube, "flaky")
        s = (pod or {}).get("status") or {}
        return s.get("reason") == "ProviderFailed" and "quota" in s.get("message", "")

    await eventually(failed_status)
    assert await phase(kube, "flaky") == "Pending"

    async def repeated_event() -> bool:
        evs = [e for e in await events_for(kube, "flaky") if e["reason"] == "ProviderFailed"]
        return len(evs) == 1 and evs[0]["count"] >= 2 and evs[0]["type"] == "Warning"

    await eventually(repeated_event)  # retried, and the repeats aggregated into one Event
    # the backend recovers: the retry creates the pod and the failure is cleared
    await kube.patch(
        path_of("pods", "flaky", namespace="default"),
        {"metadata": {"annotations": {"sim.vkcompose.io/fail-create": None}}},
    )
    await eventually(lambda: _is(kube, "flaky", "Running"))
    pod = await get_pod(kube, "flaky")
    assert pod is not None and "reason" not in pod["status"]
    assert rt.pods.stats.creates == 1


async def test_provider_failure_with_restart_never_is_terminal(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    rt = await start()
    await create_pod(
        kube,
        make_pod(
            "job", restart_policy="Never", annotations={"sim.vkcompose.io/fail-create": "boom"}
        ),
    )
    await eventually(lambda: _is(kube, "job", "Failed"))
    failures = rt.pods.stats.failures
    await anyio.sleep(0.3)  # several retry periods: a Failed pod is not retried
    assert rt.pods.stats.failures == failures
    assert backend.creates == 0


async def test_missing_configmap_then_created(
    kube: Kube, backend: MemoryBackend, start: Any
) -> None:
    sources = ClusterSources()
    await start(middlewares=[ResolveConfigSources(sources)])
    pod = make_pod("cfg")
    pod["spec"]["containers"][0]["env"] = [
        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}
    ]
    await create_pod(kube, pod)

    async def waiting() -> bool:
        p = await get_pod(kube, "cfg")
        cs = ((p or {}).get("status") or {}).get("containerStatuses") or []
        return bool(cs) and cs[0]["state"].get("waiting", {}).get("reason") == (
            "CreateContainerConfigError"
        )

    await eventually(waiting)
    assert await phase(kube, "cfg") == "Pending"
    assert any(e["reason"] == "Failed" for e in await events_for(kube, "cfg"))
    await kube.create(
        path_of("configmaps", namespace="default"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "data": {"k": "v"},
        },
    )
    await eventually(lambda: _is(kube, "cfg", "Running"))
    assert backend.creates == 1


async def test_status_patch_keeps_concurrent_label_and_foreign_condition(
    start: Any, kube: Kube
) -> None:
    await start()
    await create_pod(
        kube,
        make_pod(
            "lbl",
            restart_policy="Never",
            annotations={
                "sim.vkcompose.io/start-delay": "0.3",
                "sim.vkcompose.io/run-duration": "0.5",
            },
        ),
    )
    path = path_of("pods", "lbl", namespace="default")
    await kube.patch(path, {"metadata": {"labels": {"added": "concurrently"}}})
    await kube.patch_status(
        path_of("pods", "lbl", namespace="default", subresource="status"),
        {"status": {"conditions": [{"type": "example.com/Gate", "status": "True"}]}},
    )
    await eventually(lambda: _is(kube, "lbl", "Succeeded"))
    pod = await get_pod(kube, "lbl")
    assert pod is not None
    assert pod["metadata"]["labels"]["added"] == "concurrently"
    assert "example.com/Gate" in {c["type"] for c in pod["status"]["conditions"]}


async def test_no_unchanged_status_writes(start: Any, kube: Kube) -> None:
    rt = await start()
    await create_pod(kube, make_pod("calm"))
    await eventually(lambda: _is(kube, "calm", "Running"))
    await anyio.sleep(0.1)
    writes = rt.pods.stats.status_patches
    await anyio.sleep(1.5)  # covers a resync: everything is re-checked, nothing rewritten
    assert rt.pods.stats.status_patches == writes


async def test_restart_adopts_without_creating_twice(
    kube: Kube, backend: MemoryBackend, start: Any
) -> None:
    from nodekit import FAST

    from vkcompose.node.runtime import virtual_node
    from vkcompose.node.settings import VirtualNode

    node = VirtualNode(name="vk-test", backend=backend, **FAST)
    async with virtual_node(node, kube=kube):
        for i in range(5):
            await create_pod(kube, make_pod(f"keep-{i}"))
        await create_pod(kube, make_pod("going", grace=30))
        await create_pod(kube, make_pod("forced"))
        for name in [*(f"keep-{i}" for i in range(5)), "going", "forced"]:
            await eventually(lambda name=name: _is(kube, name, "Running"))
    assert backend.creates == 7
    # while the node is down: one graceful delete, one forced delete, one new pod
    await kube.delete(path_of("pods", "going", namespace="default"))
    await kube.delete(
        path_of("pods", "forced", namespace="default"),
        options={"gracePeriodSeconds": 0},
    )
    await create_pod(kube, make_pod("new"))
    rt = await start()
    await eventually(lambda: _is(kube, "new", "Running"))
    await eventually(lambda: _absent(kube, "going"))

    async def forced_gone() -> bool:
        return await backend_phase(backend, "forced") is None

    await eventually(forced_gone)
    assert backend.creates == 8  # only "new"
    assert rt.pods.stats.creates == 1
    assert rt.pods.stats.adopted == 6  # keep-0..4 and going
    assert {p["metadata"]["name"] for p in await list_pods(kube)} == {
        *(f"keep-{i}" for i in range(5)),
        "new",
    }


async def test_a_backlog_of_instant_syncs_does_not_hold_the_event_loop(
    start: Any, kube: Kube, backend: MemoryBackend
) -> None:
    """A backend that answers without ever waiting would let workers run the whole backlog
    back to back; the controller yields so that heartbeats and API answers keep flowing."""
    import asyncio
    import time

    from vkcompose.node import pods as pods_module

    original = backend.create_pod

    async def busy_create(pod: dict[str, Any], /) -> None:
        spin_until = time.perf_counter() + 0.002  # CPU-bound work, no await
        while time.perf_counter() < spin_until:
            pass
        await original(pod)

    backend.create_pod = busy_create  # type: ignore[method-assign]
    n = 150  # 0.3 s of back-to-back work, six slices
    for i in range(n):
        await create_pod(kube, make_pod(f"busy-{i}"))
    seen: list[int] = []

    async def ticker() -> None:
        while True:
            seen.append(backend.creates)
            await asyncio.sleep(0)

    # a bare task: the node's own task groups live in the fixture's exit stack
    ticking = asyncio.get_running_loop().create_task(ticker())
    try:
        await start()
        await eventually(lambda: backend.creates >= n, limit=30)
    finally:
        ticking.cancel()
    between = {c for c in seen if 0 < c < n}
    assert len(between) >= 3, f"the loop turned at {sorted(between)} creates only"
    assert pods_module.SLICE_SECONDS <= 0.05
