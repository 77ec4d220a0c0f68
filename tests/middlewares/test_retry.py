"""Retry: policy (pure), budget (pure, fake clock) and the middleware (fake clock, spans)."""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from vkcompose.errors import InvalidInput, NotFound, PermanentError, TemporaryError, Unsupported
from vkcompose.middlewares.retry import (
    ATTEMPT_EVENT,
    Retry,
    RetryBudget,
    RetryPolicy,
    backoff_delay,
    plan_retry,
)
from vkcompose.ops import CreatePod, DeletePod, Exec, ListPods, Op
from vkcompose.pipeline import compose
from vkcompose.testing.clock import FakeClock

POD = {"metadata": {"name": "p", "namespace": "ns"}}

# ---------------------------------------------------------------- policy (pure)


@given(
    retry=st.integers(min_value=0, max_value=200),
    base=st.floats(min_value=1e-4, max_value=10.0),
    cap=st.floats(min_value=1e-4, max_value=100.0),
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_full_jitter_stays_within_exponential_ceiling(
    retry: int, base: float, cap: float, u: float
) -> None:
    delay = backoff_delay(retry, base, cap, lambda: u)
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(retry, 1000))
    assert delay == pytest.approx(u * min(cap, base * 2.0 ** min(retry, 64)))


def test_full_jitter_spans_the_whole_interval() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(3, 0.1, 10.0, rng.random) for _ in range(2000)]
    assert min(delays) < 0.05 and max(delays) > 0.75 and max(delays) < 0.8


errors = st.sampled_from(
    [
        TemporaryError("t"),
        TemporaryError("t", delay=0.3),
        PermanentError("p"),
        NotFound("n"),
        InvalidInput("i"),
        Unsupported("u"),
        KeyError("k"),
    ]
)


@given(
    error=errors,
    attempt=st.integers(min_value=1, max_value=10),
    max_attempts=st.integers(min_value=1, max_value=10),
    now=st.floats(min_value=0, max_value=1e6),
    budget_left=st.floats(min_value=0, max_value=5),
    u=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_plan_retry_never_crosses_deadline_and_only_retries_temporary(
    error: Exception, attempt: int, max_attempts: int, now: float, budget_left: float, u: float
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, base_delay=0.1, max_delay=2.0)
    deadline = now + budget_left
    delay = plan_retry(
        policy, attempt=attempt, error=error, now=now, deadline=deadline, random=lambda: u
    )
    if delay is None:
        return
    assert isinstance(error, TemporaryError)
    assert attempt < max_attempts
    assert now + delay <= deadline
    if isinstance(error, TemporaryError) and error.delay is not None:
        assert delay == error.delay


def test_classification_is_configurable_but_permanent_always_wins() -> None:
    class Weird(PermanentError, ConnectionError):
        pass

    policy = RetryPolicy(retry_on=(TemporaryError, ConnectionError))
    assert policy.retryable(ConnectionResetError())
    assert policy.retryable(TemporaryError())
    assert not policy.retryable(Weird())
    assert not RetryPolicy().retryable(ConnectionResetError())


def test_pushback_is_honoured_even_beyond_max_delay() -> None:
    policy = RetryPolicy(max_delay=1.0)
    error = TemporaryError("slow down", delay=7.0)
    assert plan_retry(policy, attempt=1, error=error, now=0, deadline=100) == 7.0
    assert plan_retry(policy, attempt=1, error=error, now=0, deadline=6.9) is None


# ---------------------------------------------------------------- budget (pure)


@given(
    min_per_sec=st.integers(min_value=0, max_value=5),
    percent=st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0, 2.0]),
    events=st.lists(
        st.tuples(st.sampled_from(["deposit", "withdraw"]), st.floats(min_value=0, max_value=3)),
        max_size=200,
    ),
)
def test_budget_bounds_retries_in_every_ttl_window(
    min_per_sec: int, percent: float, events: list[tuple[str, float]]
) -> None:
    clock = FakeClock()
    ttl = 2.0
    budget = RetryBudget(ttl=ttl, min_per_sec=min_per_sec, retry_percent=percent, clock=clock.time)
    history: list[tuple[float, str]] = []
    for action, gap in events:
        clock.advance(gap)
        if action == "deposit":
            budget.deposit()
            history.append((clock.now, "deposit"))
        elif budget.withdraw():
            history.append((clock.now, "withdraw"))
    # Entries expire between ttl - slot and ttl after they were made, so at every grant the
    # retries granted in the last (ttl - slot) never exceed the reserve plus the allowed share
    # of the deposits made in the last ttl.
    slot = ttl / 10
    for end, action in history:
        if action != "withdraw":
            continue
        granted = sum(
            1 for t, a in history if a == "withdraw" and end - ttl + slot + 1e-6 < t <= end
        )
        deposits = sum(1 for t, a in history if a == "deposit" and end - ttl - 1e-6 < t <= end)
        assert granted <= min_per_sec * ttl + percent * deposits + 1e-9


def test_budget_reserve_refills_after_ttl() -> None:
    clock = FakeClock()
    budget = RetryBudget(ttl=1.0, min_per_sec=3, retry_percent=0.0, clock=clock.time)
    assert [budget.withdraw() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert not budget.withdraw()
    clock.advance(0.6)
    assert budget.withdraw()


def test_budget_defaults_match_finagle() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock=clock.time)
    granted = sum(budget.withdraw() for _ in range(1000))
    assert granted == 100  # 10/s reserve over a 10 s ttl
    for _ in range(50):
        budget.deposit()
    assert sum(budget.withdraw() for _ in range(1000)) == 10  # 20 % of 50 requests


def test_budget_validates_arguments() -> None:
    with pytest.raises(ValueError):
        RetryBudget(ttl=0.5)
    with pytest.raises(ValueError):
        RetryBudget(retry_percent=-1)


# ---------------------------------------------------------------- middleware


class Flaky:
    """Backend failing with scripted errors, then succeeding."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def list_pods(self) -> list[Any]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return ["ok"]

    async def create_pod(self, pod: dict[str, Any]) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    async def delete_pod(self, pod: dict[str, Any], grace: int | None) -> None:
        await self.create_pod(pod)

    async def exec(self, *args: Any) -> int:
        self.calls += 1
        raise TemporaryError("exec")


def make_retry(clock: FakeClock, **kwargs: Any) -> Retry:
    rng = random.Random(1)
    return Retry(clock=clock.time, sleep=clock.sleep, random=rng.random, **kwargs)


@pytest.mark.anyio
async def test_retries_temporary_errors_until_success() -> None:
    clock = FakeClock()
    backend = Flaky([TemporaryError("a"), TemporaryError("b")])
    assert await compose(make_retry(clock), backend=backend)(ListPods()) == ["ok"]
    assert backend.calls == 3
    assert len(clock.sleeps) == 2
    assert clock.sleeps[0] <= 0.05 and clock.sleeps[1] <= 0.1


@pytest.mark.anyio
async def test_permanent_errors_are_not_retried() -> None:
    clock = FakeClock()
    backend = Flaky([PermanentError("no")])
    with pytest.raises(PermanentError):
        await compose(make_retry(clock), backend=backend)(ListPods())
    assert backend.calls == 1 and clock.sleeps == []


@pytest.mark.anyio
async def test_gives_up_after_max_attempts_with_last_error() -> None:
    clock = FakeClock()
    failures: list[Exception] = [TemporaryError(f"e{i}") for i in range(10)]
    backend = Flaky(failures)
    retry = make_retry(clock, policy=RetryPolicy(max_attempts=4))
    with pytest.raises(TemporaryError, match="e3"):
        await compose(retry, backend=backend)(ListPods())
    assert backend.calls == 4


@pytest.mark.anyio
async def test_pushback_delay_is_slept_exactly() -> None:
    clock = FakeClock()
    backend = Flaky([TemporaryError("busy", delay=1.25)])
    await compose(make_retry(clock), backend=backend)(ListPods())
    assert clock.sleeps == [1.25]


@given(
    pushbacks=st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=12),
    deadline=st.floats(min_value=0, max_value=10),
)
def test_never_sleeps_past_the_deadline(pushbacks: list[float], deadline: float) -> None:
    clock = FakeClock()
    backend = Flaky([TemporaryError("x", delay=d) for d in pushbacks])
    retry = make_retry(clock, policy=RetryPolicy(max_attempts=100), deadline=deadline)

    async def run() -> None:
        with contextlib.suppress(TemporaryError):
            await compose(retry, backend=backend)(ListPods())

    anyio.run(run)
    assert clock.now <= deadline + 1e-9
    assert sum(clock.sleeps) == pytest.approx(clock.now)
    # it gives up exactly when the next pushback would cross the deadline
    slept = len(clock.sleeps)
    if slept < len(pushbacks):
        assert sum(pushbacks[: slept + 1]) > deadline - 1e-9


@pytest.mark.anyio
async def test_raises_last_error_when_next_sleep_would_cross_deadline() -> None:
    clock = FakeClock()
    backend = Flaky([TemporaryError("first", delay=1.0), TemporaryError("second", delay=5.0)])
    with pytest.raises(TemporaryError, match="second"):
        await compose(make_retry(clock, deadline=3.0), backend=backend)(ListPods())
    assert clock.sleeps == [1.0]


@pytest.mark.anyio
async def test_non_idempotent_ops_are_not_retried_unless_creates_declared_idempotent() -> None:
    clock = FakeClock()
    backend = Flaky([TemporaryError("a")])
    with pytest.raises(TemporaryError):
        await compose(make_retry(clock), backend=backend)(CreatePod(pod=POD))
    assert backend.calls == 1

    backend = Flaky([TemporaryError("a")])
    await compose(make_retry(clock, retry_creates=True), backend=backend)(CreatePod(pod=POD))
    assert backend.calls == 2

    backend = Flaky([TemporaryError("a")])
    await compose(make_retry(clock), backend=backend)(DeletePod(pod=POD))
    assert backend.calls == 2

    backend = Flaky([])
    with pytest.raises(TemporaryError):
        await compose(make_retry(clock, retry_creates=True), backend=backend)(
            Exec(namespace="ns", name="p", command=["true"])
        )
    assert backend.calls == 1


@pytest.mark.anyio
async def test_shared_budget_stops_a_retry_storm() -> None:
    clock = FakeClock()
    budget = RetryBudget(ttl=1.0, min_per_sec=2, retry_percent=0.0, clock=clock.time)
    backend = Flaky([TemporaryError("x", delay=0.0)] * 100)
    pipeline = compose(make_retry(clock, budget=budget), backend=backend)
    for _ in range(5):
        with pytest.raises(TemporaryError):
            await pipeline(ListPods())
    assert backend.calls == 5 + 2  # 5 first attempts, the 2-retry reserve


@pytest.mark.anyio
async def test_outer_cancel_scope_deadline_bounds_sleeps_under_default_clock() -> None:
    backend = Flaky([TemporaryError("x", delay=3600.0)])
    retry = Retry()
    with anyio.move_on_after(30):  # hang guard; the retry gives up long before
        with pytest.raises(TemporaryError):
            with anyio.fail_after(60):
                await compose(retry, backend=backend)(ListPods())
    assert backend.calls == 1


@pytest.mark.anyio
async def test_one_span_event_per_attempt() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    clock = FakeClock()
    backend = Flaky([TemporaryError("a", delay=0.5), NotFound("gone")])
    with provider.get_tracer("t").start_as_current_span("op"), pytest.raises(NotFound):
        await compose(make_retry(clock), backend=backend)(ListPods())
    (span,) = exporter.get_finished_spans()
    events = [e for e in span.events if e.name == ATTEMPT_EVENT]
    assert [dict(e.attributes or {}) for e in events] == [
        {
            "vkcompose.retry.attempt": 1,
            "error.type": "vkcompose.errors.TemporaryError",
            "vkcompose.retry.outcome": "retry",
            "vkcompose.retry.delay": 0.5,
        },
        {
            "vkcompose.retry.attempt": 2,
            "error.type": "vkcompose.errors.NotFound",
            "vkcompose.retry.outcome": "give_up",
        },
    ]


@pytest.mark.anyio
async def test_cancellation_is_never_retried() -> None:
    class Hangs:
        calls = 0

        async def list_pods(self) -> list[Any]:
            self.calls += 1
            await anyio.sleep_forever()
            return []

    backend = Hangs()
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            await compose(Retry(), backend=backend)(ListPods())

        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert backend.calls == 1


def test_op_idempotence_flags() -> None:
    retry = Retry()
    ops: list[Op] = [ListPods(), DeletePod(pod=POD), CreatePod(pod=POD)]
    assert [retry.retries(o) for o in ops] == [True, True, False]
    assert math.isinf(Retry(clock=lambda: 0.0)._deadline(0.0))
