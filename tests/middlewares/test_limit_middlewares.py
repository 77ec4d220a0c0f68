"""Limits: concurrency (CapacityLimiter) and rate (token bucket, fake clock)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.errors import TemporaryError
from vkcompose.middlewares.limits import ConcurrencyLimit, RateLimit, TokenBucket
from vkcompose.ops import CreatePod, Exec, GetPodStatus, ListPods
from vkcompose.pipeline import compose
from vkcompose.testing.clock import FakeClock


class Gate:
    """A backend whose calls block until released; tracks the peak concurrency per kind."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0

    async def _enter(self, kind: str) -> None:
        self.active[kind] = self.active.get(kind, 0) + 1
        self.peak[kind] = max(self.peak.get(kind, 0), self.active[kind])
        limited = self.active.get("create", 0) + self.active.get("status", 0)
        self.peak_total = max(self.peak_total, limited)
        try:
            await self.release.wait()
        finally:
            self.active[kind] -= 1

    async def create_pod(self, pod: dict[str, Any]) -> None:
        await self._enter("create")

    async def get_pod_status(self, namespace: str, name: str) -> dict[str, Any]:
        await self._enter("status")
        return {}

    async def exec(self, *args: Any) -> int:
        await self._enter("exec")
        return 0


@pytest.mark.anyio
async def test_concurrency_limit_overall_and_per_kind() -> None:
    gate = Gate()
    limit = ConcurrencyLimit(3, per_kind={"pod.create": 1})
    pipeline = compose(limit, backend=gate)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(pipeline, CreatePod(pod={"metadata": {"name": str(i)}}))
                tg.start_soon(pipeline, GetPodStatus(namespace="n", name=str(i)))
            for _ in range(5):
                tg.start_soon(pipeline, Exec(namespace="n", name="p"))
            await anyio.wait_all_tasks_blocked()
            assert limit.in_flight == 3
            assert gate.active.get("create", 0) + gate.active.get("status", 0) == 3
            assert gate.active["exec"] == 5  # streaming sessions hold no slot
            gate.release.set()
    assert gate.peak["create"] == 1
    assert gate.peak_total <= 3
    assert limit.in_flight == 0


@given(st.lists(st.floats(min_value=0, max_value=2), max_size=60))
def test_token_bucket_never_exceeds_rate_plus_burst(gaps: list[float]) -> None:
    rate, burst = 3.0, 2
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    starts: list[float] = []
    for gap in gaps:
        now += gap
        starts.append(now + bucket.reserve(now))
    starts.sort()
    for i, a in enumerate(starts):
        for j in range(i, len(starts)):
            b = starts[j]
            assert j - i + 1 <= burst + rate * (b - a) + 1e-6


@given(st.lists(st.floats(min_value=0, max_value=2), max_size=60))
def test_try_take_grants_only_available_tokens(gaps: list[float]) -> None:
    bucket = TokenBucket(2.0, 3, now=0.0)
    now = 0.0
    granted: list[float] = []
    for gap in gaps:
        now += gap
        wait = bucket.try_take(now)
        if wait == 0.0:
            granted.append(now)
        else:
            assert wait > 0
    for i, a in enumerate(granted):
        for j in range(i, len(granted)):
            assert j - i + 1 <= 3 + 2.0 * (granted[j] - a) + 1e-6


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    async def list_pods(self) -> list[Any]:
        self.calls += 1
        return []

    async def get_pod_status(self, namespace: str, name: str) -> dict[str, Any]:
        return {}


@pytest.mark.anyio
async def test_rate_limit_waits_for_tokens_on_the_fake_clock() -> None:
    clock = FakeClock(100.0)
    pipeline = compose(
        RateLimit(10.0, burst=2, clock=clock.time, sleep=clock.sleep), backend=Counter()
    )
    for _ in range(5):
        await pipeline(ListPods())
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(100.3)


@pytest.mark.anyio
async def test_rate_limit_reject_mode_fails_fast_with_pushback() -> None:
    clock = FakeClock()
    limit = RateLimit(1.0, burst=1, reject=True, clock=clock.time, sleep=clock.sleep)
    backend = Counter()
    pipeline = compose(limit, backend=backend)
    await pipeline(ListPods())
    with pytest.raises(TemporaryError) as caught:
        await pipeline(ListPods())
    assert caught.value.reason == "RateLimited"
    assert caught.value.delay == pytest.approx(1.0)
    clock.advance(1.0)
    await pipeline(ListPods())
    assert backend.calls == 2 and clock.sleeps == []


@pytest.mark.anyio
async def test_rate_limit_applies_only_to_listed_kinds() -> None:
    clock = FakeClock()
    limit = RateLimit(1.0, burst=1, kinds={"pods.list"}, clock=clock.time, sleep=clock.sleep)
    pipeline = compose(limit, backend=Counter())
    for _ in range(3):
        await pipeline(GetPodStatus(namespace="n", name="p"))
    assert clock.sleeps == []
    await pipeline(ListPods())
    await pipeline(ListPods())
    assert clock.sleeps == [1.0]


@pytest.mark.anyio
async def test_cancelled_waiter_gives_its_token_back() -> None:
    clock = FakeClock()

    async def never(seconds: float) -> None:
        await anyio.sleep_forever()

    limit = RateLimit(1.0, burst=1, clock=clock.time, sleep=never)
    pipeline = compose(limit, backend=Counter())
    await pipeline(ListPods())
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline, ListPods())
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    clock.advance(1.0)
    assert limit._bucket is not None and limit._bucket.try_take(clock.now) == 0.0


def test_validation() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        RateLimit(1.0, burst=0)
