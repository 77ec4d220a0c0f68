"""Circuit breaker: state machine (hypothesis) and middleware (fake clock)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.errors import NotFound, TemporaryError
from vkcompose.middlewares.circuit_breaker import Breaker, CircuitBreaker, is_backend_failure
from vkcompose.ops import ListPods
from vkcompose.pipeline import compose
from vkcompose.testing.clock import FakeClock


class Scripted:
    def __init__(self, outcomes: list[Exception | None]) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def list_pods(self) -> list[Any]:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        return []


@pytest.mark.anyio
async def test_opens_after_n_consecutive_failures_then_probes_and_closes() -> None:
    clock = FakeClock()
    backend = Scripted([TemporaryError("down")] * 3 + [None])
    breaker = CircuitBreaker(3, cooldown=10.0, clock=clock.time)
    pipeline = compose(breaker, backend=backend)
    for _ in range(3):
        with pytest.raises(TemporaryError, match="down"):
            await pipeline(ListPods())
    clock.advance(4.0)
    with pytest.raises(TemporaryError, match="circuit open") as caught:
        await pipeline(ListPods())
    assert caught.value.reason == "CircuitOpen"
    assert caught.value.delay == pytest.approx(6.0)
    assert backend.calls == 3
    clock.advance(6.0)
    assert await pipeline(ListPods()) == []
    assert breaker.breaker.state == "closed" and backend.calls == 4


@pytest.mark.anyio
async def test_failed_probe_reopens_for_another_cooldown() -> None:
    clock = FakeClock()
    backend = Scripted([TemporaryError("down")] * 2)
    pipeline = compose(CircuitBreaker(1, cooldown=5.0, clock=clock.time), backend=backend)
    with pytest.raises(TemporaryError, match="down"):
        await pipeline(ListPods())
    clock.advance(5.0)
    with pytest.raises(TemporaryError, match="down"):
        await pipeline(ListPods())  # the probe
    with pytest.raises(TemporaryError, match="circuit open") as caught:
        await pipeline(ListPods())
    assert caught.value.delay == pytest.approx(5.0)


@pytest.mark.anyio
async def test_half_open_lets_a_single_probe_through() -> None:
    clock = FakeClock()
    release = anyio.Event()

    class Slow:
        calls = 0

        async def list_pods(self) -> list[Any]:
            self.calls += 1
            if self.calls == 1:
                raise TemporaryError("down")
            await release.wait()
            return []

    backend = Slow()
    breaker = CircuitBreaker(1, cooldown=1.0, clock=clock.time)
    pipeline = compose(breaker, backend=backend)
    with pytest.raises(TemporaryError):
        await pipeline(ListPods())
    clock.advance(1.0)
    rejected: list[TemporaryError] = []

    async def call() -> None:
        try:
            await pipeline(ListPods())
        except TemporaryError as error:
            rejected.append(error)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            release.set()
    assert backend.calls == 2 and len(rejected) == 4
    assert breaker.breaker.state == "closed"


@pytest.mark.anyio
async def test_answers_about_the_op_do_not_count_as_backend_failures() -> None:
    clock = FakeClock()
    backend = Scripted([NotFound("x")] * 5)
    breaker = CircuitBreaker(2, cooldown=5.0, clock=clock.time)
    for _ in range(5):
        with pytest.raises(NotFound):
            await compose(breaker, backend=backend)(ListPods())
    assert breaker.breaker.state == "closed" and backend.calls == 5
    assert is_backend_failure(OSError()) and not is_backend_failure(NotFound())


@pytest.mark.anyio
async def test_cancelled_probe_frees_the_probe_slot() -> None:
    clock = FakeClock()

    class Hang:
        calls = 0

        async def list_pods(self) -> list[Any]:
            self.calls += 1
            if self.calls == 1:
                raise TemporaryError("down")
            if self.calls == 2:
                await anyio.sleep_forever()
            return []

    backend = Hang()
    pipeline = compose(CircuitBreaker(1, cooldown=1.0, clock=clock.time), backend=backend)
    with pytest.raises(TemporaryError):
        await pipeline(ListPods())
    clock.advance(1.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline, ListPods())
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert await pipeline(ListPods()) == []


steps = st.lists(
    st.tuples(st.sampled_from(["call_ok", "call_fail", "wait"]), st.floats(0, 3)), max_size=80
)


@given(threshold=st.integers(1, 4), cooldown=st.floats(0.5, 5), script=steps)
def test_breaker_invariants(
    threshold: int, cooldown: float, script: list[tuple[str, float]]
) -> None:
    """Sequential calls: the backend is reached only when closed or as the probe after a full
    cooldown; the circuit opens exactly at the threshold; a rejection's delay is the cooldown
    left."""
    breaker = Breaker(threshold, cooldown)
    now = 0.0
    opened_at: float | None = None
    consecutive = 0
    for action, amount in script:
        if action == "wait":
            now += amount
            continue
        state_before = breaker.state
        wait = breaker.admit(now)
        if wait is not None:
            assert state_before == "open" and opened_at is not None
            assert wait == pytest.approx(opened_at + cooldown - now)
            assert 0 < wait <= cooldown
            continue
        if state_before == "open":
            assert opened_at is not None and now >= opened_at + cooldown
        if action == "call_ok":
            breaker.on_success()
            consecutive = 0
            opened_at = None
            assert breaker.state == "closed"
        else:
            consecutive += 1
            breaker.on_failure(now)
            if state_before != "closed" or consecutive >= threshold:
                assert breaker.state == "open"
                opened_at = now
            else:
                assert breaker.state == "closed"
