"""Event writes are rate-limited as the kubelet's eventRecordQPS/eventBurst limit them."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from nodekit import eventually

from vkcompose.node.events import EventRecorder
from vkcompose.node.kube import Kube, path_of

pytestmark = pytest.mark.anyio


def pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p{i}", "namespace": "default", "uid": f"uid-{i}"},
        "spec": {"nodeName": "vk-test"},
    }


async def count_events(kube: Kube) -> int:
    doc = await kube.get(path_of("events", namespace="default"))
    return len(doc["items"])


async def test_writes_follow_the_token_bucket_and_all_arrive(kube: Kube) -> None:
    recorder = EventRecorder(kube, qps=20.0, burst=5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        await anyio.lowlevel.checkpoint()
        start = anyio.current_time()
        for i in range(25):
            recorder.emit(pod(i), type="Normal", reason="Created", message="Created pod")
        samples = []
        while recorder.written < 25:
            await anyio.sleep(0.05)
            samples.append((anyio.current_time() - start, recorder.written))
            assert samples[-1][0] < 30, "events never finished"
        tg.cancel_scope.cancel()
    # never faster than the bucket allows: burst + rate * elapsed (+1 for the one in flight)
    for elapsed, written in samples:
        assert written <= 5 + 20.0 * elapsed + 1
    assert await count_events(kube) == 25


async def test_repeats_while_waiting_raise_the_count(kube: Kube) -> None:
    recorder = EventRecorder(kube, qps=1.0, burst=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        recorder.emit(pod(0), type="Normal", reason="Pulled", message="first")
        await eventually(lambda: recorder.written == 1)
        for _ in range(3):  # waits for a token: aggregated into one write
            recorder.emit(pod(1), type="Warning", reason="BackOff", message="again")
        await eventually(lambda: recorder.written == 2, limit=10)
        tg.cancel_scope.cancel()
    doc = await kube.get(path_of("events", namespace="default"))
    counts = sorted(e["count"] for e in doc["items"])
    assert counts == [1, 3]


async def test_zero_qps_lifts_the_limit(kube: Kube) -> None:
    recorder = EventRecorder(kube, qps=0, burst=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run)
        for i in range(40):
            recorder.emit(pod(i), type="Normal", reason="Created", message="Created pod")
        await eventually(lambda: recorder.written == 40, limit=20)
        tg.cancel_scope.cancel()
    assert await count_events(kube) == 40


async def test_a_full_queue_drops_normal_events_before_warnings_and_says_so(
    kube: Kube, caplog: pytest.LogCaptureFixture
) -> None:
    """Past ``max_pending`` waiting events, new Normal ones are dropped; Warnings queue up to
    twice as many; a repeat of a waiting event still raises its count. Drops are counted and
    logged on the first drop, then with the rest of the burst once the queue has room."""
    recorder = EventRecorder(kube, qps=0, max_pending=3)
    with caplog.at_level("WARNING", logger="vkcompose.node.events"):
        for i in range(5):  # p3 and p4 find three waiting
            recorder.emit(pod(i), type="Normal", reason="Created", message="Created pod")
        recorder.emit(pod(0), type="Normal", reason="Created", message="Created pod")  # repeat
        for i in range(5, 9):  # p8 finds six waiting
            recorder.emit(pod(i), type="Warning", reason="ProviderFailed", message="quota")
        assert (recorder.dropped, recorder.dropped_warnings) == (3, 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run)
            await eventually(lambda: recorder.written == 6, limit=20)
            tg.cancel_scope.cancel()
    reports = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert reports == [
        "1 events dropped (0 of them Warnings; 1 in all): 3 were waiting to be written",
        "2 events dropped (1 of them Warnings; 3 in all): 1 were waiting to be written",
    ]
    doc = await kube.get(path_of("events", namespace="default"))
    written = sorted((e["reason"], e["count"]) for e in doc["items"])
    assert written == [("Created", 1), ("Created", 1), ("Created", 2)] + [("ProviderFailed", 1)] * 3


async def test_a_sustained_burst_logs_its_drops_twice_not_per_write(
    kube: Kube, caplog: pytest.LogCaptureFixture
) -> None:
    """While events keep coming faster than they are written, the queue stays full: its
    drops are logged when they start and once the queue has drained to half, with the total."""
    recorder = EventRecorder(kube, qps=10.0, burst=1, max_pending=4)
    with caplog.at_level("WARNING", logger="vkcompose.node.events"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run)
            for i in range(0, 60, 6):  # six every 20 ms; one written every 100 ms
                for j in range(i, i + 6):
                    recorder.emit(pod(j), type="Normal", reason="Created", message="Created pod")
                await anyio.sleep(0.02)
            assert recorder.dropped > 10
            await eventually(lambda: recorder.idle(), limit=20)
            tg.cancel_scope.cancel()
    reports = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(reports) == 2
    assert reports[0].startswith("1 events dropped (0 of them Warnings; 1 in all)")
    assert f"; {recorder.dropped} in all): 2 were waiting" in reports[1]
    assert recorder.written + recorder.dropped == 60
