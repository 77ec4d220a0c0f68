"""Fault injection: determinism, rates, latency ranges, hangs, errors before/after."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkcompose.errors import PermanentError, TemporaryError
from vkcompose.middlewares.faults import NO_FAULT, FaultRule, Faults, decide
from vkcompose.middlewares.timeout import Timeout
from vkcompose.ops import CreatePod, GetPodStatus, ListPods, Op
from vkcompose.pipeline import compose
from vkcompose.testing.clock import FakeClock


class Backend:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def create_pod(self, pod: dict[str, Any]) -> None:
        self.calls.append("create")

    async def list_pods(self) -> list[Any]:
        self.calls.append("list")
        return []

    async def get_pod_status(self, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append("status")
        return {}


POD = {"metadata": {"name": "p", "namespace": "n"}}


async def run_ops(faults: Faults, ops: list[Op]) -> list[str]:
    outcomes = []
    pipeline = compose(faults, backend=Backend())
    for op in ops:
        try:
            await pipeline(op)
            outcomes.append("ok")
        except TemporaryError:
            outcomes.append("temporary")
        except PermanentError:
            outcomes.append("permanent")
    return outcomes


def make(seed: int, clock: FakeClock) -> Faults:
    return Faults(
        [
            FaultRule(kind="pod.create", error_rate=0.3, latency=(0.01, 0.05)),
            FaultRule(kind="*", error_rate=0.2, error="permanent"),
        ],
        seed=seed,
        sleep=clock.sleep,
    )


@given(seed=st.integers(0, 2**32), kinds=st.lists(st.sampled_from(["c", "l"]), max_size=40))
def test_same_seed_same_faults(seed: int, kinds: list[str]) -> None:
    ops: list[Op] = [CreatePod(pod=POD) if k == "c" else ListPods() for k in kinds]
    first, second = FakeClock(), FakeClock()
    a = anyio.run(run_ops, make(seed, first), ops)
    b = anyio.run(run_ops, make(seed, second), ops)
    assert a == b and first.sleeps == second.sleeps
    assert all(0.01 <= s <= 0.05 for s in first.sleeps)
    assert len(first.sleeps) == kinds.count("c")


@given(seed=st.integers(0, 1000), n=st.integers(1, 30), m=st.integers(0, 30))
def test_one_kinds_faults_do_not_depend_on_other_kinds(seed: int, n: int, m: int) -> None:
    creates_only: list[Op] = [CreatePod(pod=POD)] * n
    mixed: list[Op] = [ListPods()] * m + [CreatePod(pod=POD)] * n
    a = anyio.run(run_ops, make(seed, FakeClock()), creates_only)
    b = anyio.run(run_ops, make(seed, FakeClock()), mixed)
    assert a == b[m:]


def test_error_rate_is_respected_on_average() -> None:
    faults = Faults([FaultRule(error_rate=0.1)], seed=3)
    ops: list[Op] = [ListPods()] * 2000
    outcomes = anyio.run(run_ops, faults, ops)
    assert 150 < outcomes.count("temporary") < 250
    assert faults.injected[("pods.list", "error")] == outcomes.count("temporary")


@given(
    rate=st.floats(0, 1),
    hang=st.floats(0, 1),
    latency=st.one_of(
        st.none(),
        st.floats(0, 5),
        st.tuples(st.floats(0, 1), st.floats(1, 5)),
    ),
    seed=st.integers(),
)
def test_decide_respects_the_rule(
    rate: float, hang: float, latency: float | tuple[float, float] | None, seed: int
) -> None:
    rule = FaultRule(error_rate=rate, hang_rate=hang, latency=latency)
    fault = decide(rule, random.Random(seed))
    if rate == 0:
        assert fault.error is None
    if rate == 1:
        assert fault.error == "temporary"
    if hang == 0:
        assert not fault.hang
    if latency is None:
        assert fault.latency == 0
    elif isinstance(latency, tuple):
        assert latency[0] <= fault.latency <= latency[1]
    else:
        assert fault.latency == latency


def test_no_rule_no_fault() -> None:
    faults = Faults([FaultRule(kind="pod.create", error_rate=1.0)])
    assert faults.fault_for("pods.list") is NO_FAULT


@pytest.mark.anyio
async def test_hang_is_cancellable_by_timeout() -> None:
    backend = Backend()
    faults = Faults([FaultRule(kind="pods.list", hang_rate=1.0)])
    pipeline = compose(Timeout(0.01), faults, backend=backend)
    with anyio.fail_after(30):
        with pytest.raises(TemporaryError, match="timed out"):
            await pipeline(ListPods())
        assert await pipeline(GetPodStatus(namespace="n", name="p")) == {}
    assert backend.calls == ["status"]
    assert faults.injected[("pods.list", "hang")] == 1


@pytest.mark.anyio
async def test_errors_before_and_after_the_backend() -> None:
    backend = Backend()
    before = Faults([FaultRule(error_rate=1.0, error="permanent")])
    with pytest.raises(PermanentError) as caught:
        await compose(before, backend=backend)(CreatePod(pod=POD))
    assert caught.value.reason == "InjectedFault"
    assert backend.calls == []
    after = Faults([FaultRule(error_rate=1.0, error_after=True, pushback=0.5)])
    with pytest.raises(TemporaryError) as temporary:
        await compose(after, backend=backend)(CreatePod(pod=POD))
    assert temporary.value.delay == 0.5
    assert backend.calls == ["create"]


def test_rule_validation() -> None:
    with pytest.raises(ValueError):
        FaultRule(error_rate=1.5)
    with pytest.raises(ValueError):
        FaultRule(latency=(0.5, 0.1))
    with pytest.raises(ValueError):
        FaultRule(latency=-1.0)
